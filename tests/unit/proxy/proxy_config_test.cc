#include "proxy/proxy_config.h"

#include <gtest/gtest.h>

namespace basalt::proxy {
namespace {

const std::string kMinimal = R"(
[[listener]]
protocol = "imap"
address = "127.0.0.1:1143"
[directory]
backend = "ldap"
[directory.ldap]
uris = ["ldap://127.0.0.1:3890"]
[[shard]]
name = "a"
imap = "127.0.0.1:10143"
master_user = "proxy"
master_password = "pw"
)";

TEST(ProxyConfig, MinimalConfigGetsDefaults) {
  auto c = parse_proxy_config(kMinimal, "/etc/basalt");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->workers, 2u);
  EXPECT_EQ(c->auth_failure_delay.count(), 2000);
  EXPECT_FALSE(c->tls_enabled);
  EXPECT_FALSE(c->admin.enabled);
  EXPECT_EQ(c->limits.max_line, 8192u);
  EXPECT_EQ(c->limits.idle_timeout.count(), 1800);
  EXPECT_EQ(c->warm_shard_connections, 2u);
  EXPECT_EQ(c->warm_shard_max_age.count(), 20);
  ASSERT_EQ(c->listeners.size(), 1u);
  EXPECT_EQ(c->listeners[0].protocol, Protocol::kImap);
  ASSERT_EQ(c->shards.size(), 1u);
  EXPECT_EQ(c->shards[0].login, ShardLogin::kMaster);
  EXPECT_TRUE(c->shards[0].has_imap);
  EXPECT_FALSE(c->shards[0].has_pop3);
}

TEST(ProxyConfig, FullConfigIsRead) {
  auto c = parse_proxy_config(kMinimal + R"(
[[shard]]
name = "b"
hosts = ["b.mail.test"]
pop3 = "[::1]:10110"
login = "passthrough"
connect_timeout_ms = 500
)" + R"(
[proxy]
workers = 4
trusted_networks = ["10.0.0.0/8"]
auth_failure_delay_ms = 0
[admin]
address = "127.0.0.1:9000"
token = "0123456789abcdef"
[tls]
certificate = "cert.pem"
private_key = "/abs/key.pem"
)", "/etc/basalt");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->workers, 4u);
  EXPECT_EQ(c->auth_failure_delay.count(), 0);
  EXPECT_TRUE(c->trusted_networks.contains(*parse_socket_address("10.9.9.9:1")));
  EXPECT_TRUE(c->admin.enabled);
  EXPECT_EQ(c->tls.certificate, "/etc/basalt/cert.pem");
  EXPECT_EQ(c->tls.private_key, "/abs/key.pem");
  ASSERT_EQ(c->shards.size(), 2u);
  EXPECT_EQ(c->shards[1].login, ShardLogin::kPassthrough);
  EXPECT_EQ(c->shards[1].connect_timeout.count(), 500);
  EXPECT_EQ(c->shards[1].pop3.to_string(), "[::1]:10110");
}

struct BadCase {
  const char* extra;
  const char* expected;  // substring of the error
};

class ProxyConfigErrors : public ::testing::TestWithParam<BadCase> {};

TEST_P(ProxyConfigErrors, NameTheOffendingKey) {
  auto c = parse_proxy_config(kMinimal + GetParam().extra, "/");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find(GetParam().expected), std::string::npos) << c.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    All, ProxyConfigErrors,
    ::testing::Values(BadCase{"[proxy]\nworkers = 0\n", "proxy.workers"},
                      BadCase{"[proxy]\nworkers = \"two\"\n", "proxy.workers"},
                      BadCase{"[proxy]\nwrokers = 2\n", "proxy.wrokers: unknown key"},
                      BadCase{"[proxy]\ntrusted_networks = [\"10.0.0.0/33\"]\n", "proxy.trusted_networks"},
                      BadCase{"[limits]\nmax_line = 100\n", "limits.max_line"},
                      BadCase{"[proxy]\nwarm_shard_connections = -1\n", "proxy.warm_shard_connections"},
                      BadCase{"[proxy]\nwarm_shard_connections = 65\n", "proxy.warm_shard_connections"},
                      BadCase{"[proxy]\nwarm_shard_max_age_s = 0\n", "proxy.warm_shard_max_age_s"},
                      BadCase{"[proxy]\nworkers = 4294967297\n", "proxy.workers"},
                      BadCase{"[limits]\nmax_literal = 1000000000\n", "limits.max_literal"},
                      BadCase{"[limits]\nmax_bad_commands = 0\n", "limits.max_bad_commands"},
                      BadCase{"[limits]\npreauth_timeout_s = 0\n", "limits.preauth_timeout_s"},
                      BadCase{"[limits]\nidle_timeout_s = -5\n", "limits.idle_timeout_s"},
                      BadCase{"[[shard]]\nname = \"c\"\nimap = \"127.0.0.1:1\"\nlogin = \"passthrough\"\nconnect_timeout_ms = 0\n",
                              "shard[1].connect_timeout_ms"},
                      BadCase{"[[listener]]\nprotocol = \"imaps\"\naddress = \"127.0.0.1:1\"\n", "listener[1].protocol"},
                      BadCase{"[[listener]]\nprotocol = \"smtp\"\naddress = \"127.0.0.1:1\"\n", "listener[1].protocol"},
                      BadCase{"[[listener]]\nprotocol = \"pop3\"\naddress = \"example.org:110\"\n", "listener[1].address"},
                      BadCase{"[admin]\ntoken = \"short\"\n", "admin.token"},
                      BadCase{"[tls]\ncertificate = \"c.pem\"\n", "tls.private_key"},
                      BadCase{"[[shard]]\nname = \"a\"\nimap = \"127.0.0.1:1\"\nlogin = \"passthrough\"\n", "used twice"},
                      BadCase{"[[shard]]\nname = \"c\"\n", "shard[1].imap"},
                      BadCase{"[[shard]]\nname = \"c\"\nimap = \"127.0.0.1:1\"\n", "shard[1].master_user"},
                      BadCase{"[[shard]]\nname = \"c\"\nimap = \"127.0.0.1:1\"\nlogin = \"magic\"\n", "shard[1].login"},
                      BadCase{"[mystery]\nx = 1\n", "mystery: unknown table"},
                      BadCase{"[proxy\n", "at line"}));

TEST(ProxyConfig, TheShippedExampleIsValid) {
  auto c = load_proxy_config(BASALT_SOURCE_DIR "/conf/basalt-proxy.toml");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->listeners.size(), 4u);
  EXPECT_EQ(c->shards.size(), 2u);
  EXPECT_TRUE(c->tls_enabled);
  EXPECT_TRUE(c->admin.enabled);
}

TEST(ProxyConfig, RequiresListenersShardsAndDirectory) {
  EXPECT_FALSE(parse_proxy_config("[directory]\n[[shard]]\nname=\"a\"\nimap=\"127.0.0.1:1\"\nlogin=\"passthrough\"\n", "/").ok());
  EXPECT_FALSE(parse_proxy_config("[[listener]]\nprotocol=\"imap\"\naddress=\"127.0.0.1:1\"\n[directory]\n", "/").ok());
  EXPECT_FALSE(parse_proxy_config(
                   "[[listener]]\nprotocol=\"imap\"\naddress=\"127.0.0.1:1\"\n[[shard]]\nname=\"a\"\nimap=\"127.0.0.1:1\"\n"
                   "login=\"passthrough\"\n",
                   "/")
                   .ok());
}

}  // namespace
}  // namespace basalt::proxy
