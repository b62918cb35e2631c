// The embedded directory: users, passwords and routes from a TOML file. For one-machine
// installs and unit tests.
//
//   [[user]]
//   name = "alice"
//   password = "{SSHA512}..."   # {PLAIN} {SSHA} {SSHA256} {SSHA512} {CRYPT}
//   shard = "a"
//   status = "active"           # optional
#pragma once

#include <memory>
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
  FileDirectory(event_base* base, std::shared_ptr<const UserTable> users, StatusRules status);

  // Verifies on the calling thread (crypt(3) schemes cost a few milliseconds by design) and
  // delivers the result from the loop.
  void authenticate(std::string_view user, std::string_view secret, AuthCallback done) override;
  size_t pending() const override { return completions_.size(); }

 private:
  AuthResult check(std::string_view user, std::string_view secret) const;

  std::shared_ptr<const UserTable> users_;
  StatusRules status_;
  CompletionQueue completions_;
};

}  // namespace basalt::directory
