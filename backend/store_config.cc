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
                                       "lmtp_timeout_s", "fsync"});
      !r)
    return r;
  int64_t max_size = static_cast<int64_t>(c.max_message_size), threads = c.delivery_threads,
          conns = c.max_connections, timeout = c.lmtp_timeout_s;
  for (auto r : {read_key(t, "store", "shard_name", c.shard_name), read_key(t, "store", "spool_root", c.spool_root),
                 read_key(t, "store", "index_root", c.index_root), read_key(t, "store", "users_file", c.users_file),
                 read_key(t, "store", "lmtp_listen", c.lmtp_listen_text),
                 read_key(t, "store", "max_message_size", max_size),
                 read_key(t, "store", "delivery_threads", threads), read_key(t, "store", "max_connections", conns),
                 read_key(t, "store", "lmtp_timeout_s", timeout), read_key(t, "store", "fsync", c.fsync)}) {
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
  if (auto r = check_keys(root, "", {"log", "store"}); !r) return r.error();
  if (const toml::table* log = root["log"].as_table()) {
    if (auto r = read_key(*log, "log", "level", c.log_level); !r) return r.error();
  }
  const toml::table* store = root["store"].as_table();
  if (!store) return make_error(path + ": missing [store]");
  if (auto r = parse_store_table(*store, base, c); !r) return r.error();
  auto users = directory::UserTable::load(c.users_file);
  if (!users) return make_error("store.users_file: " + users.error().message);
  c.users = *users;
  return c;
}

}  // namespace basalt::store
