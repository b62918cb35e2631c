#include "backend/spool.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <random>
#include <thread>

#include "common/blob_codec.h"
#include "test_util.h"

namespace basalt::store {
namespace {

constexpr MailboxId kBox{7};

std::string message(uint32_t uid) {
  std::string m = "From: a@example.com\r\nSubject: message " + std::to_string(uid) + "\r\n\r\n";
  for (uint32_t i = 0; i < uid % 50; ++i) m += "body line " + std::to_string(i) + "\r\n";
  return m;
}

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Spool::initialize(dir_.path(), Fsync::kOff));
    auto opened = Spool::open(dir_.path(), {Fsync::kOff});
    ASSERT_TRUE(opened) << opened.error().message;
    spool_ = std::move(*opened);
    ASSERT_TRUE(spool_->create_mailbox_dir("alice", kBox));
  }

  TempDir dir_;
  std::unique_ptr<Spool> spool_;
};

TEST(UserEscaping, HostileNamesStayInsideTheTree) {
  const std::vector<std::string> names = {"../x", "..", ".", "a/b", std::string("a\0b", 3), "\x01\x1f\x7f",
                                          "%41", "/etc/passwd", ".hidden", "a..b", "UPPER@Example.COM",
                                          "ユーザー", "a b", "a\\b", "a%2Fb"};
  for (const auto& name : names) {
    auto escaped = escape_user(name);
    ASSERT_TRUE(escaped) << name;
    EXPECT_EQ(escaped->find('/'), std::string::npos) << *escaped;
    EXPECT_EQ(escaped->find('\0'), std::string::npos) << *escaped;
    EXPECT_NE(escaped->front(), '.') << *escaped;
    EXPECT_TRUE(std::all_of(escaped->begin(), escaped->end(), [](char c) { return c > 0x20 && c < 0x7f; }));
    auto back = unescape_user(*escaped);
    ASSERT_TRUE(back) << *escaped;
    EXPECT_EQ(*back, name);
  }
  EXPECT_EQ(*escape_user("../x"), "%2E.%2Fx");
  EXPECT_EQ(*escape_user("a/b"), "a%2Fb");
  EXPECT_EQ(*escape_user(std::string("a\0b", 3)), "a%00b");
  EXPECT_EQ(*escape_user("alice@example.com"), "alice@example.com");
  EXPECT_EQ(*escape_user("50%"), "50%25");
  EXPECT_FALSE(escape_user(""));
}

TEST(UserEscaping, RandomNamesRoundTrip) {
  std::mt19937 rng(42);
  for (int i = 0; i < 2000; ++i) {
    std::string name(1 + rng() % 40, '\0');
    for (auto& c : name) c = static_cast<char>(rng());
    auto escaped = escape_user(name);
    ASSERT_TRUE(escaped);
    EXPECT_EQ(*unescape_user(*escaped), name);
  }
}

TEST(UserEscaping, UnescapeRejectsNonCanonicalNames) {
  for (std::string_view bad : {"", ".", "..", ".x", "a/b", "%2f", "%41", "a%", "a%4", "%GG", "a b", "%2e"}) {
    EXPECT_FALSE(unescape_user(bad)) << bad;
  }
  EXPECT_FALSE(unescape_user("%2E%2E"));  // the second dot is safe: canonical is "%2E."
  EXPECT_EQ(unescape_user("%2E.").value_or(""), "..");
}

TEST(UserEscaping, LongNamesAreBoundedByNameMax) {
  EXPECT_TRUE(escape_user(std::string(255, 'a')));
  auto too_long = escape_user(std::string(256, 'a'));
  ASSERT_FALSE(too_long);
  EXPECT_NE(too_long.error().message.find("too long"), std::string::npos);
  EXPECT_TRUE(escape_user(std::string(85, '\xe9')));   // 255 bytes escaped
  EXPECT_FALSE(escape_user(std::string(86, '\xe9')));  // 258
  EXPECT_FALSE(unescape_user(std::string(256, 'a')));
}

