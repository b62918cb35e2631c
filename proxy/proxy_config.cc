#include "proxy/proxy_config.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <toml++/toml.h>

namespace basalt::proxy {
namespace {

// Reads typed keys from one TOML table; remembers the first error with the key's full name.
class Reader {
 public:
  Reader(const toml::table* table, std::string prefix, std::string* error)
      : table_(table), prefix_(std::move(prefix)), error_(error) {}

  template <class T>
  T get(const char* key, T fallback) {
    if (!table_) return fallback;
    const toml::node* node = table_->get(key);
    if (!node) return fallback;
    if constexpr (std::is_same_v<T, std::string>) {
      if (auto v = node->value<std::string>()) return *v;
      fail(key, "a string");
    } else if constexpr (std::is_same_v<T, bool>) {
      if (auto v = node->value<bool>()) return *v;
      fail(key, "true or false");
    } else {
      auto v = node->value<int64_t>();
      if (v && *v >= 0) return static_cast<T>(*v);
      fail(key, "a non-negative integer");
    }
    return fallback;
  }

  std::vector<std::string> strings(const char* key, std::vector<std::string> fallback) {
    if (!table_ || !table_->get(key)) return fallback;
    const toml::array* array = table_->get(key)->as_array();
    std::vector<std::string> out;
    if (array) {
      for (const auto& item : *array) {
        if (auto v = item.value<std::string>()) out.push_back(*v);
        else array = nullptr;
        if (!array) break;
      }
    }
    if (!array) fail(key, "a list of strings");
    return out;
  }

  // A typo must not silently fall back to a default.
  void only(std::initializer_list<std::string_view> keys) {
    if (!table_) return;
    for (const auto& [key, value] : *table_) {
      bool known = false;
      for (auto k : keys) known = known || k == key.str();
      if (!known && error_->empty()) *error_ = prefix_ + std::string(key.str()) + ": unknown key";
    }
  }

  void fail(const char* key, const std::string& what) {
    if (error_->empty()) *error_ = prefix_ + key + " must be " + what;
  }
  void fail_value(const char* key, const std::string& message) {
    if (error_->empty()) *error_ = prefix_ + key + ": " + message;
  }

 private:
  const toml::table* table_;
  std::string prefix_;
  std::string* error_;
};

std::string resolve_path(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path.front() == '/') return path;
  return (std::filesystem::path(base_dir) / path).string();
}

std::string read_secret_file(const std::string& path, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = "cannot read '" + path + "'";
    return {};
  }
  std::string line;
  std::getline(in, line);
  return line;
}

