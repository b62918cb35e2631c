// MailboxHub: shared open mailboxes, change tracking, notification, mailbox management.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "backend/mailbox_hub.h"
#include "indexer/message_summary.h"
#include "backend/store_auth.h"
#include "directory/file_directory.h"
#include "spool_fixture.h"
#include "test_util.h"

namespace basalt::store {
namespace {

const std::string kMessage = "From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n";

struct Fixture : testing::SpoolFixture {
  std::unique_ptr<MailboxHub> hub = std::make_unique<MailboxHub>(*spool, cache.get(), HubOptions{Fsync::kOff, {}});

  std::shared_ptr<Mailbox> open(const std::string& user, const std::string& name = "INBOX") {
    auto box = hub->open(user, name);
    EXPECT_TRUE(box) << box.error().message;
    return box ? *box : nullptr;
  }
};

Result<AppendResult> append(Mailbox& box, std::string_view raw, uint8_t flags = 0) {
  AppendRequest r;
  r.raw = raw;
  r.internal_date = 1700000000;
  r.flags = flags;
  return box.append(std::span<const AppendRequest>(&r, 1));
}

TEST(MailboxHub, OpenSharesOneMailboxAndCreatesInbox) {
  Fixture f;
  auto a = f.open("alice");
  auto b = f.open("alice", "inbox");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a.get(), b.get());
  auto missing = f.hub->open("alice", "Nope");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, kHubNoSuchMailbox);
}

TEST(MailboxHub, AppendIsSeenThroughChangesAndCache) {
  Fixture f;
  auto box = f.open("alice");
  uint64_t seen = box->snapshot()->highest_modseq;
  auto r = append(*box, kMessage, kFlagSeen);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->uids, std::vector<uint32_t>{1});
  EXPECT_TRUE(r->cached);
  auto ch = box->changes_since(seen);
  ASSERT_TRUE(ch);
  ASSERT_EQ(ch->changed.size(), 1u);
  EXPECT_EQ(ch->changed[0].uid, 1u);
  EXPECT_EQ(ch->changed[0].flags, kFlagSeen);
  EXPECT_EQ(ch->uidnext, 2u);
  auto cached = box->cached(1);
  ASSERT_TRUE(cached && *cached);
  EXPECT_NE((**cached).summary.header.find("Subject: hi"), std::string::npos);
  const uint64_t before = f.spool->bytes_read();
  EXPECT_EQ(*box->read_message(1), kMessage);
  EXPECT_GT(f.spool->bytes_read(), before);
}

TEST(MailboxHub, FlagsAndExpungesAreReportedOnceAndSkipMissingUids) {
  Fixture f;
  auto box = f.open("alice");
  ASSERT_TRUE(append(*box, kMessage));
  ASSERT_TRUE(append(*box, kMessage));
  uint64_t seen = box->snapshot()->highest_modseq;
  FlagUpdate u{2, kFlagFlagged, {"$Work"}};
  FlagUpdate gone{9, kFlagSeen, {}};
  std::vector<FlagUpdate> ups{u, gone};
  auto set = box->set_flags(ups);
  ASSERT_TRUE(set);
  EXPECT_EQ(set->updated, std::vector<uint32_t>{2});
  std::vector<uint32_t> del{1, 1, 7};
  auto ex = box->expunge(del);
  ASSERT_TRUE(ex);
  EXPECT_EQ(*ex, std::vector<uint32_t>{1});
  auto ch = box->changes_since(seen);
  ASSERT_TRUE(ch && ch->complete);
  EXPECT_EQ(ch->expunged, std::vector<uint32_t>{1});
  ASSERT_EQ(ch->changed.size(), 1u);
  EXPECT_EQ(ch->changed[0].keywords, std::vector<std::string>{"$Work"});
  auto read = box->read_message(1);
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().code, kHubNoSuchMessage);
  EXPECT_FALSE(*box->cached(1));  // cache entry removed with the message
  auto none = box->changes_since(ch->highest_modseq);
  EXPECT_TRUE(none->changed.empty() && none->expunged.empty());
}

