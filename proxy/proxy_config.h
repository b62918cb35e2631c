// basalt-proxy configuration: one TOML file, parsed and validated into an immutable struct.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/net.h"
#include "common/result.h"
#include "common/tls.h"
#include "proxy/client_limits.h"
#include "directory/directory_config.h"

namespace basalt::proxy {

enum class Protocol { kImap, kImaps, kPop3, kPop3s };

const char* to_string(Protocol protocol);
bool is_imap(Protocol protocol);
bool is_implicit_tls(Protocol protocol);

struct ListenerConfig {
  Protocol protocol = Protocol::kImap;
  SocketAddress address;
  std::string address_text;
  bool proxy_protocol = false;  // expect a HAProxy PROXY v1/v2 header from trusted_load_balancers
};

enum class ShardLogin { kMaster, kPassthrough };

struct ShardConfig {
  std::string name;
  std::vector<std::string> hosts;  // other routing-attribute values that mean this shard
  std::string imap_text, pop3_text, lmtp_text;
  SocketAddress imap, pop3, lmtp;
  bool has_imap = false, has_pop3 = false, has_lmtp = false;
  bool tls = false;         // implicit TLS to the shard's imap/pop3 addresses
  std::string tls_ca;       // CA file that signed the shard's certificate ("" = system CAs)
  std::string tls_name;     // name (or IP) the certificate must carry ("" = the address's IP)
  bool tls_verify = true;
  ShardLogin login = ShardLogin::kMaster;
  std::string master_user;
  std::string master_password;
  std::chrono::milliseconds connect_timeout{3000};
  std::chrono::milliseconds login_timeout{10000};
};

struct LimitsConfig {
  size_t max_line = 8192;
  size_t max_literal = 65536;
  size_t max_bad_commands = 5;
  size_t max_connections_per_ip = 100;  // per IPv4 address or IPv6 /48; trusted networks exempt
  size_t max_sessions_per_user = 50;    // logged-in sessions
  std::chrono::seconds preauth_timeout{180};
  std::chrono::seconds idle_timeout{1800};      // after login, no bytes either way
  size_t relay_high_watermark = 256 * 1024;     // bytes queued towards a slow reader before we stop reading
};

struct AdminConfig {
  bool enabled = false;
  SocketAddress address;
  std::string address_text;
  std::string token;
};

struct ProxyConfig {
  std::string source;  // path of the file, for messages
  std::string log_level = "info";
  unsigned workers = 2;
  NetworkList trusted_networks;  // may authenticate without TLS; their ID x-originating-ip is believed
  NetworkList trusted_load_balancers;  // may send PROXY protocol headers (and nobody else)
  std::chrono::milliseconds auth_failure_delay{2000};      // first failure; doubles per failure
  std::chrono::milliseconds auth_failure_max_delay{15000};
  std::chrono::seconds auth_penalty_decay{60};               // failure count halves per quiet period
  std::chrono::seconds drain_timeout{30};  // SIGTERM: logged-in sessions get this long to finish
  bool early_shard_login = true;  // master-login shards: log in while the directory checks the secret
  size_t warm_shard_connections = 2;        // per worker, shard and protocol, opened ahead of logins
  std::chrono::seconds warm_shard_max_age{20};  // ... and closed unused after this (below shards' pre-login timeouts)
  std::string greeting = "Basalt ready.";
  bool tls_enabled = false;
  TlsSettings tls;
  struct SniCertificate {
    std::vector<std::string> names;  // "mail.example.org" or "*.example.org" (one label), lowercase
    std::string certificate, private_key;
  };
  std::vector<SniCertificate> sni;   // chosen by the client's SNI name; otherwise [tls]'s certificate
  std::string run_as_user;           // drop privileges to this user after binding the ports
  std::vector<ListenerConfig> listeners;
  AdminConfig admin;
  LimitsConfig limits;
  struct AuthCacheConfig {
    std::chrono::seconds ttl{0};  // 0: off. A user who logged in within ttl may log in while LDAP is down
    unsigned iterations = 10000;  // PBKDF2-SHA256 rounds for the remembered hash
    size_t max_entries = 100000;
  } auth_cache;
  directory::DirectoryConfig directory;
  std::vector<ShardConfig> shards;
};

Result<ProxyConfig> load_proxy_config(const std::string& path);
ClientLimits::Settings limit_settings(const ProxyConfig& config);
Result<ProxyConfig> parse_proxy_config(std::string_view toml_text, const std::string& base_dir);

}  // namespace basalt::proxy
