#include "backend/mailbox_list.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "test_util.h"

namespace basalt::store {
namespace {

class MailboxListTest : public ::testing::Test {
 protected:
  MailboxListOptions options() {
    MailboxListOptions o;
    o.fsync = Fsync::kOff;
    o.now = [this] { return now_; };
    return o;
  }
  std::string user_dir() const { return dir_.sub("users/ab/alice"); }
  MailboxList open() {
    auto list = MailboxList::open(user_dir(), options());
    EXPECT_TRUE(list) << list.error().message;
    return std::move(*list);
  }
  std::vector<std::string> names(const MailboxList& list) {
    std::vector<std::string> out;
    for (const auto& m : list.list()) out.push_back(m.name);
    return out;
  }

  TempDir dir_;
  int64_t now_ = 1700000000;
};

TEST_F(MailboxListTest, CreatesAndPersistsAcrossReopen) {
  auto list = open();
  EXPECT_TRUE(list.list().empty());
  EXPECT_FALSE(std::filesystem::exists(user_dir()));  // nothing written for a read
  auto inbox = list.create("INBOX");
  ASSERT_TRUE(inbox) << inbox.error().message;
  EXPECT_EQ(inbox->id, MailboxId{1});
  EXPECT_EQ(inbox->uidvalidity, 1700000000u);
  auto sent = list.create("Sent");
  ASSERT_TRUE(sent);
  EXPECT_EQ(sent->id, MailboxId{2});
  EXPECT_EQ(sent->uidvalidity, 1700000001u);  // same second: still unique
  auto reopened = open();
  EXPECT_EQ(reopened.list(), list.list());
  EXPECT_EQ(reopened.next_id(), 3u);
  EXPECT_EQ(*reopened.find("Sent"), *sent);
  EXPECT_EQ(entries(user_dir()), std::vector<std::string>{"mailboxes"});
  EXPECT_EQ(read_bytes(user_dir() + "/mailboxes").substr(0, 4), "BSML");
}

TEST_F(MailboxListTest, InboxIsCaseInsensitiveOtherNamesAreNot) {
  auto list = open();
  ASSERT_EQ(list.create("inbox")->name, "INBOX");
  EXPECT_FALSE(list.create("InBoX"));
  EXPECT_TRUE(list.find("iNbOx"));
  ASSERT_TRUE(list.create("Work"));
  EXPECT_TRUE(list.create("work"));
  EXPECT_FALSE(list.create("Work"));
  EXPECT_EQ(names(list), (std::vector<std::string>{"INBOX", "Work", "work"}));
  EXPECT_EQ(MailboxList::canonical_name("Inbox"), "INBOX");
  EXPECT_EQ(MailboxList::canonical_name("Inbox/x"), "Inbox/x");
}

TEST_F(MailboxListTest, RejectsInvalidNames) {
  auto list = open();
  for (const std::string& bad : {std::string(), std::string("a\0b", 3), std::string("a\rb"), std::string("a\nb"),
                                 std::string(kMaxMailboxNameBytes + 1, 'x')}) {
    EXPECT_FALSE(list.create(bad)) << bad.size();
  }
  EXPECT_TRUE(list.create(std::string(kMaxMailboxNameBytes, 'x')));
  EXPECT_TRUE(list.create("&AOQ-rger/Sub"));  // modified UTF-7 kept as given
}

TEST_F(MailboxListTest, RecreatedMailboxGetsNewIdAndLargerUidvalidity) {
  auto list = open();
  auto first = *list.create("Trash");
  auto removed = list.remove("Trash");
  ASSERT_TRUE(removed);
  EXPECT_EQ(removed->id, first.id);
  EXPECT_FALSE(list.find("Trash"));
  EXPECT_FALSE(list.remove("Trash"));
  now_ -= 1000;  // even if the clock steps back
  auto second = *list.create("Trash");
  EXPECT_NE(second.id, first.id);
  EXPECT_GT(second.uidvalidity, first.uidvalidity);
  auto third_list = open();
  ASSERT_TRUE(third_list.remove("Trash"));
  auto third = *third_list.create("Trash");
  EXPECT_GT(third.uidvalidity, second.uidvalidity);
  EXPECT_GT(to_u64(third.id), to_u64(second.id));
}

TEST_F(MailboxListTest, LostListFileStillNeverReusesAUidvalidity) {
  uint32_t old_value = 0;
  {
    auto list = open();
    old_value = list.create("Archive")->uidvalidity;
  }
  std::filesystem::remove(user_dir() + "/mailboxes");
  now_ += 1;  // UIDVALIDITY follows the clock, so a later re-creation is larger
  auto list = open();
  EXPECT_GT(list.create("Archive")->uidvalidity, old_value);
}

TEST_F(MailboxListTest, CreateWithUidvalidityKeepsItAndAllocatesAbove) {
  auto list = open();
  auto moved = list.create_with_uidvalidity("Moved", 2000000000u);
  ASSERT_TRUE(moved);
  EXPECT_EQ(moved->uidvalidity, 2000000000u);
  EXPECT_EQ(list.create("Next")->uidvalidity, 2000000001u);
  EXPECT_FALSE(list.create_with_uidvalidity("Bad", UINT32_MAX));
  EXPECT_EQ(open().find("Moved")->uidvalidity, 2000000000u);
}

TEST_F(MailboxListTest, RenameMovesInferiorsAndKeepsIds) {
  auto list = open();
  for (const char* n : {"INBOX", "a", "a/b", "a/b/c", "ab", "z"}) ASSERT_TRUE(list.create(n));
  const auto before = list.list();
  auto r = list.rename("a", "x/y", '/');
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->new_inbox);
  EXPECT_EQ(r->renamed, (std::vector<std::pair<std::string, std::string>>{
                            {"a", "x/y"}, {"a/b", "x/y/b"}, {"a/b/c", "x/y/b/c"}}));
  EXPECT_EQ(names(list), (std::vector<std::string>{"INBOX", "ab", "x/y", "x/y/b", "x/y/b/c", "z"}));
  EXPECT_EQ(list.find("x/y/b")->id, before[2].id);
  EXPECT_EQ(list.find("x/y/b")->uidvalidity, before[2].uidvalidity);
  EXPECT_EQ(open().list(), list.list());
  // Without a delimiter only the mailbox itself moves.
  ASSERT_TRUE(list.rename("x/y", "solo", '\0'));
  EXPECT_EQ(names(list), (std::vector<std::string>{"INBOX", "ab", "solo", "x/y/b", "x/y/b/c", "z"}));
}

TEST_F(MailboxListTest, RenameErrorsChangeNothing) {
  auto list = open();
  for (const char* n : {"INBOX", "a", "a/b", "b", "c/b"}) ASSERT_TRUE(list.create(n));
  const auto before = list.list();
  EXPECT_FALSE(list.rename("missing", "m", '/'));
  EXPECT_FALSE(list.rename("a", "b", '/'));        // target exists
  EXPECT_FALSE(list.rename("a", "c", '/'));        // inferior a/b -> c/b exists
  EXPECT_FALSE(list.rename("a", "a/new", '/'));    // into its own hierarchy
  EXPECT_FALSE(list.rename("a", "inbox", '/'));    // INBOX always exists
  EXPECT_FALSE(list.rename("a", "a", '/'));
  EXPECT_FALSE(list.rename("a", "", '/'));
  EXPECT_EQ(list.list(), before);
  EXPECT_EQ(open().list(), before);
}

TEST_F(MailboxListTest, RenamingInboxLeavesAFreshInbox) {
  auto list = open();
  auto inbox = *list.create("INBOX");
  ASSERT_TRUE(list.create("INBOX/kept"));
  ASSERT_TRUE(list.subscribe("INBOX"));
  now_ += 10;
  auto r = list.rename("inbox", "Old mail", '/');
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->renamed, (std::vector<std::pair<std::string, std::string>>{{"INBOX", "Old mail"}}));
  ASSERT_TRUE(r->new_inbox);
  EXPECT_NE(r->new_inbox->id, inbox.id);
  EXPECT_GT(r->new_inbox->uidvalidity, inbox.uidvalidity);
  EXPECT_TRUE(r->new_inbox->subscribed);
  auto old = list.find("Old mail");
  EXPECT_EQ(old->id, inbox.id);  // the messages move with the id
  EXPECT_EQ(old->uidvalidity, inbox.uidvalidity);
  EXPECT_TRUE(list.find("INBOX/kept"));  // RFC 3501: inferiors of INBOX are not renamed
  EXPECT_EQ(open().list(), list.list());
}