void parse_general(const toml::table& root, ProxyConfig& c, std::string* error) {
  for (const auto& [key, value] : root) {
    static constexpr std::string_view kTables[] = {"log",   "proxy",     "limits", "tls",       "listener",
                                                   "admin", "directory", "shard",  "auth_cache"};
    if (std::find(std::begin(kTables), std::end(kTables), key.str()) == std::end(kTables) && error->empty()) {
      *error = std::string(key.str()) + ": unknown table";
    }
  }
  Reader log(root["log"].as_table(), "log.", error);
  log.only({"level"});
  c.log_level = log.get<std::string>("level", c.log_level);
  Reader p(root["proxy"].as_table(), "proxy.", error);
  p.only({"workers", "greeting", "user", "auth_failure_delay_ms", "auth_failure_max_delay_ms", "auth_penalty_decay_s",
          "trusted_networks", "trusted_load_balancers", "drain_timeout_s", "early_shard_login",
          "warm_shard_connections", "warm_shard_max_age_s"});
  auto workers = p.get<int64_t>("workers", c.workers);
  if (workers < 1 || workers > 256) p.fail("workers", "between 1 and 256");
  else c.workers = static_cast<unsigned>(workers);
  c.greeting = p.get<std::string>("greeting", c.greeting);
  c.early_shard_login = p.get<bool>("early_shard_login", c.early_shard_login);
  auto warm = p.get<int64_t>("warm_shard_connections", static_cast<int64_t>(c.warm_shard_connections));
  if (warm < 0 || warm > 64) p.fail("warm_shard_connections", "between 0 and 64");
  else c.warm_shard_connections = static_cast<size_t>(warm);
  auto warm_age = p.get<int64_t>("warm_shard_max_age_s", c.warm_shard_max_age.count());
  if (warm_age < 1 || warm_age > 3600) p.fail("warm_shard_max_age_s", "between 1 and 3600");
  else c.warm_shard_max_age = std::chrono::seconds(warm_age);
  c.run_as_user = p.get<std::string>("user", "");
  c.auth_failure_delay = std::chrono::milliseconds(p.get<int64_t>("auth_failure_delay_ms", 2000));
  c.drain_timeout = std::chrono::seconds(p.get<int64_t>("drain_timeout_s", 30));
  c.auth_failure_max_delay = std::chrono::milliseconds(p.get<int64_t>("auth_failure_max_delay_ms", 15000));
  if (c.auth_failure_max_delay < c.auth_failure_delay) p.fail("auth_failure_max_delay_ms", "at least auth_failure_delay_ms");
  c.auth_penalty_decay = std::chrono::seconds(p.get<int64_t>("auth_penalty_decay_s", 60));
  auto trusted = NetworkList::parse(p.strings("trusted_networks", {}));
  if (!trusted) p.fail_value("trusted_networks", trusted.error().message);
  else c.trusted_networks = *trusted;
  auto balancers = NetworkList::parse(p.strings("trusted_load_balancers", {}));
  if (!balancers) p.fail_value("trusted_load_balancers", balancers.error().message);
  else c.trusted_load_balancers = *balancers;

  Reader a(root["auth_cache"].as_table(), "auth_cache.", error);
  a.only({"ttl_s", "iterations", "max_entries"});
  c.auth_cache.ttl = std::chrono::seconds(a.get<int64_t>("ttl_s", 0));
  c.auth_cache.iterations = a.get<unsigned>("iterations", c.auth_cache.iterations);
  if (c.auth_cache.iterations < 1000) a.fail("iterations", "at least 1000");
  c.auth_cache.max_entries = a.get<size_t>("max_entries", c.auth_cache.max_entries);
  Reader l(root["limits"].as_table(), "limits.", error);
  l.only({"max_line", "max_literal", "max_bad_commands", "max_connections_per_ip", "max_sessions_per_user",
          "preauth_timeout_s", "idle_timeout_s", "relay_high_watermark"});
  c.limits.max_line = l.get<size_t>("max_line", c.limits.max_line);
  if (c.limits.max_line < 512) l.fail("max_line", "at least 512");
  if (c.limits.max_line > (1u << 20)) l.fail("max_line", "at most 1048576");
  c.limits.max_literal = l.get<size_t>("max_literal", c.limits.max_literal);
  if (c.limits.max_literal > (16u << 20)) l.fail("max_literal", "at most 16777216");
  c.limits.max_bad_commands = l.get<size_t>("max_bad_commands", c.limits.max_bad_commands);
  c.limits.max_connections_per_ip = l.get<size_t>("max_connections_per_ip", c.limits.max_connections_per_ip);
  c.limits.max_sessions_per_user = l.get<size_t>("max_sessions_per_user", c.limits.max_sessions_per_user);
  if (c.limits.max_bad_commands == 0) l.fail("max_bad_commands", "at least 1");
  c.limits.preauth_timeout = std::chrono::seconds(l.get<int64_t>("preauth_timeout_s", 180));
  if (c.limits.preauth_timeout.count() == 0) l.fail("preauth_timeout_s", "at least 1");
  c.limits.idle_timeout = std::chrono::seconds(l.get<int64_t>("idle_timeout_s", 1800));
  if (c.limits.idle_timeout.count() == 0) l.fail("idle_timeout_s", "at least 1");
  c.limits.relay_high_watermark = l.get<size_t>("relay_high_watermark", c.limits.relay_high_watermark);
  if (c.limits.relay_high_watermark < 16384) l.fail("relay_high_watermark", "at least 16384");
}