TEST(MailboxHub, WatchersAreWokenByWritesFromOtherThreadsUntilTheWatchEnds) {
  Fixture f;
  auto box = f.open("alice");
  std::atomic<int> wakes{0};
  auto watch = box->watch([&] { wakes.fetch_add(1); });
  std::thread writer([&] {
    AppendRequest r{kMessage, 1, 0, 0, {}};
    auto d = f.hub->deliver("alice", r);
    EXPECT_TRUE(d);
  });
  writer.join();
  EXPECT_EQ(wakes.load(), 1);
  watch.reset();
  ASSERT_TRUE(append(*box, kMessage));
  EXPECT_EQ(wakes.load(), 1);
}

TEST(MailboxHub, RecentIsClaimedOnce) {
  Fixture f;
  auto box = f.open("alice");
  ASSERT_TRUE(append(*box, kMessage));
  ASSERT_TRUE(append(*box, kMessage));
  EXPECT_EQ(f.hub->status("alice", "INBOX")->recent, 2u);
  auto first = box->claim_recent(2);
  EXPECT_EQ(first, (std::pair<uint32_t, uint32_t>{1, 2}));
  auto second = box->claim_recent(2);
  EXPECT_GT(second.first, second.second);  // empty range
  EXPECT_EQ(f.hub->status("alice", "INBOX")->recent, 0u);
}

// The claims map is per mailbox for the life of the process: STATUS must not add to it (a client
// polling STATUS on every folder would grow it without bound) and DELETE takes the entry away.
TEST(MailboxHub, RecentClaimsGrowOnlyBySelectAndGoWithDelete) {
  Fixture f;
  ASSERT_TRUE(f.hub->create("alice", "Work"));
  auto work = f.hub->open("alice", "Work");
  ASSERT_TRUE(work);
  ASSERT_TRUE(append(**work, kMessage));
  EXPECT_EQ(f.hub->status("alice", "Work")->recent, 1u);
  EXPECT_EQ(f.hub->status("alice", "INBOX")->recent, 0u);
  EXPECT_EQ(f.hub->recent_claims(), 0u);
  (*work)->claim_recent(1);
  EXPECT_EQ(f.hub->recent_claims(), 1u);
  EXPECT_EQ(f.hub->status("alice", "Work")->recent, 0u);
  ASSERT_TRUE(f.hub->remove("alice", "Work"));
  EXPECT_EQ(f.hub->recent_claims(), 0u);
}

TEST(MailboxHub, StatusCountsUnseen) {
  Fixture f;
  auto box = f.open("alice");
  ASSERT_TRUE(append(*box, kMessage, kFlagSeen));
  ASSERT_TRUE(append(*box, kMessage));
  auto st = f.hub->status("alice", "inbox");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->messages, 2u);
  EXPECT_EQ(st->unseen, 1u);
  EXPECT_EQ(st->uidnext, 3u);
  EXPECT_EQ(st->uidvalidity, box->uidvalidity());
  EXPECT_EQ(f.hub->status("alice", "Nope").error().code, kHubNoSuchMailbox);
}

