// The delivery pipeline without networking: Deliverer into a real spool and header cache.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <thread>

#include "backend/delivery.h"
#include "backend/mailbox_hub.h"
#include "backend/mailbox_list.h"
#include "backend/mailbox_state.h"
#include "backend/spool.h"
#include "indexer/header_cache.h"
#include "spool_fixture.h"
#include "test_util.h"

namespace basalt::store {
namespace {

const std::string kMessage =
    "From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: hello\r\n"
    "Message-ID: <m1@example.org>\r\n\r\nbody line\r\n.dot line\r\n";

struct Fixture : testing::SpoolFixture {
  Result<MailboxState> inbox_state(const std::string& user) {
    auto list = MailboxList::open(*spool->user_dir(user));
    if (!list) return list.error();
    auto info = list->find("INBOX");
    if (!info) return make_error("no INBOX");
    return MailboxState::open(*spool->mailbox_dir(user, info->id), StateOptions{Fsync::kOff});
  }
};

TEST(LmtpDelivery, DeliverWritesBlobStateAndCache) {
  Fixture f;
  MailboxHub hub(*f.spool, f.cache.get(), HubOptions{Fsync::kOff, {}});
  Deliverer d(hub);
  std::string msg = with_return_path("sender@example.net", kMessage);
  ASSERT_TRUE(msg.starts_with("Return-Path: <sender@example.net>\r\n"));
  EXPECT_EQ(msg.size(), kMessage.size() + return_path_bytes("sender@example.net"));  // what RCPT checks
  auto first = d.deliver("bob", msg, 1700000000);
  ASSERT_TRUE(first) << first.error().message;
  auto second = d.deliver("bob", msg, 1700000001);
  ASSERT_TRUE(second);
  EXPECT_EQ(first->uid, 1u);
  EXPECT_EQ(second->uid, 2u);
  EXPECT_TRUE(first->cached);

  auto state = f.inbox_state("bob");
  ASSERT_TRUE(state) << state.error().message;
  ASSERT_EQ(state->messages().size(), 2u);
  EXPECT_EQ(state->messages()[0].uid, 1u);
  EXPECT_EQ(state->messages()[0].internal_date, 1700000000);
  EXPECT_EQ(state->messages()[0].size, msg.size());
  EXPECT_EQ(state->uidnext(), 3u);

  auto raw = f.spool->read_message("bob", first->mailbox, first->uidvalidity, 1);
  ASSERT_TRUE(raw);
  EXPECT_EQ(*raw, msg);

  auto cached = f.cache->get(index::CacheKey{"bob", to_u64(first->mailbox), first->uidvalidity, 1});
  ASSERT_TRUE(cached && *cached);
  EXPECT_NE((**cached).summary.envelope.find("\"hello\""), std::string::npos) << (**cached).summary.envelope;
  EXPECT_EQ((**cached).internal_date.unix_seconds, 1700000000);
}

TEST(LmtpDelivery, FailureBeforeStateRecordLeavesNothingVisible) {
  for (DeliveryStep step : {DeliveryStep::kSummarize, DeliveryStep::kOpenInbox, DeliveryStep::kStoreBlob,
                            DeliveryStep::kAppendState}) {
    Fixture f;
    HubOptions o{Fsync::kOff, [step](DeliveryStep s) -> Result<void> {
                         if (s == step) return make_error("injected");
                         return {};
                       }};
    MailboxHub hub(*f.spool, f.cache.get(), o);
    Deliverer d(hub);
    EXPECT_FALSE(d.deliver("bob", kMessage, 1)) << static_cast<int>(step);
    auto state = f.inbox_state("bob");
    if (state) {
      EXPECT_TRUE(state->messages().empty()) << static_cast<int>(step);
    }
    // The next delivery works and takes UID 1 (an orphan blob is overwritten).
    MailboxHub ok_hub(*f.spool, f.cache.get(), HubOptions{Fsync::kOff, {}});
    Deliverer ok(ok_hub);
    auto again = ok.deliver("bob", kMessage, 2);
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_EQ(again->uid, 1u);
  }
}

TEST(LmtpDelivery, CacheFailureAfterStateIsStillDelivered) {
  Fixture f;
  HubOptions o{Fsync::kOff, [](DeliveryStep s) -> Result<void> {
                       if (s == DeliveryStep::kCacheHeaders) return make_error("injected");
                       return {};
                     }};
  MailboxHub hub(*f.spool, f.cache.get(), o);
  Deliverer d(hub);
  auto r = d.deliver("bob", kMessage, 1);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->cached);
  EXPECT_EQ(d.cache_failures(), 1u);
  EXPECT_EQ(f.inbox_state("bob")->messages().size(), 1u);
}

// Real failure: the INBOX's blob directory is read-only (unprivileged child, since root
// ignores permissions) -> the delivery fails and no state record exists.
TEST(LmtpDelivery, ReadOnlySpoolDirectoryFailsWithoutStateRecord) {
  Fixture f;
  MailboxHub hub(*f.spool, f.cache.get(), HubOptions{Fsync::kOff, {}});
  Deliverer d(hub);
  auto first = d.deliver("bob", kMessage, 1);
  ASSERT_TRUE(first);
  std::string mdir = *f.spool->mailbox_dir("bob", first->mailbox);
  std::string blob_dir = mdir + "/" + std::to_string(first->uidvalidity);
  testing::chown_tree(f.tmp.path());
  ASSERT_EQ(::chmod(blob_dir.c_str(), 0555), 0);
  std::string spool_root = f.tmp.sub("spool");
  std::string out = testing::run_in_child(
      [&]() -> std::string {
        auto spool = Spool::open(spool_root, SpoolOptions{Fsync::kOff});
        if (!spool) return "open: " + spool.error().message;
        MailboxHub hub(**spool, nullptr, HubOptions{Fsync::kOff, {}});
        Deliverer child(hub);
        auto r = child.deliver("bob", kMessage, 2);
        if (r) return "delivery unexpectedly succeeded";
        if (r.error().message.find("store blob") == std::string::npos) return "wrong failure: " + r.error().message;
        return "";
      },
      /*unprivileged=*/true);
  EXPECT_EQ(out, "");
  ::chmod(blob_dir.c_str(), 0755);
  auto state = f.inbox_state("bob");
  ASSERT_TRUE(state);
  EXPECT_EQ(state->messages().size(), 1u);  // only the first one
  EXPECT_EQ(state->uidnext(), 2u);
}

TEST(LmtpDelivery, ConcurrentDeliveriesToOneUserGetDistinctUids) {
  Fixture f;
  MailboxHub hub(*f.spool, f.cache.get(), HubOptions{Fsync::kOff, {}});
  Deliverer d(hub);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) EXPECT_TRUE(d.deliver("bob", kMessage, 1));
    });
  }
  for (auto& t : threads) t.join();
  auto state = f.inbox_state("bob");
  ASSERT_TRUE(state);
  ASSERT_EQ(state->messages().size(), 40u);
  for (size_t i = 0; i < 40; ++i) EXPECT_EQ(state->messages()[i].uid, i + 1);
}

}  // namespace
}  // namespace basalt::store