void parse_tls(const toml::table& root, const std::string& base_dir, ProxyConfig& c, std::string* error) {
  const toml::table* t = root["tls"].as_table();
  if (!t) return;
  Reader r(t, "tls.", error);
  r.only({"certificate", "private_key", "min_version", "ciphers", "ciphersuites", "sni"});
  c.tls_enabled = true;
  c.tls.certificate = resolve_path(base_dir, r.get<std::string>("certificate", ""));
  c.tls.private_key = resolve_path(base_dir, r.get<std::string>("private_key", ""));
  c.tls.min_version = r.get<std::string>("min_version", c.tls.min_version);
  c.tls.ciphers = r.get<std::string>("ciphers", "");
  c.tls.ciphersuites = r.get<std::string>("ciphersuites", "");
  if (c.tls.certificate.empty()) r.fail("certificate", "set when [tls] is present");
  if (c.tls.private_key.empty()) r.fail("private_key", "set when [tls] is present");
  const toml::array* sni = (*t)["sni"].as_array();
  for (size_t i = 0; sni && i < sni->size(); ++i) {
    Reader e(sni->get(i)->as_table(), "tls.sni[" + std::to_string(i) + "].", error);
    e.only({"names", "certificate", "private_key"});
    ProxyConfig::SniCertificate cert;
    cert.names = e.strings("names", {});
    for (auto& name : cert.names) {
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
    cert.certificate = resolve_path(base_dir, e.get<std::string>("certificate", ""));
    cert.private_key = resolve_path(base_dir, e.get<std::string>("private_key", ""));
    if (cert.names.empty()) e.fail("names", "a non-empty list of host names");
    if (cert.certificate.empty() || cert.private_key.empty()) e.fail("certificate", "set, with private_key");
    c.sni.push_back(std::move(cert));
  }
}

Protocol parse_protocol(const std::string& text, Reader& r) {
  if (text == "imap") return Protocol::kImap;
  if (text == "imaps") return Protocol::kImaps;
  if (text == "pop3") return Protocol::kPop3;
  if (text == "pop3s") return Protocol::kPop3s;
  r.fail("protocol", "one of imap, imaps, pop3, pop3s");
  return Protocol::kImap;
}

void parse_listeners(const toml::table& root, ProxyConfig& c, std::string* error) {
  const toml::array* list = root["listener"].as_array();
  if (!list || list->empty()) {
    if (error->empty()) *error = "at least one [[listener]] is required";
    return;
  }
  for (size_t i = 0; i < list->size(); ++i) {
    Reader r(list->get(i)->as_table(), "listener[" + std::to_string(i) + "].", error);
    r.only({"protocol", "address", "proxy_protocol"});
    ListenerConfig lc;
    lc.protocol = parse_protocol(r.get<std::string>("protocol", ""), r);
    lc.address_text = r.get<std::string>("address", "");
    auto addr = parse_socket_address(lc.address_text);
    if (!addr) r.fail_value("address", addr.error().message);
    else lc.address = *addr;
    if (is_implicit_tls(lc.protocol) && !c.tls_enabled) r.fail("protocol", "imap or pop3 unless [tls] is configured");
    lc.proxy_protocol = r.get<bool>("proxy_protocol", false);
    c.listeners.push_back(lc);
  }
}

void parse_admin(const toml::table& root, ProxyConfig& c, std::string* error) {
  const toml::table* t = root["admin"].as_table();
  if (!t) return;
  Reader r(t, "admin.", error);
  r.only({"address", "token", "token_file"});
  c.admin.enabled = true;
  c.admin.address_text = r.get<std::string>("address", "127.0.0.1:8143");
  auto addr = parse_socket_address(c.admin.address_text);
  if (!addr) r.fail_value("address", addr.error().message);
  else c.admin.address = *addr;
  c.admin.token = r.get<std::string>("token", "");
  if (auto file = r.get<std::string>("token_file", ""); !file.empty()) c.admin.token = read_secret_file(file, error);
  if (c.admin.token.size() < 16) r.fail("token", "at least 16 characters (a bearer token is required)");
}

void parse_shard_address(Reader& r, const char* key, std::string& text, SocketAddress& out, bool& has) {
  text = r.get<std::string>(key, "");
  if (text.empty()) return;
  auto addr = parse_socket_address(text);
  if (!addr) r.fail_value(key, addr.error().message);
  else out = *addr, has = true;
}

ShardConfig parse_shard(const toml::table* t, size_t i, const std::string& base_dir, std::string* error) {
  Reader r(t, "shard[" + std::to_string(i) + "].", error);
  r.only({"name", "hosts", "imap", "pop3", "lmtp", "tls", "tls_ca", "tls_name", "tls_verify", "login", "master_user",
          "master_password", "master_password_file", "connect_timeout_ms", "login_timeout_ms"});
  ShardConfig s;
  s.name = r.get<std::string>("name", "");
  if (s.name.empty()) r.fail("name", "a non-empty string");
  s.hosts = r.strings("hosts", {});
  parse_shard_address(r, "imap", s.imap_text, s.imap, s.has_imap);
  parse_shard_address(r, "pop3", s.pop3_text, s.pop3, s.has_pop3);
  parse_shard_address(r, "lmtp", s.lmtp_text, s.lmtp, s.has_lmtp);
  if (!s.has_imap && !s.has_pop3) r.fail("imap", "set (or pop3): a shard needs an address");
  s.tls = r.get<bool>("tls", false);
  s.tls_ca = resolve_path(base_dir, r.get<std::string>("tls_ca", ""));
  s.tls_name = r.get<std::string>("tls_name", "");
  s.tls_verify = r.get<bool>("tls_verify", true);
  auto login = r.get<std::string>("login", "master");
  if (login == "passthrough") s.login = ShardLogin::kPassthrough;
  else if (login != "master") r.fail("login", "master or passthrough");
  s.master_user = r.get<std::string>("master_user", "");
  s.master_password = r.get<std::string>("master_password", "");
  if (auto file = r.get<std::string>("master_password_file", ""); !file.empty()) {
    s.master_password = read_secret_file(file, error);
  }
  if (s.login == ShardLogin::kMaster && (s.master_user.empty() || s.master_password.empty())) {
    r.fail("master_user", "set with master_password when login = \"master\"");
  }
  s.connect_timeout = std::chrono::milliseconds(r.get<int64_t>("connect_timeout_ms", 3000));
  if (s.connect_timeout.count() == 0) r.fail("connect_timeout_ms", "at least 1");
  s.login_timeout = std::chrono::milliseconds(r.get<int64_t>("login_timeout_ms", 10000));
  if (s.login_timeout.count() == 0) r.fail("login_timeout_ms", "at least 1");
  return s;
}

void parse_shards(const toml::table& root, const std::string& base_dir, ProxyConfig& c, std::string* error) {
  const toml::array* list = root["shard"].as_array();
  if (!list || list->empty()) {
    if (error->empty()) *error = "at least one [[shard]] is required";
    return;
  }
  for (size_t i = 0; i < list->size(); ++i) {
    c.shards.push_back(parse_shard(list->get(i)->as_table(), i, base_dir, error));
    for (size_t j = 0; j + 1 < c.shards.size(); ++j) {
      if (c.shards[j].name == c.shards.back().name && error->empty()) {
        *error = "shard name '" + c.shards.back().name + "' is used twice";
      }
    }
  }
}

}  // namespace

