// basalt-store configuration (conf/basalt-store.toml): parsed once at startup into an
// immutable struct. Unknown keys are errors, so a typo never falls back to a default.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "backend/quota.h"
#include "common/net.h"
#include "common/result.h"
#include "common/tls.h"
#include "directory/password.h"
#include "directory/directory_config.h"

namespace basalt::store {

// A master user: logs in as any user of this shard with SASL PLAIN authzid = the user (how
// basalt-proxy and Dovecot directors log in), accepted only from `trusted_networks`.
struct MasterUser {
  std::string name;
  directory::StoredPassword password;
};

// One client-facing protocol listener (IMAP or POP3). Empty `listen_text` = off.
struct ServiceConfig {
  std::string listen_text;
  SocketAddress listen;
  unsigned max_connections = 5000;
  unsigned idle_timeout_s = 1800;   // authenticated idle time (IMAP IDLE needs >= 30 minutes)
  unsigned login_timeout_s = 60;    // time allowed before authentication
};

struct StoreConfig {
  std::string log_level = "info";
  std::string shard_name;          // required: users whose shard equals this are ours
  std::string spool_root;          // required, must be an initialized spool (see --init-spool)
  std::string index_root;          // required: local disk, holds the LMDB header cache
  std::string users_file;          // required: [[user]] name/password/shard/status
  std::string lmtp_listen_text = "127.0.0.1:24";
  SocketAddress lmtp_listen;
  size_t max_message_size = 50u << 20;
  unsigned delivery_threads = 2;   // pool threads doing disk work
  unsigned max_connections = 200;
  unsigned lmtp_timeout_s = 300;   // idle / per-command timeout
  bool fsync = true;               // false only for tests
  directory::StatusRules status;   // status values meaning moving / disabled
  ServiceConfig imap;              // [imap]
  ServiceConfig pop3;              // [pop3]
  unsigned io_threads = 4;         // [store] pool for spool reads and state writes of sessions
  size_t max_append_size = 50u << 20;  // [imap] APPEND literal limit
  // [auth]
  std::vector<MasterUser> masters;
  NetworkList trusted_networks;    // proxies: master logins, ID x-originating-ip, plaintext login
  bool plaintext_auth = false;     // allow LOGIN/USER-PASS without TLS from untrusted networks
  // [tls] (optional): STARTTLS / STLS are offered when set
  bool tls_enabled = false;
  TlsSettings tls;
  // [quota] storage_bytes / messages: every user's limits unless the users file overrides them
  QuotaLimits quota;
  std::shared_ptr<const directory::UserTable> users;
};

Result<StoreConfig> load_store_config(const std::string& path);

// The limits of `user` (a users-file name): its quota_bytes / quota_messages where set, else
// the [quota] defaults. Immutable data only: safe on event loops and from any thread.
QuotaLimits quota_of(const StoreConfig& c, std::string_view user);

}  // namespace basalt::store