TEST(MailboxHub, CreateDeleteRenameSubscribe) {
  Fixture f;
  ASSERT_TRUE(f.hub->create("alice", "Work"));
  ASSERT_TRUE(f.hub->create("alice", "Work/2026"));
  EXPECT_EQ(f.hub->create("alice", "Work").error().code, kHubExists);
  EXPECT_EQ(f.hub->create("alice", "inbox").error().code, kHubExists);
  EXPECT_EQ(f.hub->remove("alice", "INBOX").error().code, kHubNotAllowed);
  EXPECT_EQ(f.hub->remove("alice", "Nope").error().code, kHubNoSuchMailbox);
  auto work = f.open("alice", "Work");
  ASSERT_TRUE(append(*work, kMessage));
  ASSERT_TRUE(f.hub->rename("alice", "Work", "Jobs"));
  EXPECT_EQ(f.hub->rename("alice", "Nope", "X").error().code, kHubNoSuchMailbox);
  EXPECT_EQ(f.hub->rename("alice", "Jobs", "INBOX").error().code, kHubExists);
  auto names = [&] {
    std::vector<std::string> out;
    auto listed = f.hub->list("alice");
    for (const MailboxInfo& i : *listed) out.push_back(i.name);
    return out;
  };
  EXPECT_EQ(names(), (std::vector<std::string>{"INBOX", "Jobs", "Jobs/2026"}));
  // The renamed mailbox keeps its messages (and an open handle keeps working).
  EXPECT_EQ(f.hub->status("alice", "Jobs")->messages, 1u);
  ASSERT_TRUE(append(*work, kMessage));
  EXPECT_EQ(f.hub->status("alice", "Jobs")->messages, 2u);
  ASSERT_TRUE(f.hub->subscribe("alice", "Jobs", true));
  EXPECT_EQ(*f.hub->subscriptions("alice"), std::vector<std::string>{"Jobs"});
  ASSERT_TRUE(f.hub->subscribe("alice", "Jobs", false));
  EXPECT_TRUE(f.hub->subscriptions("alice")->empty());
  // DELETE: gone from the list, writes through an open handle fail, blobs and cache are gone.
  ASSERT_TRUE(f.hub->remove("alice", "Jobs"));
  EXPECT_EQ(names(), (std::vector<std::string>{"INBOX", "Jobs/2026"}));
  auto late = append(*work, kMessage);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, kHubNoSuchMailbox);
  EXPECT_FALSE(*work->cached(1));
  ASSERT_TRUE(f.hub->create("alice", "Jobs"));  // a new mailbox, new UIDVALIDITY
  EXPECT_NE(f.hub->status("alice", "Jobs")->uidvalidity, work->uidvalidity());
}

TEST(MailboxHub, RenameInboxMovesMessagesAndLeavesAnEmptyInbox) {
  Fixture f;
  auto inbox = f.open("alice");
  ASSERT_TRUE(append(*inbox, kMessage));
  inbox.reset();
  ASSERT_TRUE(f.hub->rename("alice", "INBOX", "Old"));
  EXPECT_EQ(f.hub->status("alice", "Old")->messages, 1u);
  EXPECT_EQ(f.hub->status("alice", "INBOX")->messages, 0u);
}

TEST(MailboxHub, UsersAreIsolated) {
  Fixture f;
  auto a = f.open("alice");
  auto b = f.open("bob");
  ASSERT_TRUE(append(*a, kMessage));
  ASSERT_TRUE(append(*b, "Subject: other\r\n\r\nx\r\n"));
  EXPECT_EQ(a->id(), b->id());  // ids are per user...
  EXPECT_NE((**a->cached(1)).summary.header, (**b->cached(1)).summary.header);  // ...cache keys are not
  EXPECT_EQ(*b->read_message(1), "Subject: other\r\n\r\nx\r\n");
}

TEST(MailboxHub, ConcurrentAppendsFromManyThreadsGetDistinctUids) {
  Fixture f;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        AppendRequest r{kMessage, 1, 0, 0, {}};
        EXPECT_TRUE(f.hub->deliver("alice", r));
      }
    });
  }
  for (auto& t : threads) t.join();
  auto snap = f.open("alice")->snapshot();
  ASSERT_EQ(snap->messages.size(), 40u);
  for (size_t i = 0; i < 40; ++i) EXPECT_EQ(snap->messages[i].uid, i + 1);
}

TEST(MailboxHub, AFailedAppendLeavesNoBlobBehind) {
  for (AppendStep failing : {AppendStep::kStoreBlob, AppendStep::kAppendState}) {
    testing::SpoolFixture s;
    int blobs = 0;
    HubOptions o{Fsync::kOff, [&](AppendStep step) -> Result<void> {
                   // kStoreBlob: the second blob of the batch fails, after the first was written.
                   if (step == AppendStep::kStoreBlob && failing == step && ++blobs < 2) return {};
                   return step == failing ? Result<void>(make_error("injected")) : Result<void>();
                 }};
    MailboxHub hub(*s.spool, s.cache.get(), o);
    auto box = hub.open("alice", "INBOX");
    ASSERT_TRUE(box);
    std::vector<AppendRequest> batch(2, AppendRequest{kMessage, 1, 0, 0, {}});
    ASSERT_FALSE((*box)->append(batch));
    EXPECT_TRUE((*box)->snapshot()->messages.empty());
    // The spool holds nothing the state does not list (an index rebuild enumerates blobs).
    auto uids = s.spool->list_uids("alice", (*box)->id(), (*box)->uidvalidity());
    ASSERT_TRUE(uids);
    EXPECT_TRUE(uids->empty()) << "step " << static_cast<int>(failing) << ": " << uids->size() << " orphan blobs";
  }
}