const char* to_string(Protocol protocol) {
  switch (protocol) {
    case Protocol::kImap: return "imap";
    case Protocol::kImaps: return "imaps";
    case Protocol::kPop3: return "pop3";
    case Protocol::kPop3s: return "pop3s";
  }
  return "?";
}

bool is_imap(Protocol protocol) { return protocol == Protocol::kImap || protocol == Protocol::kImaps; }
bool is_implicit_tls(Protocol protocol) { return protocol == Protocol::kImaps || protocol == Protocol::kPop3s; }

Result<ProxyConfig> parse_proxy_config(std::string_view text, const std::string& base_dir) {
  toml::table root;
  try {
    root = toml::parse(text);
  } catch (const toml::parse_error& e) {
    std::ostringstream where;
    where << e.source().begin;
    return make_error(std::string(e.description()) + " at " + where.str());
  }
  ProxyConfig c;
  std::string error;
  parse_general(root, c, &error);
  parse_tls(root, base_dir, c, &error);
  parse_listeners(root, c, &error);
  parse_admin(root, c, &error);
  parse_shards(root, base_dir, c, &error);
  if (!error.empty()) return make_error(error);
  const toml::table* dir = root["directory"].as_table();
  if (!dir) return make_error("a [directory] table is required");
  auto directory = directory::parse_directory_config(*dir, base_dir);
  if (!directory) return directory.error();
  c.directory = std::move(*directory);
  return c;
}

ClientLimits::Settings limit_settings(const ProxyConfig& c) {
  ClientLimits::Settings s;
  s.max_connections_per_ip = c.limits.max_connections_per_ip;
  s.max_sessions_per_user = c.limits.max_sessions_per_user;
  s.penalty_base = c.auth_failure_delay;
  s.penalty_max = c.auth_failure_max_delay;
  s.penalty_decay = c.auth_penalty_decay;
  return s;
}

Result<ProxyConfig> load_proxy_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error("cannot open config file '" + path + "'");
  std::stringstream text;
  text << in.rdbuf();
  auto base = std::filesystem::absolute(path).parent_path().string();
  auto config = parse_proxy_config(text.str(), base);
  if (!config) return make_error(path + ": " + config.error().message);
  config->source = path;
  return config;
}

}  // namespace basalt::proxy