TEST_F(SpoolTest, PathsFollowTheDocumentedLayout) {
  const std::string user = "../../etc";
  auto udir = spool_->user_dir(user);
  ASSERT_TRUE(udir);
  EXPECT_EQ(*udir, dir_.path() + "/users/" + user_hash_dir(user) + "/%2E.%2F..%2Fetc");
  auto normal = std::filesystem::path(*udir).lexically_normal().string();
  EXPECT_EQ(normal.rfind(dir_.path() + "/users/", 0), 0u) << normal;
  EXPECT_EQ(*spool_->mailbox_dir("alice", kBox), *spool_->user_dir("alice") + "/m/7");
  EXPECT_EQ(spool_->message_path("/m", 3, 42), "/m/3/42.msg");
  EXPECT_EQ(user_hash_dir("alice").size(), 2u);
  EXPECT_FALSE(spool_->mailbox_dir("alice", MailboxId{0}));
  EXPECT_FALSE(spool_->user_dir(""));
}

TEST_F(SpoolTest, OpenRequiresTheMarker) {
  TempDir bare;
  auto r = Spool::open(bare.path());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("not a Basalt spool"), std::string::npos);
  write_bytes(bare.sub("basalt-spool"), "basalt-spool 9\n");
  EXPECT_FALSE(Spool::open(bare.path()));
  EXPECT_FALSE(Spool::initialize(bare.sub("missing")));
  ASSERT_TRUE(Spool::initialize(dir_.path(), Fsync::kOn));  // idempotent
  EXPECT_TRUE(Spool::open(dir_.path()));
}

TEST_F(SpoolTest, StoresAndReadsMessagesCountingBytes) {
  for (uint32_t uid = 1; uid <= 20; ++uid) ASSERT_TRUE(spool_->store_message("alice", kBox, 1000, uid, message(uid)));
  EXPECT_EQ(spool_->bytes_read(), 0u);
  uint64_t on_disk = 0;
  for (uint32_t uid = 1; uid <= 20; ++uid) {
    auto m = spool_->read_message("alice", kBox, 1000, uid);
    ASSERT_TRUE(m) << m.error().message;
    EXPECT_EQ(*m, message(uid));
    on_disk += std::filesystem::file_size(spool_->message_path(*spool_->mailbox_dir("alice", kBox), 1000, uid));
  }
  EXPECT_EQ(spool_->bytes_read(), on_disk);
  EXPECT_EQ(spool_->stats().messages_read, 20u);
  const std::string blob = read_bytes(spool_->message_path(*spool_->mailbox_dir("alice", kBox), 1000, 7));
  EXPECT_EQ(blob.substr(0, 4), "BSLT");
  EXPECT_EQ(*decode_blob(blob), message(7));
}

TEST_F(SpoolTest, EmptyAndLargeMessages) {
  ASSERT_TRUE(spool_->store_message("alice", kBox, 1, 1, ""));
  EXPECT_EQ(*spool_->read_message("alice", kBox, 1, 1), "");
  std::string big(3 << 20, 'x');
  ASSERT_TRUE(spool_->store_message("alice", kBox, 1, 2, big));
  EXPECT_EQ(*spool_->read_message("alice", kBox, 1, 2), big);
  EXPECT_FALSE(spool_->store_message("alice", kBox, 0, 3, "x"));
  EXPECT_FALSE(spool_->store_message("alice", kBox, 1, 0, "x"));
}

TEST_F(SpoolTest, MissingMessageIsNotCorruption) {
  auto r = spool_->read_message("alice", kBox, 1000, 99);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("message not found"), std::string::npos) << r.error().message;
  EXPECT_EQ(spool_->stats().corrupt_blobs, 0u);
}

