// The embedded directory: users, passwords and routes from a TOML file. For one-machine
// installs and unit tests.
//
//   [[user]]
//   name = "alice"
//   password = "{SSHA512}..."   # {PLAIN} {SSHA} {SSHA256} {SSHA512} {CRYPT}
//   shard = "a"
//   status = "active"           # optional
//   quota_bytes = 1073741824    # optional, basalt-store only: overrides [quota] storage_bytes
//   quota_messages = 100000     # optional, basalt-store only: overrides [quota] messages
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <toml++/toml.h>

#include "common/result.h"
#include "directory/completion_queue.h"
#include "directory/directory.h"
#include "directory/directory_config.h"
#include "directory/password.h"

namespace basalt::directory {

struct FileUser {
  std::string name;
  StoredPassword password;
  std::string shard;
  std::string status;
  // basalt-store quotas; unset = the store's [quota] default, 0 = unlimited. The proxy ignores them.
  std::optional<uint64_t> quota_bytes;
  std::optional<uint64_t> quota_messages;
};

// Immutable once loaded; one table may be shared by the directories of several loops.
class UserTable {
 public:
  // Errors name the file and the entry: "users.toml: user[3] (line 12): missing 'shard'".
  static Result<std::shared_ptr<const UserTable>> load(const std::string& path);
  static Result<std::shared_ptr<const UserTable>> parse(const toml::table& root, const std::string& origin);

  const FileUser* find(std::string_view name) const;
  size_t size() const { return users_.size(); }

 private:
  std::unordered_map<std::string, FileUser> users_;
};

class FileDirectory final : public Directory {
 public:
  FileDirectory(event_base* base, std::shared_ptr<const UserTable> users, StatusRules status,
                std::optional<Offload> offload = std::nullopt);
  ~FileDirectory() override;

  // A {CRYPT} hash (milliseconds by design) is checked on the offload pool when there is one,
  // anything else on the calling thread; the result is always delivered from the loop.
  void authenticate(std::string_view user, std::string_view secret, AuthCallback done) override;
  size_t pending() const override { return completions_.size() + offloaded_; }

 private:
  static AuthResult check(const UserTable* users, const StatusRules& status, std::string_view user,
                          std::string_view secret);
  bool offload_check(std::string_view user, std::string_view secret, AuthCallback& done);
  void deliver(AuthResult result, AuthCallback done, std::string_view user);

  std::shared_ptr<const UserTable> users_;
  StatusRules status_;
  std::optional<Offload> offload_;
  CompletionQueue completions_;
  size_t offloaded_ = 0;  // checks running on the pool
  // Read on the loop only: a pool result that comes back after the directory is gone is dropped.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace basalt::directory
