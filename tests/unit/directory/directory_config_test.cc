#include "directory/directory_config.h"

#include <gtest/gtest.h>

#include "directory/file_directory.h"
#include "test_util.h"

namespace basalt::directory {
namespace {

using testing::TempDir;

Result<DirectoryConfig> parse(const std::string& text, const std::string& base_dir = "/nonexistent") {
  toml::table root = toml::parse(text);
  static const toml::table empty;
  const toml::table* table = root["directory"].as_table();
  // Not `table ? *table : toml::table{}`: that copies, and copies lose source positions.
  return parse_directory_config(table ? *table : empty, base_dir);
}

void expect_error(const std::string& text, const std::string& needle, const std::string& base_dir = "/nonexistent") {
  auto config = parse(text, base_dir);
  ASSERT_FALSE(config) << text;
  EXPECT_NE(config.error().message.find(needle), std::string::npos)
      << "error '" << config.error().message << "' lacks '" << needle << "'";
}

TEST(DirectoryConfig, Defaults) {
  auto config = parse("");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->backend, DirectoryBackend::kLdap);
  EXPECT_EQ(config->cache_ttl, std::chrono::seconds(30));
  EXPECT_EQ(config->file, "/nonexistent/users.toml");
  EXPECT_EQ(config->status.disabled_values, (std::vector<std::string>{"disabled", "inactive", "deleted"}));
  EXPECT_EQ(config->status.moving_values, (std::vector<std::string>{"moving"}));
  const LdapConfig& l = config->ldap;
  ASSERT_EQ(l.servers.size(), 1u);
  EXPECT_EQ(l.servers[0].uri, "ldap://127.0.0.1:389");
  EXPECT_EQ(l.servers[0].address.to_string(), "127.0.0.1:389");
  EXPECT_EQ(l.bind_dn, "");
  EXPECT_EQ(l.bind_password, "");
  EXPECT_EQ(l.base_dn, "ou=people,dc=example,dc=org");
  EXPECT_EQ(l.scope, LdapScope::kSub);
  EXPECT_EQ(l.user_filter, "(&(objectClass=inetOrgPerson)(uid=%u))");
  EXPECT_EQ(l.login_attribute, "uid");
  EXPECT_EQ(l.route_attribute, "mailHost");
  EXPECT_EQ(l.status_attribute, "mailUserStatus");
  EXPECT_EQ(l.connect_timeout, std::chrono::milliseconds(2000));
  EXPECT_EQ(l.operation_timeout, std::chrono::milliseconds(3000));
  EXPECT_EQ(l.bind_connections, 2);
  EXPECT_EQ(l.max_pending, 1024u);
  EXPECT_EQ(l.retry_interval, std::chrono::milliseconds(1000));
}

TEST(DirectoryConfig, FullLdapTable) {
  TempDir dir;
  dir.write("bind.pw", "s3cret\n");
  auto config = parse(R"toml(
[directory]
backend = "ldap"
cache_ttl_s = 0
disabled_values = ["off"]
moving_values = ["migrating", "moving"]
[directory.ldap]
uris = ["ldap://127.0.0.1:1389", "ldap://[::1]:2389", "ldap://localhost"]
bind_dn = "cn=proxy,ou=services,dc=example,dc=org"
bind_password_file = "bind.pw"
base_dn = "dc=example,dc=org"
scope = "one"
user_filter = "(|(uid=%u)(mail=%u))"
login_attribute = "mail"
route_attribute = "x-shard"
status_attribute = "1.3.6.1.4.1.4203.666.11.7.1.1"
connect_timeout_ms = 100
operation_timeout_ms = 200
bind_connections = 8
max_pending = 10
retry_interval_ms = 0
)toml",
                      dir.path());
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->cache_ttl, std::chrono::seconds(0));
  EXPECT_EQ(config->status.disabled_values, std::vector<std::string>{"off"});
  const LdapConfig& l = config->ldap;
  ASSERT_EQ(l.servers.size(), 3u);
  EXPECT_EQ(l.servers[1].address.to_string(), "[::1]:2389");
  EXPECT_EQ(l.servers[2].address.to_string(), "127.0.0.1:389");
  EXPECT_EQ(l.bind_password, "s3cret");
  EXPECT_EQ(l.scope, LdapScope::kOne);
  EXPECT_EQ(l.login_attribute, "mail");
  EXPECT_EQ(l.bind_connections, 8);
  EXPECT_EQ(l.max_pending, 10u);
  EXPECT_EQ(l.retry_interval, std::chrono::milliseconds(0));
}

TEST(DirectoryConfig, InvalidTopLevelKeys) {
  expect_error("[directory]\nbackend = \"sql\"", "directory.backend");
  expect_error("[directory]\nbackend = 1", "directory.backend (line 2): expected a string");
  expect_error("[directory]\ncache_ttl_s = \"30\"", "directory.cache_ttl_s");
  expect_error("[directory]\ncache_ttl_s = -1", "directory.cache_ttl_s");
  expect_error("[directory]\ncache_ttl_s = 86401", "directory.cache_ttl_s");
  expect_error("[directory]\ncache_ttl_s = 1.5", "directory.cache_ttl_s");
  expect_error("[directory]\nfile = \"\"", "directory.file");
  expect_error("[directory]\ndisabled_values = \"disabled\"", "directory.disabled_values");
  expect_error("[directory]\ndisabled_values = [1]", "directory.disabled_values");
  expect_error("[directory]\ndisabled_values = [\"\"]", "directory.disabled_values");
  expect_error("[directory]\nmoving_values = [\"Disabled\"]", "directory.moving_values");
  expect_error("[directory]\ncache_ttl = 30", "directory.cache_ttl (line 2): unknown key");
  expect_error("[directory]\nldap = 1", "directory.ldap: expected a table");
}