TEST_F(MailboxListTest, SubscriptionsAreIndependentOfMailboxes) {
  auto list = open();
  ASSERT_TRUE(list.create("Lists"));
  ASSERT_TRUE(list.subscribe("Lists"));
  ASSERT_TRUE(list.subscribe("Lists"));         // idempotent
  ASSERT_TRUE(list.subscribe("Not/yet/there"));  // allowed by RFC 3501
  ASSERT_TRUE(list.subscribe("inbox"));
  EXPECT_TRUE(list.find("Lists")->subscribed);
  EXPECT_EQ(list.subscriptions(), (std::vector<std::string>{"INBOX", "Lists", "Not/yet/there"}));
  ASSERT_TRUE(list.remove("Lists"));
  EXPECT_TRUE(list.subscribed("Lists"));  // DELETE keeps the subscription
  ASSERT_TRUE(list.unsubscribe("Not/yet/there"));
  ASSERT_TRUE(list.unsubscribe("never"));
  EXPECT_FALSE(list.subscribe(""));
  auto reopened = open();
  EXPECT_EQ(reopened.subscriptions(), (std::vector<std::string>{"INBOX", "Lists"}));
  ASSERT_TRUE(reopened.create("Lists"));
  EXPECT_TRUE(reopened.find("Lists")->subscribed);
}