TEST(MailboxHub, ReadsFromADeletedMailboxReportTheMessageGoneNotAnIoError) {
  Fixture f;
  ASSERT_TRUE(f.hub->create("alice", "Work"));
  auto work = f.open("alice", "Work");
  ASSERT_TRUE(append(*work, kMessage));
  ASSERT_TRUE(f.hub->remove("alice", "Work"));
  auto read = work->read_message(1);  // an IMAP session still has it selected
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().code, kHubNoSuchMessage);  // EXPUNGEISSUED, not SERVERBUG
}

TEST(MailboxHub, RecacheOfAnExpungedOrDeletedMessageLeavesNoCacheEntry) {
  Fixture f;
  auto box = f.open("alice");
  ASSERT_TRUE(append(*box, kMessage));
  ASSERT_TRUE(append(*box, kMessage));
  // A FETCH read the blob before the EXPUNGE and rebuilds the cache entry after it.
  std::vector<uint32_t> one{1};
  ASSERT_TRUE(box->expunge(one));
  ASSERT_TRUE(box->recache(1, kMessage, 1700000000));
  EXPECT_FALSE(*box->cached(1));
  ASSERT_TRUE(box->recache(2, kMessage, 1700000000));  // a live message keeps its entry
  EXPECT_TRUE(*box->cached(2));
  ASSERT_TRUE(f.hub->create("alice", "Work"));
  auto work = f.open("alice", "Work");
  ASSERT_TRUE(append(*work, kMessage));
  ASSERT_TRUE(f.hub->remove("alice", "Work"));
  ASSERT_TRUE(work->recache(1, kMessage, 1700000000));
  EXPECT_FALSE(*work->cached(1));
}

TEST(MailboxHub, ABlobThatCannotBeRemovedIsRemovedByTheNextExpunge) {
  testing::SpoolFixture s;
  bool fail = true;
  HubOptions o{Fsync::kOff, {}};
  o.remove_blob_fault = [&](uint32_t) { return fail ? Result<void>(make_error("injected")) : Result<void>(); };
  MailboxHub hub(*s.spool, s.cache.get(), o);
  auto box = hub.open("alice", "INBOX");
  ASSERT_TRUE(box);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(append(**box, kMessage));
  auto blobs = [&] { return s.spool->list_uids("alice", (*box)->id(), (*box)->uidvalidity()).value(); };
  std::vector<uint32_t> one{1};
  auto first = (*box)->expunge(one);
  ASSERT_TRUE(first);  // the expunge happened; only the blob stayed behind
  EXPECT_EQ(*first, one);
  EXPECT_EQ(blobs(), (std::vector<uint32_t>{1, 2, 3}));
  EXPECT_EQ((*box)->read_message(1).error().code, kHubNoSuchMessage);
  fail = false;
  std::vector<uint32_t> two{2};
  auto second = (*box)->expunge(two);
  ASSERT_TRUE(second);
  EXPECT_EQ(*second, two);  // the retried orphan is not reported as expunged again
  EXPECT_EQ(blobs(), std::vector<uint32_t>{3});
}

