// basalt-store configuration parsing (store_config.h).
#include <gtest/gtest.h>

#include "backend/store_config.h"
#include "directory/file_directory.h"
#include "test_util.h"

namespace basalt::store {
namespace {

using testing::TempDir;
using testing::write_bytes;

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

}  // namespace
}  // namespace basalt::store
