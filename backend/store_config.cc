#include "backend/store_config.h"

#include <filesystem>
#include <set>

#include "directory/file_directory.h"

namespace basalt::store {
namespace {

constexpr int64_t kMaxMessageSize = (int64_t{1} << 30) - (int64_t{1} << 20);

template <class T>
Result<void> read_key(const toml::table& t, const std::string& table, const char* key, T& out) {
  const toml::node* n = t.get(key);
  if (!n) return {};
  auto v = n->value<T>();
  if (!v) return make_error(table + "." + key + ": wrong type");
  out = *v;
  return {};
}

Result<void> check_keys(const toml::table& t, const std::string& table, const std::set<std::string>& known) {
  for (const auto& [k, _] : t) {
    if (!known.count(std::string(k.str()))) return make_error(table + "." + std::string(k.str()) + ": unknown key");
  }
  return {};
}

std::string absolute(const std::string& p, const std::string& base) {
  if (p.empty() || p.front() == '/') return p;
  return (std::filesystem::path(base) / p).lexically_normal().string();
}

Result<void> parse_store_table(const toml::table& t, const std::string& base, StoreConfig& c) {
  if (auto r = check_keys(t, "store", {"shard_name", "spool_root", "index_root", "users_file", "lmtp_listen",
                                       "max_message_size", "delivery_threads", "max_connections",
                                       "lmtp_timeout_s", "fsync", "io_threads"});
      !r)
    return r;
  int64_t max_size = static_cast<int64_t>(c.max_message_size), threads = c.delivery_threads,
          conns = c.max_connections, timeout = c.lmtp_timeout_s, io_threads = c.io_threads;
  for (auto r : {read_key(t, "store", "shard_name", c.shard_name), read_key(t, "store", "spool_root", c.spool_root),
                 read_key(t, "store", "index_root", c.index_root), read_key(t, "store", "users_file", c.users_file),
                 read_key(t, "store", "lmtp_listen", c.lmtp_listen_text),
                 read_key(t, "store", "max_message_size", max_size),
                 read_key(t, "store", "delivery_threads", threads), read_key(t, "store", "max_connections", conns),
                 read_key(t, "store", "lmtp_timeout_s", timeout), read_key(t, "store", "fsync", c.fsync),
                 read_key(t, "store", "io_threads", io_threads)}) {
    if (!r) return r;
  }
  if (c.shard_name.empty()) return make_error("store.shard_name: required");
  if (c.spool_root.empty()) return make_error("store.spool_root: required");
  if (c.index_root.empty()) return make_error("store.index_root: required");
  if (c.users_file.empty()) return make_error("store.users_file: required");
  // The spool takes at most 1 GiB per blob; leave room for the Return-Path line.
  if (max_size < 1 || max_size > kMaxMessageSize) return make_error("store.max_message_size: 1..1072693248");
  if (threads < 1 || threads > 64) return make_error("store.delivery_threads: 1..64");
  if (conns < 1 || timeout < 1) return make_error("store.max_connections / lmtp_timeout_s: must be positive");
  if (io_threads < 1 || io_threads > 256) return make_error("store.io_threads: 1..256");
  c.io_threads = static_cast<unsigned>(io_threads);
  c.max_message_size = static_cast<size_t>(max_size);
  c.delivery_threads = static_cast<unsigned>(threads);
  c.max_connections = static_cast<unsigned>(conns);
  c.lmtp_timeout_s = static_cast<unsigned>(timeout);
  c.spool_root = absolute(c.spool_root, base);
  c.index_root = absolute(c.index_root, base);
  c.users_file = absolute(c.users_file, base);
  auto addr = parse_socket_address(c.lmtp_listen_text, 24);
  if (!addr) return make_error("store.lmtp_listen: " + addr.error().message);
  c.lmtp_listen = *addr;
  return {};
}

Result<void> parse_service(const toml::table& t, const std::string& name, int default_port, ServiceConfig& out,
                           size_t* max_append) {
  std::set<std::string> known{"listen", "max_connections", "idle_timeout_s", "login_timeout_s"};
  if (max_append) known.insert("max_append_size");
  if (auto r = check_keys(t, name, known); !r) return r;
  int64_t conns = out.max_connections, idle = out.idle_timeout_s, login = out.login_timeout_s,
          append = max_append ? static_cast<int64_t>(*max_append) : 0;
  for (auto r : {read_key(t, name, "listen", out.listen_text), read_key(t, name, "max_connections", conns),
                 read_key(t, name, "idle_timeout_s", idle), read_key(t, name, "login_timeout_s", login),
                 read_key(t, name, "max_append_size", append)}) {
    if (!r) return r;
  }
  if (conns < 1 || conns > 1000000) return make_error(name + ".max_connections: 1..1000000");
  if (idle < 60 || login < 1) return make_error(name + ".idle_timeout_s >= 60, login_timeout_s >= 1");
  if (max_append && (append < 1 || append > kMaxMessageSize)) return make_error(name + ".max_append_size: 1..1072693248");
  out.max_connections = static_cast<unsigned>(conns);
  out.idle_timeout_s = static_cast<unsigned>(idle);
  out.login_timeout_s = static_cast<unsigned>(login);
  if (max_append) *max_append = static_cast<size_t>(append);
  if (out.listen_text.empty()) return {};
  auto addr = parse_socket_address(out.listen_text, default_port);
  if (!addr) return make_error(name + ".listen: " + addr.error().message);
  out.listen = *addr;
  return {};
}

Result<void> parse_auth(const toml::table& t, StoreConfig& c) {
  if (auto r = check_keys(t, "auth", {"trusted_networks", "plaintext_auth", "master"}); !r) return r;
  if (auto r = read_key(t, "auth", "plaintext_auth", c.plaintext_auth); !r) return r;
  std::vector<std::string> nets;
  if (const toml::node* n = t.get("trusted_networks")) {
    const toml::array* a = n->as_array();
    if (!a) return make_error("auth.trusted_networks: must be an array of CIDR strings");
    for (const toml::node& e : *a) {
      auto v = e.value<std::string>();
      if (!v) return make_error("auth.trusted_networks: must be an array of CIDR strings");
      nets.push_back(*v);
    }
  }
  auto list = NetworkList::parse(nets);
  if (!list) return make_error("auth.trusted_networks: " + list.error().message);
  c.trusted_networks = *list;
  const toml::node* masters = t.get("master");
  if (!masters) return {};
  const toml::array* a = masters->as_array();
  if (!a) return make_error("auth.master: use [[auth.master]] tables");
  for (size_t i = 0; i < a->size(); ++i) {
    const toml::table* m = a->get(i)->as_table();
    std::string where = "auth.master[" + std::to_string(i) + "]";
    if (!m) return make_error(where + ": must be a table");
    if (auto r = check_keys(*m, where, {"name", "password"}); !r) return r;
    std::string name, password;
    if (auto r = read_key(*m, where, "name", name); !r) return r;
    if (auto r = read_key(*m, where, "password", password); !r) return r;
    if (name.empty() || password.empty()) return make_error(where + ": name and password are required");
    auto stored = directory::parse_stored_password(password);
    if (!stored) return make_error(where + ".password: " + stored.error().message);
    c.masters.push_back({name, *stored});
  }
  return {};
}

Result<void> parse_tls(const toml::table& t, const std::string& base, StoreConfig& c) {
  if (auto r = check_keys(t, "tls", {"certificate", "private_key", "min_version", "ciphers", "ciphersuites"}); !r) return r;
  for (auto r : {read_key(t, "tls", "certificate", c.tls.certificate), read_key(t, "tls", "private_key", c.tls.private_key),
                 read_key(t, "tls", "min_version", c.tls.min_version), read_key(t, "tls", "ciphers", c.tls.ciphers),
                 read_key(t, "tls", "ciphersuites", c.tls.ciphersuites)}) {
    if (!r) return r;
  }
  if (c.tls.certificate.empty() || c.tls.private_key.empty()) return make_error("tls: certificate and private_key are required");
  c.tls.certificate = absolute(c.tls.certificate, base);
  c.tls.private_key = absolute(c.tls.private_key, base);
  c.tls_enabled = true;
  return {};
}

Result<void> parse_quota(const toml::table& t, StoreConfig& c) {
  if (auto r = check_keys(t, "quota", {"storage_bytes", "messages"}); !r) return r;
  int64_t bytes = 0, messages = 0;
  for (auto r : {read_key(t, "quota", "storage_bytes", bytes), read_key(t, "quota", "messages", messages)}) {
    if (!r) return r;
  }
  if (bytes < 0 || messages < 0) return make_error("quota.storage_bytes / messages: 0 (unlimited) or more");
  c.quota = QuotaLimits{static_cast<uint64_t>(bytes), static_cast<uint64_t>(messages)};
  return {};
}

// The optional tables after [store]: [imap] [pop3] [auth] [tls] [quota].
Result<void> parse_optional_tables(const toml::table& root, const std::string& base, StoreConfig& c) {
  if (const toml::table* t = root["imap"].as_table()) {
    if (auto r = parse_service(*t, "imap", 143, c.imap, &c.max_append_size); !r) return r;
  }
  if (const toml::table* t = root["pop3"].as_table()) {
    if (auto r = parse_service(*t, "pop3", 110, c.pop3, nullptr); !r) return r;
  }
  if (const toml::table* t = root["auth"].as_table()) {
    if (auto r = parse_auth(*t, c); !r) return r;
  }
  if (const toml::table* t = root["tls"].as_table()) {
    if (auto r = parse_tls(*t, base, c); !r) return r;
  }
  if (const toml::node* n = root.get("quota")) {
    if (!n->as_table()) return make_error("quota: must be a table ([quota])");
    if (auto r = parse_quota(*n->as_table(), c); !r) return r;
  }
  return {};
}

}  // namespace

Result<StoreConfig> load_store_config(const std::string& path) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return make_error(path + ": " + std::string(e.description()));
  }
  StoreConfig c;
  std::string base = std::filesystem::path(path).parent_path().string();
  if (auto r = check_keys(root, "", {"log", "store", "imap", "pop3", "auth", "tls", "quota"}); !r) return r.error();
  if (const toml::table* log = root["log"].as_table()) {
    if (auto r = read_key(*log, "log", "level", c.log_level); !r) return r.error();
  }
  const toml::table* store = root["store"].as_table();
  if (!store) return make_error(path + ": missing [store]");
  if (auto r = parse_store_table(*store, base, c); !r) return r.error();
  if (auto r = parse_optional_tables(root, base, c); !r) return r.error();
  auto users = directory::UserTable::load(c.users_file);
  if (!users) return make_error("store.users_file: " + users.error().message);
  c.users = *users;
  return c;
}

QuotaLimits quota_of(const StoreConfig& c, std::string_view user) {
  QuotaLimits limits = c.quota;
  const directory::FileUser* u = c.users ? c.users->find(user) : nullptr;
  if (!u) return limits;
  limits.bytes = u->quota_bytes.value_or(limits.bytes);
  limits.messages = u->quota_messages.value_or(limits.messages);
  return limits;
}

}  // namespace basalt::store