TEST_F(SpoolTest, CorruptBlobFailsThatMessageOnly) {
  for (uint32_t uid = 1; uid <= 3; ++uid) ASSERT_TRUE(spool_->store_message("alice", kBox, 1000, uid, message(uid)));
  const std::string path = spool_->message_path(*spool_->mailbox_dir("alice", kBox), 1000, 2);
  std::string blob = read_bytes(path);
  blob[blob.size() - 3] ^= 0x10;
  write_bytes(path, blob);
  auto r = spool_->read_message("alice", kBox, 1000, 2);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("corrupt message user=alice mailbox=7 uidvalidity=1000 uid=2"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("checksum mismatch"), std::string::npos);
  EXPECT_EQ(spool_->stats().corrupt_blobs, 1u);
  EXPECT_TRUE(spool_->read_message("alice", kBox, 1000, 1));
  EXPECT_TRUE(spool_->read_message("alice", kBox, 1000, 3));
  write_bytes(path, blob.substr(0, 10));
  EXPECT_FALSE(spool_->read_message("alice", kBox, 1000, 2));
  EXPECT_EQ(spool_->stats().corrupt_blobs, 2u);
}

TEST_F(SpoolTest, StoreOverwritesAnOrphanOfTheSameUid) {
  ASSERT_TRUE(spool_->store_message("alice", kBox, 1000, 5, "orphan from a crash"));
  ASSERT_TRUE(spool_->store_message("alice", kBox, 1000, 5, "the real message"));
  EXPECT_EQ(*spool_->read_message("alice", kBox, 1000, 5), "the real message");
  EXPECT_EQ(entries(*spool_->mailbox_dir("alice", kBox) + "/1000"), std::vector<std::string>{"5.msg"});
}

TEST_F(SpoolTest, StoreNeverResurrectsARemovedMailbox) {
  ASSERT_TRUE(spool_->store_message("alice", kBox, 1000, 1, "a"));
  ASSERT_TRUE(spool_->remove_mailbox("alice", kBox));
  auto r = spool_->store_message("alice", kBox, 1000, 2, "b");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("mailbox directory missing"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(*spool_->mailbox_dir("alice", kBox)));
  EXPECT_FALSE(spool_->store_message("bob", MailboxId{1}, 1, 1, "never created"));
}

TEST_F(SpoolTest, RemoveMessageAndMailboxAreIdempotent) {
  ASSERT_TRUE(spool_->store_message("alice", kBox, 1000, 1, "a"));
  ASSERT_TRUE(spool_->store_message("alice", kBox, 1000, 2, "b"));
  ASSERT_TRUE(spool_->remove_message("alice", kBox, 1000, 1));
  ASSERT_TRUE(spool_->remove_message("alice", kBox, 1000, 1));
  ASSERT_TRUE(spool_->remove_message("alice", kBox, 555, 1));
  EXPECT_EQ(*spool_->list_uids("alice", kBox, 1000), std::vector<uint32_t>{2});
  ASSERT_TRUE(spool_->remove_mailbox("alice", kBox));
  ASSERT_TRUE(spool_->remove_mailbox("alice", kBox));
  EXPECT_TRUE(spool_->list_mailboxes("alice")->empty());
  EXPECT_EQ(entries(*spool_->user_dir("alice") + "/m"), std::vector<std::string>{});
}

