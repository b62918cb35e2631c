// basalt-store configuration parsing (store_config.h).
#include <gtest/gtest.h>

#include "backend/store_config.h"
#include "directory/file_directory.h"
#include "test_util.h"

namespace basalt::store {
namespace {

const char* kUsers = "[[user]]\nname = \"alice\"\npassword = \"{PLAIN}x\"\nshard = \"a\"\n";

Result<StoreConfig> load(const TempDir& tmp, const std::string& store_table) {
  write_bytes(tmp.sub("users.toml"), kUsers);
  write_bytes(tmp.sub("store.toml"), "[store]\n" + store_table);
  return load_store_config(tmp.sub("store.toml"));
}

const std::string kRequired =
    "shard_name = \"a\"\nspool_root = \"spool\"\nindex_root = \"/idx\"\nusers_file = \"users.toml\"\n";

TEST(LmtpStoreConfig, DefaultsAndRelativePaths) {
  TempDir tmp;
  auto c = load(tmp, kRequired);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->shard_name, "a");
  EXPECT_EQ(c->spool_root, tmp.sub("spool"));
  EXPECT_EQ(c->index_root, "/idx");
  EXPECT_EQ(c->max_message_size, 50u << 20);
  EXPECT_EQ(c->lmtp_listen.port(), 24);
  EXPECT_TRUE(c->fsync);
  ASSERT_TRUE(c->users);
  EXPECT_NE(c->users->find("alice"), nullptr);
}

TEST(LmtpStoreConfig, Errors) {
  TempDir tmp;
  auto unknown = load(tmp, kRequired + "max_mesage_size = 5\n");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("store.max_mesage_size: unknown key"), std::string::npos);
  EXPECT_FALSE(load(tmp, "spool_root = \"s\"\nindex_root = \"i\"\nusers_file = \"users.toml\"\n"));  // no shard
  EXPECT_FALSE(load(tmp, kRequired + "max_message_size = 0\n"));
  EXPECT_FALSE(load(tmp, kRequired + "max_message_size = \"big\"\n"));
  EXPECT_FALSE(load(tmp, kRequired + "lmtp_listen = \"not an address\"\n"));
  auto limit = load(tmp, kRequired + "max_message_size = 1072693248\nlmtp_listen = \"[::1]:2424\"\n");
  ASSERT_TRUE(limit) << limit.error().message;
  EXPECT_EQ(limit->lmtp_listen.port(), 2424);
  EXPECT_FALSE(load(tmp, kRequired + "max_message_size = 1072693249\n"));
  EXPECT_FALSE(load(tmp, kRequired + "io_threads = 0\n"));
  write_bytes(tmp.sub("users.toml"), "[[user]]\nname = \"x\"\n");  // broken users file
  write_bytes(tmp.sub("store.toml"), "[store]\n" + kRequired);
  EXPECT_FALSE(load_store_config(tmp.sub("store.toml")));
}

TEST(StoreConfig, ServicesAuthAndTls) {
  TempDir tmp;
  auto c = load(tmp, kRequired +
                         "[imap]\nlisten = \"127.0.0.1:1143\"\nidle_timeout_s = 3600\nmax_append_size = 1000\n"
                         "[pop3]\nlisten = \"127.0.0.1\"\n"
                         "[auth]\ntrusted_networks = [\"127.0.0.0/8\"]\n"
                         "[[auth.master]]\nname = \"proxy\"\npassword = \"{PLAIN}s3cret\"\n");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->imap.listen.port(), 1143);
  EXPECT_EQ(c->imap.idle_timeout_s, 3600u);
  EXPECT_EQ(c->max_append_size, 1000u);
  EXPECT_EQ(c->pop3.listen.port(), 110);
  ASSERT_EQ(c->masters.size(), 1u);
  EXPECT_EQ(c->masters[0].name, "proxy");
  EXPECT_TRUE(directory::verify_password(c->masters[0].password, "s3cret"));
  EXPECT_TRUE(c->trusted_networks.contains(*parse_socket_address("127.0.0.5:1")));
  EXPECT_FALSE(c->tls_enabled);
  EXPECT_FALSE(c->plaintext_auth);
  EXPECT_TRUE(load(tmp, kRequired)->imap.listen_text.empty());  // services are off unless configured
}