// FETCH on a missing cache entry serves the entry recache() returns: one summarize per message.
TEST(MailboxHub, RecacheReturnsTheEntryItWrote) {
  Fixture f;
  auto box = f.open("alice");
  ASSERT_TRUE(append(*box, kMessage));
  auto expected = index::summarize_message(kMessage);
  ASSERT_TRUE(expected);
  auto rebuilt = box->recache(1, kMessage, 1700000000);
  ASSERT_TRUE(rebuilt) << rebuilt.error().message;
  EXPECT_EQ(rebuilt->summary.header, expected->header);
  EXPECT_EQ(rebuilt->summary.envelope, expected->envelope);
  EXPECT_EQ(rebuilt->summary.bodystructure, expected->bodystructure);
  EXPECT_EQ(rebuilt->internal_date, (index::InternalDate{1700000000, 0}));
  auto stored = box->cached(1);
  ASSERT_TRUE(stored && *stored);
  EXPECT_EQ((*stored)->summary.envelope, rebuilt->summary.envelope);
  // Without a header cache the summary still comes back (nothing is written).
  MailboxHub uncached(*f.spool, nullptr, HubOptions{Fsync::kOff, {}});
  auto plain = uncached.open("bob", "INBOX");
  ASSERT_TRUE(plain);
  ASSERT_TRUE(append(**plain, kMessage));
  auto summary_only = (*plain)->recache(1, kMessage, 1700000000);
  ASSERT_TRUE(summary_only);
  EXPECT_EQ(summary_only->summary.bodystructure, expected->bodystructure);
}

TEST(MailboxHub, DeleteRemovesTheFilesWithoutHoldingTheUsersLock) {
  testing::SpoolFixture s;
  std::unique_ptr<MailboxHub> hub;
  bool other_call_ran = false;
  std::thread other;  // joined after remove() (it would wait for the lock otherwise)
  HubOptions o{Fsync::kOff, {}};
  o.removing_mailbox = [&](std::string_view user) {
    // Another session of the same user (on another pool thread) while the tree is removed.
    auto done = std::make_shared<std::promise<bool>>();
    auto result = done->get_future();
    other = std::thread([&hub, done, user = std::string(user)] { done->set_value(hub->status(user, "INBOX").ok()); });
    other_call_ran = result.wait_for(std::chrono::seconds(5)) == std::future_status::ready && result.get();
  };
  hub = std::make_unique<MailboxHub>(*s.spool, s.cache.get(), o);
  ASSERT_TRUE(hub->create("alice", "Work"));
  EXPECT_TRUE(hub->remove("alice", "Work"));
  if (other.joinable()) other.join();
  EXPECT_TRUE(other_call_ran);
  auto names = hub->list("alice");
  ASSERT_TRUE(names);
  EXPECT_EQ(names->size(), 1u);
}

// ---------------------------------------------------------------------------------- quotas

// alice has `limits`; everyone else is unlimited.
HubOptions quota_options(QuotaLimits limits) {
  HubOptions o{Fsync::kOff, {}};
  o.quota = [limits](std::string_view user) { return user == "alice" ? limits : QuotaLimits{}; };
  return o;
}

QuotaUsage usage(MailboxHub& hub, std::string_view user = "alice") {
  auto u = hub.quota_usage(user);
  EXPECT_TRUE(u && *u) << (u ? "no usage" : u.error().message);
  return u && *u ? **u : QuotaUsage{};
}

AppendRequest request(std::string_view raw) { return AppendRequest{raw, 1700000000, 0, 0, {}}; }

const uint64_t kSize = kMessage.size();
const std::string kBigger = kMessage + "x";  // one byte more

TEST(MailboxHubQuota, UsageIsComputedFromExistingMailboxesAfterARestart) {
  testing::SpoolFixture s;
  {
    MailboxHub before(*s.spool, s.cache.get(), HubOptions{Fsync::kOff, {}});
    ASSERT_TRUE(before.create("alice", "Work"));
    auto inbox = before.open("alice", "INBOX");
    auto work = before.open("alice", "Work");
    ASSERT_TRUE(inbox && work);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(append(**inbox, kMessage));
    ASSERT_TRUE(append(**work, kBigger));
    std::vector<uint32_t> one{2};
    ASSERT_TRUE((*inbox)->expunge(one));
    ASSERT_TRUE(before.create("alice", "Empty"));
  }
  MailboxHub after(*s.spool, s.cache.get(), quota_options({1000, 0}));
  EXPECT_EQ(usage(after), (QuotaUsage{2 * kSize + kSize + 1, 3}));
  // An open mailbox counts with its in-memory state, and later writes are added exactly.
  auto work = after.open("alice", "Work");
  ASSERT_TRUE(work);
  ASSERT_TRUE(append(**work, kMessage));
  EXPECT_EQ(usage(after), (QuotaUsage{4 * kSize + 1, 4}));
}

