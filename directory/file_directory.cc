#include "directory/file_directory.h"

#include <algorithm>

#include "common/log.h"
#include "common/sasl.h"
#include "common/thread_pool.h"
#include "directory/ldap_escape.h"

namespace basalt::directory {
namespace {

// An optional non-negative integer key (quota_bytes, quota_messages).
Result<void> read_count(const toml::table& entry, const char* key, std::optional<uint64_t>& out) {
  const toml::node* node = entry.get(key);
  if (!node) return {};
  const toml::value<int64_t>* v = node->as_integer();
  if (!v || v->get() < 0) return make_error(std::string("'") + key + "' must be a non-negative integer");
  out = static_cast<uint64_t>(v->get());
  return {};
}

Result<FileUser> parse_user(const toml::table& entry) {
  static constexpr std::string_view kKeys[] = {"name", "password", "shard", "status", "quota_bytes", "quota_messages"};
  for (const auto& [key, value] : entry) {
    if (std::find(std::begin(kKeys), std::end(kKeys), key.str()) == std::end(kKeys)) {
      return make_error("unknown key '" + std::string(key.str()) + "'");
    }
  }
  auto text = [&](const char* key) -> std::optional<std::string> {
    const toml::node* node = entry.get(key);
    if (!node || !node->is_string()) return std::nullopt;
    return node->as_string()->get();
  };
  FileUser user;
  for (const char* key : {"name", "password", "shard"}) {
    if (!text(key) || text(key)->empty()) return make_error(std::string("missing or non-string '") + key + "'");
  }
  if (entry.get("status") && !text("status")) return make_error("'status' must be a string");
  user.name = *text("name");
  if (auto valid = validate_user_name(user.name); !valid) return make_error("name: " + valid.error().message);
  auto password = parse_stored_password(*text("password"));
  if (!password) return make_error("password: " + password.error().message);
  user.password = std::move(*password);
  user.shard = *text("shard");
  user.status = text("status").value_or("");
  if (auto r = read_count(entry, "quota_bytes", user.quota_bytes); !r) return r.error();
  if (auto r = read_count(entry, "quota_messages", user.quota_messages); !r) return r.error();
  return user;
}

}  // namespace

Result<std::shared_ptr<const UserTable>> UserTable::load(const std::string& path) {
  try {
    toml::table root = toml::parse_file(path);
    return parse(root, path);
  } catch (const toml::parse_error& e) {
    return make_error(path + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()));
  }
}

Result<std::shared_ptr<const UserTable>> UserTable::parse(const toml::table& root, const std::string& origin) {
  for (const auto& [key, value] : root) {
    if (key != "user") return make_error(origin + ": unknown top-level key '" + std::string(key.str()) + "'");
  }
  auto table = std::make_shared<UserTable>();
  const toml::node* users = root.get("user");
  if (!users) return std::shared_ptr<const UserTable>(table);  // an empty directory is valid
  const toml::array* array = users->as_array();
  if (!array || !array->is_array_of_tables()) return make_error(origin + ": 'user' must be an array of tables ([[user]])");
  size_t index = 0;
  for (const toml::node& node : *array) {
    std::string where = origin + ": user[" + std::to_string(index++) + "] (line " +
                        std::to_string(node.source().begin.line) + ")";
    auto user = parse_user(*node.as_table());
    if (!user) return make_error(where + ": " + user.error().message);
    std::string name = user->name;
    if (!table->users_.emplace(name, std::move(*user)).second) {
      return make_error(where + ": duplicate user '" + name + "'");
    }
  }
  return std::shared_ptr<const UserTable>(table);
}

const FileUser* UserTable::find(std::string_view name) const {
  auto it = users_.find(std::string(name));
  return it == users_.end() ? nullptr : &it->second;
}

FileDirectory::FileDirectory(event_base* base, std::shared_ptr<const UserTable> users, StatusRules status,
                             std::optional<Offload> offload)
    : users_(std::move(users)), status_(std::move(status)), offload_(std::move(offload)), completions_(base) {}

FileDirectory::~FileDirectory() { *alive_ = false; }

void FileDirectory::authenticate(std::string_view user, std::string_view secret, AuthCallback done) {
  if (offload_check(user, secret, done)) return;
  deliver(check(users_.get(), status_, user, secret), std::move(done), user);
}

void FileDirectory::deliver(AuthResult result, AuthCallback done, std::string_view user) {
  logger("directory")->debug("file auth user={} outcome={} detail={}", validate_user_name(user) ? std::string(user) : "<invalid>",
                             to_string(result.outcome), result.detail);
  completions_.post(std::move(done), std::move(result));
}

// The table and rules travel with the job, so a reload that replaces this directory cannot
// pull them from under it. False when the check is cheap, there is no pool or its queue is full
// (then it runs here: slower for the loop, but never a refused login).
bool FileDirectory::offload_check(std::string_view user, std::string_view secret, AuthCallback& done) {
  const FileUser* entry = users_ ? users_->find(user) : nullptr;
  if (!offload_ || !entry || entry->password.scheme != PasswordScheme::kCrypt) return false;
  std::weak_ptr<bool> alive = alive_;
  auto job = [this, alive, to_loop = offload_->to_loop, users = users_, status = status_, user = std::string(user),
              secret = std::string(secret), done]() mutable {
    AuthResult result = check(users.get(), status, user, secret);
    sasl::wipe(secret);
    to_loop([this, alive, result = std::move(result), user = std::move(user), done = std::move(done)]() mutable {
      if (alive.expired()) return;
      --offloaded_;
      deliver(std::move(result), std::move(done), user);
    });
  };
  if (!offload_->pool.post(std::move(job), 4096)) return false;
  ++offloaded_;
  return true;
}

AuthResult FileDirectory::check(const UserTable* users, const StatusRules& status, std::string_view user,
                                 std::string_view secret) {
  AuthResult result;
  result.outcome = AuthOutcome::kBadCredentials;
  if (auto valid = validate_user_name(user); !valid) {
    result.detail = "invalid user name: " + valid.error().message;
    return result;
  }
  if (secret.empty()) {
    result.detail = "empty password";
    return result;
  }
  const FileUser* entry = users ? users->find(user) : nullptr;
  if (!entry) {
    result.detail = "unknown user";
    return result;
  }
  if (!verify_password(entry->password, secret)) {
    result.detail = "wrong password";
    return result;
  }
  result.route = UserRoute{entry->name, "", entry->shard, entry->status};
  result.outcome = status.classify(entry->status);
  result.detail = result.outcome == AuthOutcome::kOk ? "" : "status '" + entry->status + "'";
  return result;
}

}  // namespace basalt::directory