TEST_F(SpoolTest, EnumeratesUsersMailboxesAndUidsForRebuild) {
  const std::vector<std::string> users = {"alice", "bob@example.com", "../evil", "a/b"};
  for (const auto& u : users) {
    ASSERT_TRUE(spool_->create_mailbox_dir(u, MailboxId{3}));
    ASSERT_TRUE(spool_->create_mailbox_dir(u, MailboxId{12}));
  }
  for (uint32_t uid : {100u, 2u, 10u, 1u}) ASSERT_TRUE(spool_->store_message("alice", kBox, 1000, uid, "m"));
  ASSERT_TRUE(spool_->store_message("alice", kBox, 999, 1, "old generation"));
  auto listed = spool_->list_users();
  ASSERT_TRUE(listed);
  auto expected = users;
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(*listed, expected);
  EXPECT_EQ(*spool_->list_mailboxes("alice"), (std::vector<MailboxId>{MailboxId{3}, kBox, MailboxId{12}}));
  EXPECT_EQ(*spool_->list_uidvalidities("alice", kBox), (std::vector<uint32_t>{999, 1000}));
  EXPECT_EQ(*spool_->list_uids("alice", kBox, 1000), (std::vector<uint32_t>{1, 2, 10, 100}));
  EXPECT_TRUE(spool_->list_uids("alice", kBox, 5)->empty());
  EXPECT_TRUE(spool_->list_mailboxes("nobody")->empty());
}

TEST_F(SpoolTest, EnumerationSkipsTempTrashAndForeignNames) {
  ASSERT_TRUE(spool_->store_message("alice", kBox, 1000, 1, "m"));
  const std::string mdir = *spool_->mailbox_dir("alice", kBox);
  write_bytes(mdir + "/1000/.tmp.2.msg.1.2.3", "partial");
  write_bytes(mdir + "/1000/03.msg", "leading zero");
  write_bytes(mdir + "/1000/x.msg", "not a uid");
  write_bytes(mdir + "/1000/4294967296.msg", "overflow");
  write_bytes(mdir + "/state.log", "not a directory");
  std::filesystem::create_directories(mdir + "/../.trash.9.1.1");
  std::filesystem::create_directories(mdir + "/../notanumber");
  std::filesystem::create_directories(dir_.path() + "/users/zz/alice");           // bucket mismatch
  std::filesystem::create_directories(dir_.path() + "/users/" + user_hash_dir("x") + "/%2f");  // non-canonical
  EXPECT_EQ(*spool_->list_uids("alice", kBox, 1000), std::vector<uint32_t>{1});
  EXPECT_EQ(*spool_->list_mailboxes("alice"), std::vector<MailboxId>{kBox});
  EXPECT_EQ(*spool_->list_uidvalidities("alice", kBox), std::vector<uint32_t>{1000});
  EXPECT_EQ(*spool_->list_users(), std::vector<std::string>{"alice"});
}

TEST_F(SpoolTest, PurgeRemovesTrashAndStaleTempFiles) {
  ASSERT_TRUE(spool_->store_message("alice", kBox, 1000, 1, "m"));
  const std::string mdir = *spool_->mailbox_dir("alice", kBox);
  std::filesystem::create_directories(mdir + "/../.trash.3.1.1/1000");
  write_bytes(mdir + "/../.trash.3.1.1/1000/1.msg", "x");
  write_bytes(mdir + "/1000/.tmp.2.msg.1.2.3", "partial");
  write_bytes(mdir + "/.tmp.state.log.1.2.3", "partial");
  write_bytes(*spool_->user_dir("alice") + "/.tmp.mailboxes.1.2.3", "partial");
  auto n = spool_->purge_user("alice", std::chrono::seconds(0));
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(*n, 4u);
  EXPECT_EQ(entries(mdir + "/1000"), std::vector<std::string>{"1.msg"});
  EXPECT_EQ(entries(mdir + "/.."), std::vector<std::string>{"7"});
  EXPECT_EQ(*spool_->purge_user("nobody", std::chrono::seconds(0)), 0u);
}

TEST_F(SpoolTest, ConcurrentReadersShareTheCounters) {
  for (uint32_t uid = 1; uid <= 10; ++uid) ASSERT_TRUE(spool_->store_message("alice", kBox, 1, uid, message(uid)));
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        uint32_t uid = 1 + static_cast<uint32_t>(i % 10);
        auto m = spool_->read_message("alice", kBox, 1, uid);
        if (!m || *m != message(uid)) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(spool_->stats().messages_read, 100u);
}

}  // namespace
}  // namespace basalt::store