TEST(MailboxHubQuota, AppendAtTheLimitSucceedsAndOneByteOverWritesNothing) {
  testing::SpoolFixture s;
  MailboxHub hub(*s.spool, s.cache.get(), quota_options({2 * kSize, 0}));
  auto box = hub.open("alice", "INBOX");
  ASSERT_TRUE(box);
  ASSERT_TRUE(append(**box, kMessage));
  auto over = append(**box, kBigger);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, kHubOverQuota);
  EXPECT_EQ((*box)->snapshot()->uidnext, 2u);
  EXPECT_EQ(s.spool->list_uids("alice", (*box)->id(), (*box)->uidvalidity()).value(), std::vector<uint32_t>{1});
  EXPECT_FALSE(*(*box)->cached(2));
  EXPECT_EQ(usage(hub), (QuotaUsage{kSize, 1}));
  auto exact = append(**box, kMessage);
  ASSERT_TRUE(exact) << exact.error().message;
  EXPECT_EQ(exact->uids, std::vector<uint32_t>{2});
  EXPECT_EQ(usage(hub), (QuotaUsage{2 * kSize, 2}));
  // At the limit: deliveries and RCPT checks are refused, even for one byte.
  auto delivered = hub.deliver("alice", request(kMessage));
  ASSERT_FALSE(delivered);
  EXPECT_EQ(delivered.error().code, kHubOverQuota);
  EXPECT_EQ(hub.check_quota("alice", 1, 1).error().code, kHubOverQuota);
  EXPECT_TRUE(hub.check_quota("alice", 0, 0));
  EXPECT_EQ((*box)->snapshot()->uidnext, 3u);
}

TEST(MailboxHubQuota, MessageLimitAppliesToWholeBatches) {
  testing::SpoolFixture s;
  MailboxHub hub(*s.spool, s.cache.get(), quota_options({0, 2}));
  auto box = hub.open("alice", "INBOX");
  ASSERT_TRUE(box);
  std::vector<AppendRequest> three(3, request(kMessage));
  auto refused = (*box)->append(three);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, kHubOverQuota);
  EXPECT_TRUE((*box)->snapshot()->messages.empty());
  EXPECT_TRUE(s.spool->list_uids("alice", (*box)->id(), (*box)->uidvalidity()).value().empty());
  const std::string big(100000, 'y');  // outlives the requests, which only view it
  std::vector<AppendRequest> two(2, request(big));  // bytes are unlimited
  ASSERT_TRUE((*box)->append(two));
  EXPECT_EQ(hub.deliver("alice", request(kMessage)).error().code, kHubOverQuota);
  EXPECT_EQ(usage(hub), (QuotaUsage{200000, 2}));
}

TEST(MailboxHubQuota, ExpungeAndDeleteFreeSpace) {
  testing::SpoolFixture s;
  MailboxHub hub(*s.spool, s.cache.get(), quota_options({4 * kSize, 0}));
  ASSERT_TRUE(hub.create("alice", "Open"));
  ASSERT_TRUE(hub.create("alice", "Closed"));
  auto inbox = hub.open("alice", "INBOX");
  auto open = hub.open("alice", "Open");
  ASSERT_TRUE(inbox && open);
  ASSERT_TRUE(append(**inbox, kMessage));
  ASSERT_TRUE(append(**inbox, kMessage));
  ASSERT_TRUE(append(**open, kMessage));
  {
    auto closed = hub.open("alice", "Closed");
    ASSERT_TRUE(closed && append(**closed, kMessage));
  }
  EXPECT_EQ(hub.deliver("alice", request(kMessage)).error().code, kHubOverQuota);
  std::vector<uint32_t> first{1, 1, 9};  // duplicates and missing UIDs free nothing
  ASSERT_TRUE((*inbox)->expunge(first));
  EXPECT_EQ(usage(hub), (QuotaUsage{3 * kSize, 3}));
  ASSERT_TRUE(hub.deliver("alice", request(kMessage)));
  ASSERT_TRUE(hub.remove("alice", "Open"));    // open: its in-memory state is uncharged
  ASSERT_TRUE(hub.remove("alice", "Closed"));  // closed: its log is read before it goes
  EXPECT_EQ(usage(hub), (QuotaUsage{2 * kSize, 2}));
  // What a restarted store would compute matches what was tracked.
  MailboxHub fresh(*s.spool, s.cache.get(), quota_options({4 * kSize, 0}));
  EXPECT_EQ(usage(fresh), usage(hub));
}

