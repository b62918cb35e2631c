#include "directory/directory_config.h"

#include <ldap.h>
#include <netdb.h>
#include <strings.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "directory/file_directory.h"
#include "directory/ldap_escape.h"

namespace basalt::directory {
namespace {

// Reads typed keys of one TOML table with defaults, remembering the first error (callers
// read every key, then check error() once). Errors are prefixed with the key's full path.
class KeyReader {
 public:
  KeyReader(const toml::table& table, std::string path) : table_(table), path_(std::move(path)) {}

  const std::optional<Error>& error() const { return error_; }
  bool has(std::string_view key) const { return table_.get(key) != nullptr; }

  void fail(std::string_view key, const std::string& message) {
    if (error_) return;
    std::string where = path_ + "." + std::string(key);
    if (const toml::node* node = table_.get(key)) {
      where += " (line " + std::to_string(node->source().begin.line) + ")";
    }
    error_ = make_error(where + ": " + message);
  }

  std::string string(std::string_view key, std::string fallback) {
    const toml::node* node = table_.get(key);
    if (!node) return fallback;
    if (!node->is_string()) {
      fail(key, "expected a string");
      return fallback;
    }
    return node->as_string()->get();
  }

  int64_t integer(std::string_view key, int64_t fallback, int64_t min, int64_t max) {
    const toml::node* node = table_.get(key);
    if (!node) return fallback;
    if (!node->is_integer()) {
      fail(key, "expected an integer");
      return fallback;
    }
    int64_t v = node->as_integer()->get();
    if (v < min || v > max) {
      fail(key, "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                    ", got " + std::to_string(v));
      return fallback;
    }
    return v;
  }

  std::vector<std::string> strings(std::string_view key, std::vector<std::string> fallback) {
    const toml::node* node = table_.get(key);
    if (!node) return fallback;
    const toml::array* array = node->as_array();
    if (!array) {
      fail(key, "expected an array of strings");
      return fallback;
    }
    std::vector<std::string> out;
    for (const toml::node& element : *array) {
      if (!element.is_string() || element.as_string()->get().empty()) {
        fail(key, "expected an array of non-empty strings");
        return fallback;
      }
      out.push_back(element.as_string()->get());
    }
    return out;
  }

  void reject_unknown(std::initializer_list<std::string_view> known) {
    for (const auto& [key, value] : table_) {
      if (std::find(known.begin(), known.end(), key.str()) == known.end()) {
        fail(key.str(), "unknown key");
      }
    }
  }

 private:
  const toml::table& table_;
  std::string path_;
  std::optional<Error> error_;
};

std::string resolve_path(const std::string& base_dir, const std::string& path) {
  std::filesystem::path p(path);
  if (p.is_absolute() || base_dir.empty()) return p.lexically_normal().string();
  return (std::filesystem::path(base_dir) / p).lexically_normal().string();
}

Result<std::string> read_secret_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("cannot read '" + path + "': " + std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  std::string secret = buffer.str();
  // Files written by editors or `echo` end in a newline that is not part of the password.
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.empty()) return make_error("'" + path + "' is empty");
  return secret;
}

bool valid_attribute_name(std::string_view name) {
  if (name.empty()) return false;
  if (std::isdigit(static_cast<unsigned char>(name[0]))) {  // numeric OID
    return std::all_of(name.begin(), name.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '.'; });
  }
  return std::isalpha(static_cast<unsigned char>(name[0])) &&
         std::all_of(name.begin(), name.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-'; });
}

bool valid_dn(const std::string& dn) {
  LDAPDN parsed = nullptr;
  int rc = ldap_str2dn(dn.c_str(), &parsed, LDAP_DN_FORMAT_LDAPV3);
  if (parsed) ldap_dnfree(parsed);
  return rc == LDAP_SUCCESS;
}

// Resolves one "ldap://host[:port]" URI; a host name may yield several servers.
Result<std::vector<LdapServer>> resolve_uri(const std::string& uri) {
  LDAPURLDesc* lud = nullptr;
  if (ldap_url_parse(uri.c_str(), &lud) != LDAP_URL_SUCCESS) return make_error("'" + uri + "' is not an LDAP URI");
  CHandle<LDAPURLDesc, ldap_free_urldesc> guard(lud);
  if (strcasecmp(lud->lud_scheme, "ldap") != 0) return make_error("'" + uri + "': only ldap:// is supported");
  if (!lud->lud_host || !*lud->lud_host) return make_error("'" + uri + "' has no host");
  int port = lud->lud_port ? lud->lud_port : LDAP_PORT;
  if (auto numeric = parse_socket_address(lud->lud_host, port)) return std::vector<LdapServer>{{uri, *numeric}};

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  int rc = getaddrinfo(lud->lud_host, std::to_string(port).c_str(), &hints, &found);
  if (rc != 0) return make_error("'" + uri + "': cannot resolve host: " + gai_strerror(rc));
  std::vector<LdapServer> servers;
  for (addrinfo* ai = found; ai; ai = ai->ai_next) {
    servers.push_back({uri, SocketAddress::from(ai->ai_addr, ai->ai_addrlen)});
  }
  freeaddrinfo(found);
  return servers;
}

void parse_servers(KeyReader& r, LdapConfig& ldap) {
  auto uris = r.strings("uris", {"ldap://127.0.0.1:389"});
  if (uris.empty()) r.fail("uris", "at least one URI is required");
  for (const auto& uri : uris) {
    auto resolved = resolve_uri(uri);
    if (!resolved) {
      r.fail("uris", resolved.error().message);
      return;
    }
    ldap.servers.insert(ldap.servers.end(), resolved->begin(), resolved->end());
  }
}

void parse_bind(KeyReader& r, LdapConfig& ldap, const std::string& base_dir) {
  ldap.bind_dn = r.string("bind_dn", "");
  if (!valid_dn(ldap.bind_dn)) r.fail("bind_dn", "'" + ldap.bind_dn + "' is not a valid DN");
  ldap.bind_password = r.string("bind_password", "");
  std::string password_file = r.string("bind_password_file", "");
  if (r.has("bind_password") && r.has("bind_password_file")) {
    r.fail("bind_password_file", "set either bind_password or bind_password_file, not both");
  } else if (!password_file.empty()) {
    auto secret = read_secret_file(resolve_path(base_dir, password_file));
    if (!secret) r.fail("bind_password_file", secret.error().message);
    else ldap.bind_password = std::move(*secret);
  }
  // A simple bind with a DN and an empty password is an *unauthenticated* bind (RFC 4513
  // 5.1.2): it would silently search anonymously.
  if (!ldap.bind_dn.empty() && ldap.bind_password.empty()) {
    r.fail("bind_password", "required when bind_dn is set (or use bind_password_file)");
  }
  if (ldap.bind_dn.empty() && !ldap.bind_password.empty()) {
    r.fail("bind_dn", "required when a bind password is set");
  }
}

void parse_search(KeyReader& r, LdapConfig& ldap) {
  ldap.base_dn = r.string("base_dn", ldap.base_dn);
  if (!valid_dn(ldap.base_dn)) r.fail("base_dn", "'" + ldap.base_dn + "' is not a valid DN");
  std::string scope = r.string("scope", "sub");
  if (scope == "base") ldap.scope = LdapScope::kBase;
  else if (scope == "one") ldap.scope = LdapScope::kOne;
  else if (scope == "sub") ldap.scope = LdapScope::kSub;
  else r.fail("scope", "expected one of base, one, sub, got '" + scope + "'");
  ldap.user_filter = r.string("user_filter", ldap.user_filter);
  if (auto valid = validate_filter_template(ldap.user_filter); !valid) r.fail("user_filter", valid.error().message);
  struct Attr {
    const char* key;
    std::string* field;
  };
  for (Attr a : {Attr{"login_attribute", &ldap.login_attribute}, Attr{"route_attribute", &ldap.route_attribute},
                 Attr{"status_attribute", &ldap.status_attribute}}) {
    *a.field = r.string(a.key, *a.field);
    if (!valid_attribute_name(*a.field)) r.fail(a.key, "'" + *a.field + "' is not an attribute name");
  }
}

void parse_ldap(const toml::table& table, const std::string& base_dir, LdapConfig& ldap,
                std::optional<Error>& error) {
  KeyReader r(table, "directory.ldap");
  r.reject_unknown({"uris", "bind_dn", "bind_password", "bind_password_file", "base_dn", "scope", "user_filter",
                    "login_attribute", "route_attribute", "status_attribute", "connect_timeout_ms",
                    "operation_timeout_ms", "bind_connections", "max_pending", "retry_interval_ms"});
  parse_servers(r, ldap);
  parse_bind(r, ldap, base_dir);
  parse_search(r, ldap);
  ldap.connect_timeout = std::chrono::milliseconds(r.integer("connect_timeout_ms", 2000, 1, 60000));
  ldap.operation_timeout = std::chrono::milliseconds(r.integer("operation_timeout_ms", 3000, 1, 60000));
  ldap.bind_connections = static_cast<int>(r.integer("bind_connections", 2, 1, 64));
  ldap.max_pending = static_cast<size_t>(r.integer("max_pending", 1024, 1, 1000000));
  ldap.retry_interval = std::chrono::milliseconds(r.integer("retry_interval_ms", 1000, 0, 600000));
  if (r.error()) error = r.error();
}

void parse_status(KeyReader& r, StatusRules& status) {
  status.disabled_values = r.strings("disabled_values", status.disabled_values);
  status.moving_values = r.strings("moving_values", status.moving_values);
  for (const auto& d : status.disabled_values) {
    for (const auto& m : status.moving_values) {
      if (strcasecmp(d.c_str(), m.c_str()) == 0) r.fail("moving_values", "'" + m + "' is also in disabled_values");
    }
  }
}

}  // namespace

const char* to_string(DirectoryBackend backend) {
  switch (backend) {
    case DirectoryBackend::kLdap: return "ldap";
    case DirectoryBackend::kFile: return "file";
  }
  return "?";
}

const char* to_string(LdapScope scope) {
  switch (scope) {
    case LdapScope::kBase: return "base";
    case LdapScope::kOne: return "one";
    case LdapScope::kSub: return "sub";
  }
  return "?";
}

AuthOutcome StatusRules::classify(std::string_view status) const {
  std::string s(status);
  auto in = [&](const std::vector<std::string>& values) {
    return std::any_of(values.begin(), values.end(), [&](const std::string& v) { return strcasecmp(v.c_str(), s.c_str()) == 0; });
  };
  if (!s.empty() && in(disabled_values)) return AuthOutcome::kDisabled;
  if (!s.empty() && in(moving_values)) return AuthOutcome::kMoving;
  return AuthOutcome::kOk;
}

Result<DirectoryConfig> parse_directory_config(const toml::table& directory_table, const std::string& base_dir) {
  DirectoryConfig config;
  KeyReader r(directory_table, "directory");
  r.reject_unknown({"backend", "cache_ttl_s", "file", "disabled_values", "moving_values", "ldap"});
  std::string backend = r.string("backend", "ldap");
  if (backend == "ldap") config.backend = DirectoryBackend::kLdap;
  else if (backend == "file") config.backend = DirectoryBackend::kFile;
  else r.fail("backend", "expected 'ldap' or 'file', got '" + backend + "'");
  config.cache_ttl = std::chrono::seconds(r.integer("cache_ttl_s", 30, 0, 86400));
  std::string file = r.string("file", "users.toml");
  if (file.empty()) r.fail("file", "must not be empty");
  config.file = resolve_path(base_dir, file);
  parse_status(r, config.status);
  if (r.error()) return *r.error();

  std::optional<Error> error;
  const toml::node* ldap_node = directory_table.get("ldap");
  if (ldap_node && !ldap_node->is_table()) return make_error("directory.ldap: expected a table");
  // A present LDAP table is validated even for backend = "file", so that switching backends
  // later does not reveal old mistakes.
  static const toml::table empty;
  const toml::table& ldap_table = ldap_node ? *ldap_node->as_table() : empty;
  if (config.backend == DirectoryBackend::kLdap || ldap_node) parse_ldap(ldap_table, base_dir, config.ldap, error);
  if (error) return *error;

  if (config.backend == DirectoryBackend::kFile) {
    auto users = UserTable::load(config.file);
    if (!users) return make_error("directory.file: " + users.error().message);
    config.users = std::move(*users);
  }
  return config;
}

}  // namespace basalt::directory