TEST_F(MailboxListTest, CorruptOrTruncatedFileIsAnError) {
  {
    auto list = open();
    ASSERT_TRUE(list.create("INBOX"));
    ASSERT_TRUE(list.subscribe("INBOX"));
  }
  const std::string path = user_dir() + "/mailboxes";
  const std::string good = read_bytes(path);
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] ^= 0x04;
    write_bytes(path, bad);
    EXPECT_FALSE(MailboxList::open(user_dir(), options())) << i;
  }
  for (size_t len = 0; len < good.size(); ++len) {
    write_bytes(path, good.substr(0, len));
    auto r = MailboxList::open(user_dir(), options());
    ASSERT_FALSE(r) << len;
    EXPECT_NE(r.error().message.find(path), std::string::npos);
  }
  write_bytes(path, good);
  EXPECT_TRUE(MailboxList::open(user_dir(), options()));
}

TEST_F(MailboxListTest, FailedSaveChangesNothing) {
  auto list = open();
  ASSERT_TRUE(list.create("INBOX"));
  const auto before = list.list();
  ASSERT_EQ(::chmod(user_dir().c_str(), 0555), 0);
  std::string err = testing::run_in_child(
      [&]() -> std::string {
        auto r = list.create("New");
        if (r) return "created in a read-only directory";
        if (list.list() != before) return "in-memory list changed";
        if (list.subscribe("x") || !list.subscriptions().empty()) return "subscribed anyway";
        if (list.rename("INBOX", "y", '/') || list.list() != before) return "renamed anyway";
        return "";
      },
      /*unprivileged=*/true);
  ::chmod(user_dir().c_str(), 0755);
  EXPECT_EQ(err, "");
  EXPECT_EQ(open().list(), before);
  EXPECT_EQ(entries(user_dir()), std::vector<std::string>{"mailboxes"});
}

}  // namespace
}  // namespace basalt::store