TEST(StoreConfig, ServiceAndAuthErrors) {
  TempDir tmp;
  EXPECT_FALSE(load(tmp, kRequired + "[imap]\nlisten = \"x y\"\n"));
  EXPECT_FALSE(load(tmp, kRequired + "[imap]\nidle_timeout_s = 10\n"));
  EXPECT_FALSE(load(tmp, kRequired + "[pop3]\nmax_append_size = 10\n"));  // IMAP only
  EXPECT_FALSE(load(tmp, kRequired + "[auth]\ntrusted_networks = \"127.0.0.1\"\n"));
  EXPECT_FALSE(load(tmp, kRequired + "[auth]\ntrusted_networks = [\"300.0.0.0/8\"]\n"));
  EXPECT_FALSE(load(tmp, kRequired + "[[auth.master]]\nname = \"p\"\npassword = \"nocheme\"\n"));
  EXPECT_FALSE(load(tmp, kRequired + "[[auth.master]]\nname = \"p\"\n"));
  EXPECT_FALSE(load(tmp, kRequired + "[tls]\ncertificate = \"c.pem\"\n"));
  EXPECT_FALSE(load(tmp, kRequired + "[smtp]\nlisten = \"127.0.0.1:25\"\n"));
}

TEST(StoreConfig, QuotaDefaultsAndPerUserOverrides) {
  TempDir tmp;
  auto none = load(tmp, kRequired);
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_TRUE(none->quota.unlimited());  // no [quota]: nobody is limited
  EXPECT_TRUE(quota_of(*none, "alice").unlimited());
  write_bytes(tmp.sub("users.toml"),
              std::string(kUsers) +
                  "[[user]]\nname = \"big\"\npassword = \"{PLAIN}x\"\nshard = \"a\"\nquota_bytes = 5000000\n"
                  "[[user]]\nname = \"free\"\npassword = \"{PLAIN}x\"\nshard = \"a\"\nquota_bytes = 0\n"
                  "quota_messages = 0\n");
  write_bytes(tmp.sub("store.toml"), "[store]\n" + kRequired + "[quota]\nstorage_bytes = 1000000\nmessages = 500\n");
  auto c = load_store_config(tmp.sub("store.toml"));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->quota, (QuotaLimits{1000000, 500}));
  EXPECT_EQ(quota_of(*c, "alice"), (QuotaLimits{1000000, 500}));  // the defaults
  EXPECT_EQ(quota_of(*c, "big"), (QuotaLimits{5000000, 500}));    // bytes overridden, messages default
  EXPECT_TRUE(quota_of(*c, "free").unlimited());                   // 0 = unlimited for that user
  EXPECT_EQ(quota_of(*c, "nobody"), (QuotaLimits{1000000, 500}));
}

TEST(StoreConfig, QuotaErrors) {
  TempDir tmp;
  auto expect_error = [&](const std::string& extra, const std::string& needle) {
    auto c = load(tmp, kRequired + extra);
    ASSERT_FALSE(c) << extra;
    EXPECT_NE(c.error().message.find(needle), std::string::npos) << c.error().message;
  };
  expect_error("[quota]\nstorage_bytes = -1\n", "quota.storage_bytes / messages: 0 (unlimited) or more");
  expect_error("[quota]\nmessages = -5\n", "quota.storage_bytes / messages");
  expect_error("[quota]\nstorage_bytes = \"1G\"\n", "quota.storage_bytes: wrong type");
  expect_error("[quota]\nmessages = 2.5\n", "quota.messages: wrong type");
  expect_error("[quota]\nbytes = 1\n", "quota.bytes: unknown key");
  write_bytes(tmp.sub("store.toml"), "quota = 5\n[store]\n" + kRequired);
  auto scalar = load_store_config(tmp.sub("store.toml"));
  ASSERT_FALSE(scalar);
  EXPECT_NE(scalar.error().message.find("quota: must be a table"), std::string::npos) << scalar.error().message;
  write_bytes(tmp.sub("users.toml"), std::string(kUsers) + "quota_bytes = \"lots\"\n");
  write_bytes(tmp.sub("store.toml"), "[store]\n" + kRequired);
  auto users = load_store_config(tmp.sub("store.toml"));
  ASSERT_FALSE(users);
  EXPECT_NE(users.error().message.find("user[0] (line 1): 'quota_bytes' must be a non-negative integer"),
            std::string::npos)
      << users.error().message;
}

}  // namespace
}  // namespace basalt::store