TEST(MailboxHubQuota, MoveIsAllowedAtTheLimitAndRenameMovesNothing) {
  testing::SpoolFixture s;
  MailboxHub hub(*s.spool, s.cache.get(), quota_options({kSize, 0}));
  ASSERT_TRUE(hub.create("alice", "Archive"));
  auto inbox = hub.open("alice", "INBOX");
  auto archive = hub.open("alice", "Archive");
  ASSERT_TRUE(inbox && archive);
  ASSERT_TRUE(append(**inbox, kMessage));
  AppendRequest copy = request(kMessage);
  EXPECT_EQ((*archive)->append(std::span<const AppendRequest>(&copy, 1)).error().code, kHubOverQuota);  // COPY
  auto moved = (*archive)->append(std::span<const AppendRequest>(&copy, 1), QuotaCheck::kSkip);  // MOVE
  ASSERT_TRUE(moved) << moved.error().message;
  std::vector<uint32_t> original{1};
  ASSERT_TRUE((*inbox)->expunge(original));
  EXPECT_EQ(usage(hub), (QuotaUsage{kSize, 1}));
  ASSERT_TRUE(hub.rename("alice", "INBOX", "Old"));
  ASSERT_TRUE(hub.rename("alice", "Archive", "Kept"));
  EXPECT_EQ(usage(hub), (QuotaUsage{kSize, 1}));
  MailboxHub fresh(*s.spool, s.cache.get(), quota_options({kSize, 0}));
  EXPECT_EQ(usage(fresh), (QuotaUsage{kSize, 1}));
}

