// [directory] configuration: parsed once (startup or reload) into an immutable struct, then
// used to build one Directory per event loop.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

#include "common/net.h"
#include "common/result.h"
#include "directory/directory.h"

struct event_base;

namespace basalt {
class ThreadPool;
}

namespace basalt::directory {

class UserTable;

enum class DirectoryBackend { kLdap, kFile };
enum class LdapScope { kBase, kOne, kSub };

const char* to_string(DirectoryBackend backend);
const char* to_string(LdapScope scope);

// One entry of [directory.ldap].uris, resolved at parse time: the loop must never wait on DNS.
struct LdapServer {
  std::string uri;        // as configured, e.g. "ldap://ldap1.example.org:389"
  SocketAddress address;  // where to connect
};

struct LdapConfig {
  std::vector<LdapServer> servers;  // tried in order
  std::string bind_dn;              // "" = anonymous searches
  std::string bind_password;        // from bind_password or bind_password_file
  std::string base_dn = "ou=people,dc=example,dc=org";
  LdapScope scope = LdapScope::kSub;
  std::string user_filter = "(&(objectClass=inetOrgPerson)(uid=%u))";
  std::string login_attribute = "uid";
  std::string route_attribute = "mailHost";
  std::string status_attribute = "mailUserStatus";
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds operation_timeout{3000};
  int bind_connections = 2;
  size_t max_pending = 1024;
  std::chrono::milliseconds retry_interval{1000};
};

// Maps the raw status attribute value to an outcome (case-insensitive).
struct StatusRules {
  std::vector<std::string> disabled_values{"disabled", "inactive", "deleted"};
  std::vector<std::string> moving_values{"moving"};

  // kDisabled, kMoving, or kOk for anything else (including an absent status).
  AuthOutcome classify(std::string_view status) const;
};

struct DirectoryConfig {
  DirectoryBackend backend = DirectoryBackend::kLdap;
  std::chrono::seconds cache_ttl{30};  // 0 disables the route cache
  std::string file;                    // users file (absolute), for backend = "file"
  StatusRules status;
  LdapConfig ldap;
  // Loaded at parse time when backend = "file", so a broken users file is a config error.
  std::shared_ptr<const UserTable> users;
};

// Parses the [directory] table (pass an empty table for all defaults). `base_dir` resolves
// relative paths (file, bind_password_file). Errors name the offending key, e.g.
// "directory.ldap.scope: expected one of base, one, sub, got 'subtree'". Unknown keys are
// errors too, so a typo never silently falls back to a default.
Result<DirectoryConfig> parse_directory_config(const toml::table& directory_table,
                                               const std::string& base_dir);

// Where a directory runs checks that are slow by design (the file directory's {CRYPT} hashes
// cost milliseconds) and how their results get back to its loop: never on the loop itself.
struct Offload {
  ThreadPool& pool;
  std::function<void(std::function<void()>)> to_loop;  // thread-safe; runs the task on the loop
};

// Builds the configured implementation on `base`. Call it on (or before starting) the loop's
// thread; the Directory must be used and destroyed on that loop only. Without `offload`
// (command-line tools) slow checks run on the calling thread.
std::unique_ptr<Directory> make_directory(const DirectoryConfig& config, event_base* base,
                                          std::optional<Offload> offload = std::nullopt);

}  // namespace basalt::directory