TEST(DirectoryConfig, InvalidLdapKeys) {
  const std::string h = "[directory.ldap]\n";
  expect_error(h + "uris = []", "directory.ldap.uris");
  expect_error(h + "uris = \"ldap://127.0.0.1\"", "directory.ldap.uris");
  expect_error(h + "uris = [\"ldaps://127.0.0.1\"]", "only ldap://");
  expect_error(h + "uris = [\"ldapi:///\"]", "directory.ldap.uris");
  expect_error(h + "uris = [\"http://127.0.0.1\"]", "directory.ldap.uris");
  expect_error(h + "uris = [\"ldap:///\"]", "no host");
  expect_error(h + "bind_dn = \"not a dn\"", "directory.ldap.bind_dn");
  expect_error(h + "bind_dn = \"cn=x,dc=y\"", "directory.ldap.bind_password");
  expect_error(h + "bind_password = \"x\"", "directory.ldap.bind_dn");
  expect_error(h + "bind_dn = \"cn=x\"\nbind_password = \"a\"\nbind_password_file = \"f\"", "not both");
  expect_error(h + "bind_dn = \"cn=x\"\nbind_password_file = \"missing.pw\"", "directory.ldap.bind_password_file");
  expect_error(h + "base_dn = \"ou=people,,dc=x\"", "directory.ldap.base_dn");
  expect_error(h + "scope = \"subtree\"", "directory.ldap.scope");
  expect_error(h + "user_filter = \"(uid=alice)\"", "directory.ldap.user_filter");
  expect_error(h + "user_filter = \"uid=%u\"", "directory.ldap.user_filter");
  expect_error(h + "user_filter = \"(uid=%s)\"", "directory.ldap.user_filter");
  expect_error(h + "user_filter = \"((uid=%u)\"", "directory.ldap.user_filter");
  expect_error(h + "login_attribute = \"\"", "directory.ldap.login_attribute");
  expect_error(h + "route_attribute = \"mail host\"", "directory.ldap.route_attribute");
  expect_error(h + "status_attribute = \"(x)\"", "directory.ldap.status_attribute");
  expect_error(h + "connect_timeout_ms = 0", "directory.ldap.connect_timeout_ms");
  expect_error(h + "operation_timeout_ms = 60001", "directory.ldap.operation_timeout_ms");
  expect_error(h + "operation_timeout_ms = \"3s\"", "directory.ldap.operation_timeout_ms");
  expect_error(h + "bind_connections = 0", "directory.ldap.bind_connections");
  expect_error(h + "bind_connections = 65", "directory.ldap.bind_connections");
  expect_error(h + "max_pending = 0", "directory.ldap.max_pending");
  expect_error(h + "retry_interval_ms = -1", "directory.ldap.retry_interval_ms");
  expect_error(h + "uri = [\"ldap://127.0.0.1\"]", "directory.ldap.uri (line 2): unknown key");
}

TEST(DirectoryConfig, EmptyPasswordFileIsRefused) {
  TempDir dir;
  dir.write("empty.pw", "\n");
  expect_error("[directory.ldap]\nbind_dn = \"cn=x\"\nbind_password_file = \"empty.pw\"", "is empty", dir.path());
}

TEST(DirectoryConfig, FileBackendLoadsUsersRelativeToBaseDir) {
  TempDir dir;
  dir.write("users.toml", "[[user]]\nname = \"alice\"\npassword = \"{PLAIN}pw\"\nshard = \"a\"\n");
  auto config = parse("[directory]\nbackend = \"file\"\n", dir.path());
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->backend, DirectoryBackend::kFile);
  ASSERT_TRUE(config->users);
  EXPECT_EQ(config->users->size(), 1u);
  EXPECT_NE(config->users->find("alice"), nullptr);
}

TEST(DirectoryConfig, FileBackendErrorsNameTheFile) {
  TempDir dir;
  expect_error("[directory]\nbackend = \"file\"\nfile = \"nope.toml\"", "nope.toml", dir.path());
  dir.write("bad.toml", "[[user]]\nname = \"alice\"\npassword = \"plain\"\nshard = \"a\"\n");
  expect_error("[directory]\nbackend = \"file\"\nfile = \"bad.toml\"", "bad.toml: user[0] (line 1): password", dir.path());
}

TEST(DirectoryConfig, StatusRulesAreCaseInsensitive) {
  StatusRules rules;
  EXPECT_EQ(rules.classify(""), AuthOutcome::kOk);
  EXPECT_EQ(rules.classify("active"), AuthOutcome::kOk);
  EXPECT_EQ(rules.classify("Disabled"), AuthOutcome::kDisabled);
  EXPECT_EQ(rules.classify("INACTIVE"), AuthOutcome::kDisabled);
  EXPECT_EQ(rules.classify("deleted"), AuthOutcome::kDisabled);
  EXPECT_EQ(rules.classify("MoViNg"), AuthOutcome::kMoving);
  EXPECT_EQ(rules.classify("moving-soon"), AuthOutcome::kOk);
}

}  // namespace
}  // namespace basalt::directory