TEST(MailboxHubQuota, ConcurrentDeliveriesStopExactlyAtTheLimit) {
  testing::SpoolFixture s;
  MailboxHub hub(*s.spool, s.cache.get(), quota_options({0, 10}));
  std::atomic<int> delivered{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        auto r = hub.deliver("alice", request(kMessage));
        (r ? delivered : refused).fetch_add(1);
        EXPECT_TRUE(r || r.error().code == kHubOverQuota);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(delivered.load(), 10);
  EXPECT_EQ(refused.load(), 10);
  EXPECT_EQ(hub.status("alice", "INBOX")->messages, 10u);
}

// An unlimited user's writes never compute a usage: a mailbox whose state cannot be read does
// not stop deliveries to INBOX, while a user with a quota gets an I/O error (no guessing).
TEST(MailboxHubQuota, UnlimitedUsersAreNotCounted) {
  testing::SpoolFixture s;
  MailboxHub hub(*s.spool, s.cache.get(), quota_options({1 << 20, 0}));
  for (const char* user : {"alice", "bob"}) {
    auto info = hub.create(user, "Broken");
    ASSERT_TRUE(info);
    testing::write_bytes(*s.spool->mailbox_dir(user, info->id) + "/state.log", "not a state log at all");
  }
  ASSERT_TRUE(hub.deliver("bob", request(kMessage)));
  EXPECT_TRUE(hub.check_quota("bob", uint64_t{1} << 40, 1));
  auto bob = hub.quota_usage("bob");
  ASSERT_TRUE(bob);
  EXPECT_FALSE(*bob);
  auto alice = hub.deliver("alice", request(kMessage));
  ASSERT_FALSE(alice);
  EXPECT_EQ(alice.error().code, kHubIo);
}

// ------------------------------------------------------------------------------ store_auth

StoreConfig auth_config(const TempDir& tmp) {
  testing::write_bytes(tmp.sub("users.toml"),
                       "[[user]]\nname = \"alice\"\npassword = \"{PLAIN}pw\"\nshard = \"a\"\n"
                       "[[user]]\nname = \"bob\"\npassword = \"{PLAIN}pw\"\nshard = \"b\"\n"
                       "[[user]]\nname = \"erin\"\npassword = \"{PLAIN}pw\"\nshard = \"a\"\nstatus = \"moving\"\n"
                       "[[user]]\nname = \"dan\"\npassword = \"{PLAIN}pw\"\nshard = \"a\"\nstatus = \"disabled\"\n");
  StoreConfig c;
  c.shard_name = "a";
  c.users = directory::UserTable::load(tmp.sub("users.toml")).value();
  c.trusted_networks = NetworkList::parse({"127.0.0.0/8"}).value();
  c.masters.push_back({"proxy", directory::parse_stored_password("{PLAIN}master").value()});
  return c;
}

LoginVerdict login(const StoreConfig& c, std::string_view zid, std::string_view cid, std::string_view pw,
                   const char* peer = "127.0.0.1:5", bool tls = false) {
  LoginRequest r{zid, cid, pw, parse_socket_address(peer).value(), tls};
  return check_login(c, r).verdict;
}

TEST(StoreAuth, UsersMastersAndPlaintextRules) {
  TempDir tmp;
  StoreConfig c = auth_config(tmp);
  EXPECT_EQ(login(c, "", "alice", "pw"), LoginVerdict::kOk);
  EXPECT_EQ(login(c, "", "alice@example.org", "pw"), LoginVerdict::kOk);
  EXPECT_EQ(login(c, "alice", "alice", "pw"), LoginVerdict::kOk);
  EXPECT_EQ(login(c, "", "alice", "wrong"), LoginVerdict::kBadCredentials);
  EXPECT_EQ(login(c, "", "nobody", "pw"), LoginVerdict::kBadCredentials);
  EXPECT_EQ(login(c, "", "bob", "pw"), LoginVerdict::kNotHere);
  EXPECT_EQ(login(c, "", "erin", "pw"), LoginVerdict::kMoving);
  EXPECT_EQ(login(c, "", "dan", "pw"), LoginVerdict::kDisabled);
  EXPECT_EQ(login(c, "", "dan", "wrong"), LoginVerdict::kBadCredentials);  // status only after the password
  // Master users: only from trusted networks, only with the master's password.
  LoginRequest r{"alice", "proxy", "master", parse_socket_address("127.0.0.1:5").value(), false};
  LoginOutcome ok = check_login(c, r);
  EXPECT_EQ(ok.verdict, LoginVerdict::kOk);
  EXPECT_EQ(ok.user, "alice");
  EXPECT_TRUE(ok.as_master);
  EXPECT_EQ(login(c, "alice", "proxy", "wrong"), LoginVerdict::kBadCredentials);
  EXPECT_EQ(login(c, "alice", "proxy", "master", "10.0.0.1:5", true), LoginVerdict::kBadCredentials);
  EXPECT_EQ(login(c, "nobody", "proxy", "master"), LoginVerdict::kBadCredentials);
  EXPECT_EQ(login(c, "alice", "bob", "pw"), LoginVerdict::kBadCredentials);  // a user is not a master
  // Plaintext from an untrusted network needs TLS unless plaintext_auth.
  EXPECT_EQ(login(c, "", "alice", "pw", "10.0.0.1:5"), LoginVerdict::kPrivacyRequired);
  EXPECT_EQ(login(c, "", "alice", "pw", "10.0.0.1:5", true), LoginVerdict::kOk);
  c.plaintext_auth = true;
  EXPECT_EQ(login(c, "", "alice", "pw", "10.0.0.1:5"), LoginVerdict::kOk);
}

}  // namespace
}  // namespace basalt::store
