#include "backend/mailbox_state.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "common/blob_codec.h"
#include "test_util.h"

namespace basalt::store {
namespace {

NewMessage msg(uint32_t uid, uint8_t flags = 0, std::vector<std::string> keywords = {}) {
  return {uid, 1700000000 + uid, 1000 + uid, flags, std::move(keywords)};
}

StateOptions fast() {
  StateOptions o;
  o.fsync = Fsync::kOff;
  o.compact_factor = 0;  // no automatic compaction unless a test asks for it
  return o;
}

// One log record framed by hand: u32 length | u8 type | payload | u64 XXH3.
std::string frame(uint8_t type, const std::string& payload) {
  std::string out;
  ByteWriter w(out);
  w.u32(static_cast<uint32_t>(payload.size()));
  w.u8(type);
  w.bytes(payload);
  w.u64(checksum64(out));
  return out;
}

class MailboxStateTest : public ::testing::Test {
 protected:
  std::string log() const { return dir_.sub("state.log"); }
  MailboxState make(StateOptions o = fast()) {
    auto st = MailboxState::create(dir_.path(), 1234, o);
    EXPECT_TRUE(st) << st.error().message;
    return std::move(*st);
  }
  MailboxState reopen(StateOptions o = fast()) {
    auto st = MailboxState::open(dir_.path(), o);
    EXPECT_TRUE(st) << st.error().message;
    return std::move(*st);
  }
  std::string open_error() const {
    auto st = MailboxState::open(dir_.path(), fast());
    return st ? std::string("(opened)") : st.error().message;
  }

  TempDir dir_;
};

TEST_F(MailboxStateTest, CreateAndOpenAnEmptyMailbox) {
  auto st = make(StateOptions{});  // fsync on
  EXPECT_EQ(st.uidvalidity(), 1234u);
  EXPECT_EQ(st.uidnext(), 1u);
  EXPECT_EQ(st.highest_modseq(), 1u);
  EXPECT_TRUE(st.messages().empty());
  EXPECT_EQ(st.log_bytes(), std::filesystem::file_size(log()));
  auto again = reopen();
  EXPECT_EQ(again.snapshot(), st.snapshot());
  EXPECT_EQ(read_bytes(log()).substr(0, 4), "BSMS");
  EXPECT_TRUE(MailboxState::exists(dir_.path()));
}

TEST_F(MailboxStateTest, CreateRefusesToOverwriteAndOpenNeedsALog) {
  auto missing = MailboxState::open(dir_.path(), fast());
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("No such file"), std::string::npos);
  make();
  auto again = MailboxState::create(dir_.path(), 99, fast());
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("already exists"), std::string::npos);
  EXPECT_EQ(reopen().uidvalidity(), 1234u);
  EXPECT_FALSE(MailboxState::create(dir_.sub("x"), 0, fast()));
}

TEST_F(MailboxStateTest, AppendFlagsExpungeAndReplay) {
  auto st = make(StateOptions{});
  std::vector<NewMessage> batch = {msg(1), msg(2, kFlagSeen), msg(3, 0, {"$Junk", "$Forwarded", "$Junk"})};
  ASSERT_EQ(*st.append(batch), 2u);
  EXPECT_EQ(st.uidnext(), 4u);
  ASSERT_EQ(st.messages().size(), 3u);
  EXPECT_EQ(st.messages()[2].keywords, (std::vector<std::string>{"$Forwarded", "$Junk"}));
  EXPECT_EQ(st.messages()[0].internal_date, 1700000001);
  EXPECT_EQ(st.messages()[0].size, 1001u);
  EXPECT_EQ(st.messages()[1].modseq, 2u);

  std::vector<FlagUpdate> flags = {{3, kFlagFlagged | kFlagAnswered, {}}, {1, kFlagDeleted, {"work"}}};
  ASSERT_EQ(*st.set_flags(flags), 3u);
  EXPECT_EQ(st.find(1)->flags, kFlagDeleted);
  EXPECT_EQ(st.find(1)->keywords, std::vector<std::string>{"work"});
  EXPECT_EQ(st.find(1)->modseq, 3u);
  EXPECT_EQ(st.find(2)->modseq, 2u);
  EXPECT_TRUE(st.find(3)->keywords.empty());

  const uint32_t gone[] = {1};
  ASSERT_EQ(*st.expunge(gone), 4u);
  EXPECT_EQ(st.find(1), nullptr);
  EXPECT_EQ(st.index_of(3), std::optional<size_t>(1));
  EXPECT_EQ(st.expunges(), (std::vector<ExpungeEntry>{{4, 1}}));
  EXPECT_EQ(*st.append(std::vector<NewMessage>{msg(4)}), 5u);

  auto replayed = reopen();
  EXPECT_EQ(replayed.snapshot(), st.snapshot());
  EXPECT_EQ(replayed.log_bytes(), std::filesystem::file_size(log()));
  EXPECT_EQ(replayed.discarded_tail_bytes(), 0u);
  EXPECT_EQ(*st.append({}), 5u);  // an empty batch writes nothing
  EXPECT_EQ(st.log_bytes(), std::filesystem::file_size(log()));
}

TEST_F(MailboxStateTest, UidsNeverGoBackwards) {
  auto st = make();
  ASSERT_TRUE(st.append(std::vector<NewMessage>{msg(5)}));
  const auto size = std::filesystem::file_size(log());
  for (const auto& bad : std::vector<std::vector<NewMessage>>{{msg(3)}, {msg(5)}, {msg(8), msg(7)}, {msg(6), msg(6)}}) {
    auto r = st.append(bad);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("UIDs never go backwards"), std::string::npos) << r.error().message;
  }
  EXPECT_FALSE(st.append(std::vector<NewMessage>{msg(UINT32_MAX)}));
  EXPECT_EQ(std::filesystem::file_size(log()), size);
  EXPECT_EQ(st.uidnext(), 6u);
  EXPECT_EQ(st.highest_modseq(), 2u);
  ASSERT_TRUE(st.append(std::vector<NewMessage>{msg(10), msg(4000000000u)}));  // gaps are fine
  EXPECT_EQ(st.uidnext(), 4000000001u);
  // Expunging the newest message does not lower UIDNEXT, also not after a replay.
  const uint32_t newest[] = {4000000000u};
  ASSERT_TRUE(st.expunge(newest));
  auto replayed = reopen();
  EXPECT_EQ(replayed.uidnext(), 4000000001u);
  EXPECT_FALSE(replayed.append(std::vector<NewMessage>{msg(4000000000u)}));
}

TEST_F(MailboxStateTest, InvalidFlagsKeywordsAndUidsAreRefused) {
  auto st = make();
  ASSERT_TRUE(st.append(std::vector<NewMessage>{msg(1), msg(2)}));
  for (const auto& kw : std::vector<std::string>{"", "\\Seen", "two words", "x\x01", std::string(256, 'k'), "caf\xc3\xa9"}) {
    EXPECT_FALSE(st.set_flags(std::vector<FlagUpdate>{{1, 0, {kw}}})) << kw;
    EXPECT_FALSE(st.append(std::vector<NewMessage>{msg(3, 0, {kw})})) << kw;
  }
  EXPECT_TRUE(st.set_flags(std::vector<FlagUpdate>{{1, 0, {std::string(255, 'k')}}}));
  std::vector<std::string> many;
  for (int i = 0; i < 129; ++i) many.push_back("k" + std::to_string(i));
  EXPECT_FALSE(st.set_flags(std::vector<FlagUpdate>{{1, 0, many}}));
  EXPECT_FALSE(st.set_flags(std::vector<FlagUpdate>{{1, 0x20, {}}}));
  EXPECT_FALSE(st.set_flags(std::vector<FlagUpdate>{{9, kFlagSeen, {}}}));
  EXPECT_FALSE(st.set_flags(std::vector<FlagUpdate>{{1, kFlagSeen, {}}, {1, 0, {}}}));
  const uint32_t unknown[] = {1, 9}, twice[] = {2, 2};
  EXPECT_FALSE(st.expunge(unknown));
  EXPECT_FALSE(st.expunge(twice));
  EXPECT_EQ(st.messages().size(), 2u);  // refused batches change nothing
  EXPECT_EQ(reopen().snapshot(), st.snapshot());
}

TEST_F(MailboxStateTest, ExpungedSinceServesQresync) {
  auto st = make();
  std::vector<NewMessage> batch;
  for (uint32_t uid = 1; uid <= 6; ++uid) batch.push_back(msg(uid));
  ASSERT_TRUE(st.append(batch));  // modseq 2
  const uint32_t a[] = {4, 2}, b[] = {6};
  ASSERT_EQ(*st.expunge(a), 3u);
  ASSERT_EQ(*st.expunge(b), 4u);
  EXPECT_EQ(st.expunged_since(1), (std::vector<uint32_t>{2, 4, 6}));
  EXPECT_EQ(st.expunged_since(3), (std::vector<uint32_t>{6}));
  EXPECT_TRUE(st.expunged_since(4).empty());
  EXPECT_EQ(st.expunge_floor(), 0u);
}

TEST_F(MailboxStateTest, TornTailAtEveryByteOffsetOfTheLastRecordIsIgnoredThenTruncated) {
  {
    auto st = make();
    ASSERT_TRUE(st.append(std::vector<NewMessage>{msg(1), msg(2, kFlagSeen, {"a"})}));
    ASSERT_TRUE(st.set_flags(std::vector<FlagUpdate>{{1, kFlagFlagged, {"x", "y"}}}));
  }
  const std::string before = read_bytes(log());
  const StateSnapshot snap_before = reopen().snapshot();
  {
    auto st = reopen();
    ASSERT_TRUE(st.append(std::vector<NewMessage>{msg(3, 0, {"kw"}), msg(4), msg(5)}));  // one batch, one record
  }
  const std::string after = read_bytes(log());
  ASSERT_GT(after.size(), before.size() + 13);
  for (size_t cut = before.size(); cut < after.size(); ++cut) {
    write_bytes(log(), after.substr(0, cut));
    auto st = reopen();
    ASSERT_EQ(st.snapshot(), snap_before) << "cut at " << cut;  // the batch is all or nothing
    EXPECT_EQ(st.discarded_tail_bytes(), cut - before.size());
    ASSERT_TRUE(st.append(std::vector<NewMessage>{msg(9)})) << cut;
    auto replayed = reopen();
    EXPECT_EQ(replayed.discarded_tail_bytes(), 0u) << cut;
    EXPECT_EQ(replayed.snapshot(), st.snapshot()) << cut;
    EXPECT_EQ(replayed.uidnext(), 10u);
    EXPECT_EQ(read_bytes(log()).substr(0, before.size()), before);
  }
}

TEST_F(MailboxStateTest, GarbageOrZerosAfterTheLastRecordAreATornTail) {
  {
    auto st = make();
    ASSERT_TRUE(st.append(std::vector<NewMessage>{msg(1)}));
    ASSERT_TRUE(st.append(std::vector<NewMessage>{msg(2)}));
  }
  const std::string full = read_bytes(log());
  const StateSnapshot all = reopen().snapshot();
  write_bytes(log(), full + std::string(4096, '\0'));  // a file system's zero-filled tail
  EXPECT_EQ(reopen().snapshot(), all);
  std::string damaged = full;
  damaged[damaged.size() - 10] ^= 0x40;  // a last record that reached the disk only in part
  write_bytes(log(), damaged);
  auto st = reopen();
  EXPECT_EQ(st.messages().size(), 1u);
  EXPECT_GT(st.discarded_tail_bytes(), 0u);
}

TEST_F(MailboxStateTest, CorruptionInTheMiddleIsAClearError) {
  {
    auto st = make();
    for (uint32_t uid = 1; uid <= 4; ++uid) ASSERT_TRUE(st.append(std::vector<NewMessage>{msg(uid)}));
  }
  const std::string good = read_bytes(log());
  // Records: header 8, created 37, then appends of 44 bytes each.
  const size_t second_append = 8 + 37 + 44;
  for (size_t at : {size_t{20}, second_append + 2, second_append + 20, size_t{8} + 37 + 5}) {
    std::string bad = good;
    bad[at] ^= 0x01;
    write_bytes(log(), bad);
    std::string err = open_error();
    EXPECT_NE(err.find("corrupt log"), std::string::npos) << at << ": " << err;
    EXPECT_NE(err.find("offset"), std::string::npos) << err;
    EXPECT_NE(err.find(log()), std::string::npos) << err;
  }
  std::string bad_length = good;
  bad_length[second_append + 3] = '\x7f';  // length field of a middle record
  write_bytes(log(), bad_length);
  EXPECT_NE(open_error().find("corrupt log"), std::string::npos);
}

TEST_F(MailboxStateTest, BadHeadersAndUnknownRecordsAreErrors) {
  make();
  const std::string good = read_bytes(log());
  std::string bad_magic = good;
  bad_magic[0] = 'X';
  write_bytes(log(), bad_magic);
  EXPECT_NE(open_error().find("bad magic"), std::string::npos);
  std::string newer = good;
  newer[4] = 2;
  write_bytes(log(), newer);
  EXPECT_NE(open_error().find("unsupported version 2"), std::string::npos);
  write_bytes(log(), good.substr(0, 6));
  EXPECT_NE(open_error().find("truncated file header"), std::string::npos);
  write_bytes(log(), good.substr(0, 8));
  EXPECT_NE(open_error().find("no created record"), std::string::npos);
  // An intact record of a type this version does not know: a newer writer, never skipped.
  write_bytes(log(), good + frame(42, "future"));
  EXPECT_NE(open_error().find("unsupported record type 42"), std::string::npos);
  // Intact but malformed payload.
  write_bytes(log(), good + frame(4, "xx"));
  EXPECT_NE(open_error().find("malformed payload"), std::string::npos);
}

TEST_F(MailboxStateTest, ReplayRefusesIntactRecordsThatBreakTheRules) {
  {
    auto st = make();
    ASSERT_TRUE(st.append(std::vector<NewMessage>{msg(5)}));
  }
  const std::string good = read_bytes(log());
  auto append_record = [](uint64_t modseq, uint32_t uid) {
    std::string p;
    ByteWriter w(p);
    w.u64(modseq);
    w.u32(1);
    w.u32(uid);
    w.i64(0);
    w.u32(1);
    w.u8(0);
    w.u16(0);
    return frame(2, p);
  };
  write_bytes(log(), good + append_record(3, 4));
  EXPECT_NE(open_error().find("UIDs never go backwards"), std::string::npos) << open_error();
  write_bytes(log(), good + append_record(2, 6));
  EXPECT_NE(open_error().find("does not follow"), std::string::npos) << open_error();
  write_bytes(log(), good + append_record(3, 6));
  EXPECT_EQ(reopen().uidnext(), 7u);
}

TEST_F(MailboxStateTest, CompactionPreservesStateAndWritesContinue) {
  auto st = make();
  std::vector<NewMessage> batch;
  for (uint32_t uid = 1; uid <= 50; ++uid) batch.push_back(msg(uid, kFlagSeen, uid % 3 ? std::vector<std::string>{} : std::vector<std::string>{"$label" + std::to_string(uid)}));
  ASSERT_TRUE(st.append(batch));
  for (uint32_t i = 0; i < 30; ++i) ASSERT_TRUE(st.set_flags(std::vector<FlagUpdate>{{1 + i % 50, static_cast<uint8_t>(i % 32), {}}}));
  const uint32_t gone[] = {7, 8, 9};
  ASSERT_TRUE(st.expunge(gone));
  const StateSnapshot snap = st.snapshot();
  const auto grown = st.log_bytes();
  ASSERT_TRUE(st.compact());
  EXPECT_EQ(st.snapshot(), snap);
  EXPECT_LT(st.log_bytes(), grown);
  EXPECT_NEAR(static_cast<double>(st.live_bytes()), static_cast<double>(st.log_bytes()), 64.0);
  EXPECT_EQ(st.log_bytes(), std::filesystem::file_size(log()));
  EXPECT_EQ(reopen().snapshot(), snap);
  // The writer must follow the new file (the old inode was replaced).
  ASSERT_TRUE(st.append(std::vector<NewMessage>{msg(51)}));
  ASSERT_TRUE(st.set_flags(std::vector<FlagUpdate>{{51, kFlagDraft, {"new"}}}));
  auto replayed = reopen();
  EXPECT_EQ(replayed.snapshot(), st.snapshot());
  EXPECT_EQ(replayed.find(51)->modseq, st.highest_modseq());
  EXPECT_EQ(replayed.find(2)->modseq, snap.messages[1].modseq);  // per-message modseqs survive
  EXPECT_EQ(entries(dir_.path()), std::vector<std::string>{"state.log"});
}

TEST_F(MailboxStateTest, AutomaticCompactionKeepsTheLogNearItsLiveSize) {
  StateOptions o = fast();
  o.compact_factor = 2;
  o.compact_min_bytes = 4096;
  auto st = make(o);
  std::vector<NewMessage> batch;
  for (uint32_t uid = 1; uid <= 20; ++uid) batch.push_back(msg(uid));
  ASSERT_TRUE(st.append(batch));
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE(st.set_flags(std::vector<FlagUpdate>{{1 + static_cast<uint32_t>(i % 20), static_cast<uint8_t>(i % 32), {}}}));
    ASSERT_LE(st.log_bytes(), std::max<uint64_t>(4096, 2 * st.live_bytes()) + 64) << i;
  }
  EXPECT_EQ(reopen(o).snapshot(), st.snapshot());
  EXPECT_EQ(st.highest_modseq(), 2002u);
}

TEST_F(MailboxStateTest, CrashBeforeTheCompactionRenameKeepsTheOldLog) {
  auto st = make();
  ASSERT_TRUE(st.append(std::vector<NewMessage>{msg(1), msg(2)}));
  const StateSnapshot snap = st.snapshot();
  // What a crash between writing the snapshot and renaming it leaves behind.
  write_bytes(dir_.sub(".tmp.state.log.4242.0.1"), read_bytes(log()).substr(0, 30));
  auto replayed = reopen();
  EXPECT_EQ(replayed.snapshot(), snap);
  ASSERT_TRUE(replayed.append(std::vector<NewMessage>{msg(3)}));
  EXPECT_EQ(reopen().messages().size(), 3u);
}

// A compaction that cannot write (directory not writable, the log itself still is) fails,
// leaves the old log, and neither loses nor blocks later writes.
TEST_F(MailboxStateTest, FailedCompactionKeepsTheOldLogAndWritesContinue) {
  make();
  testing::chown_tree(dir_.path());
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0555), 0);
  std::string err = testing::run_in_child(
      [&]() -> std::string {
        StateOptions o = fast();
        o.compact_factor = 2;
        o.compact_min_bytes = 0;  // every write tries to compact
        auto st = MailboxState::open(dir_.path(), o);
        if (!st) return "open: " + st.error().message;
        for (uint32_t uid = 1; uid <= 20; ++uid) {
          if (auto r = st->append(std::vector<NewMessage>{msg(uid)}); !r) return "append: " + r.error().message;
        }
        auto c = st->compact();
        if (c) return "compaction succeeded in a read-only directory";
        if (c.error().message.find("Permission denied") == std::string::npos) return "wrong error: " + c.error().message;
        if (auto r = st->append(std::vector<NewMessage>{msg(21)}); !r) return "append after: " + r.error().message;
        return "";
      },
      /*unprivileged=*/true);
  ::chmod(dir_.path().c_str(), 0755);
  EXPECT_EQ(err, "");
  auto st = reopen();
  EXPECT_EQ(st.messages().size(), 21u);
  EXPECT_EQ(st.highest_modseq(), 22u);
  EXPECT_EQ(entries(dir_.path()), std::vector<std::string>{"state.log"});
}

TEST_F(MailboxStateTest, FailedWriteLeavesStateAndLogUnchanged) {
  auto st = make();
  ASSERT_TRUE(st.append(std::vector<NewMessage>{msg(1)}));
  const StateSnapshot snap = st.snapshot();
  const auto size = std::filesystem::file_size(log());
  {
    testing::FileSizeLimit limit(size + 20);
    std::vector<NewMessage> batch;
    for (uint32_t uid = 2; uid < 50; ++uid) batch.push_back(msg(uid));
    auto r = st.append(batch);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("File too large"), std::string::npos) << r.error().message;
  }
  EXPECT_EQ(st.snapshot(), snap);
  EXPECT_EQ(std::filesystem::file_size(log()), size);
  ASSERT_TRUE(st.append(std::vector<NewMessage>{msg(2)}));
  EXPECT_EQ(reopen().snapshot(), st.snapshot());
}

TEST_F(MailboxStateTest, ExpungeHistoryIsCappedAtCompactionWithAFloor) {
  StateOptions o = fast();
  o.max_expunge_history = 3;
  auto st = make(o);
  std::vector<NewMessage> batch;
  for (uint32_t uid = 1; uid <= 10; ++uid) batch.push_back(msg(uid));
  ASSERT_TRUE(st.append(batch));  // modseq 2
  for (uint32_t uid = 1; uid <= 4; ++uid) {
    const uint32_t one[] = {uid};
    ASSERT_TRUE(st.expunge(one));  // modseqs 3..6
  }
  const uint32_t pair[] = {5, 6};
  ASSERT_EQ(*st.expunge(pair), 7u);  // two entries under one modseq
  ASSERT_EQ(st.expunges().size(), 6u);
  ASSERT_TRUE(st.compact());
  // The newest 3 entries are kept; everything at or below the floor (modseq 5) is forgotten.
  EXPECT_EQ(st.expunges(), (std::vector<ExpungeEntry>{{6, 4}, {7, 5}, {7, 6}}));
  EXPECT_EQ(st.expunge_floor(), 5u);
  EXPECT_EQ(st.expunged_since(5), (std::vector<uint32_t>{4, 5, 6}));
  auto replayed = reopen(o);
  EXPECT_EQ(replayed.snapshot(), st.snapshot());
  o.max_expunge_history = 1;  // a cut inside modseq 7's pair drops the whole pair
  auto tighter = reopen(o);
  ASSERT_TRUE(tighter.compact());
  EXPECT_TRUE(tighter.expunges().empty());
  EXPECT_EQ(tighter.expunge_floor(), 7u);
}

TEST_F(MailboxStateTest, CreateFromASnapshotValidatesFirst) {
  auto st = make();
  ASSERT_TRUE(st.append(std::vector<NewMessage>{msg(3, kFlagSeen, {"a"}), msg(9)}));
  const uint32_t gone[] = {3};
  ASSERT_TRUE(st.expunge(gone));
  TempDir other;
  auto copy = MailboxState::create_from(other.path(), st.snapshot(), fast());
  ASSERT_TRUE(copy) << copy.error().message;
  EXPECT_EQ(copy->snapshot(), st.snapshot());
  EXPECT_EQ(MailboxState::open(other.path(), fast())->snapshot(), st.snapshot());

  std::vector<std::function<void(StateSnapshot&)>> breakers = {
      [](StateSnapshot& s) { s.uidvalidity = 0; },
      [](StateSnapshot& s) { s.uidnext = 9; },                      // a message at UIDNEXT
      [](StateSnapshot& s) { s.messages[0].modseq = 99; },          // above HIGHESTMODSEQ
      [](StateSnapshot& s) { s.messages.push_back(s.messages[0]); },  // not ascending
      [](StateSnapshot& s) { s.expunge_floor = 3; },                // history at or below the floor
      [](StateSnapshot& s) { s.messages[0].keywords = {"b", "a"}; },  // not canonical
      [](StateSnapshot& s) { s.messages[0].flags = 0x80; },
  };
  for (size_t i = 0; i < breakers.size(); ++i) {
    TempDir target;
    StateSnapshot s = st.snapshot();
    breakers[i](s);
    EXPECT_FALSE(MailboxState::create_from(target.path(), s, fast())) << i;
    EXPECT_TRUE(entries(target.path()).empty()) << i;
  }
}

TEST_F(MailboxStateTest, LargeMailboxReplaysQuickly) {
  auto st = make();
  for (uint32_t base = 1; base <= 100000; base += 1000) {
    std::vector<NewMessage> batch;
    for (uint32_t uid = base; uid < base + 1000; ++uid) batch.push_back(msg(uid, kFlagSeen));
    ASSERT_TRUE(st.append(batch));
  }
  std::vector<uint32_t> gone;
  for (uint32_t uid = 1; uid <= 100000; uid += 2) gone.push_back(uid);
  ASSERT_TRUE(st.expunge(gone));
  auto start = std::chrono::steady_clock::now();
  auto replayed = reopen();
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(replayed.messages().size(), 50000u);
  EXPECT_EQ(replayed.snapshot(), st.snapshot());
  EXPECT_LT(took, std::chrono::seconds(5));
}

// An append record of exactly `payload` bytes: keyword-heavy messages (as a large COPY of
// tagged mail makes) plus one whose keywords make up the rest.
std::vector<NewMessage> batch_of_payload(uint64_t payload) {
  constexpr uint64_t kHeader = 8 + 4;          // modseq, count
  constexpr uint64_t kMessage = 4 + 8 + 4 + 1 + 2;  // uid, date, size, flags, keyword count
  auto keywords = [](size_t count, size_t last_len) {
    std::vector<std::string> k;
    for (size_t i = 0; i < count; ++i) {
      std::string name = "k" + std::to_string(1000 + i);
      name.resize(i + 1 == count ? last_len : kMaxKeywordBytes, 'x');
      k.push_back(name);
    }
    return k;
  };
  const uint64_t full = kMessage + kMaxKeywordsPerMessage * (1 + kMaxKeywordBytes);
  std::vector<NewMessage> batch;
  uint64_t left = payload - kHeader;
  uint32_t uid = 1;
  while (left >= 2 * full) {
    batch.push_back(msg(uid++, 0, keywords(kMaxKeywordsPerMessage, kMaxKeywordBytes)));
    left -= full;
  }
  // The rest (full <= left < 2 * full) in two messages of whole 256-byte keywords plus one short one.
  uint64_t first = left / 2, second = left - first;
  for (uint64_t part : {first, second}) {
    uint64_t kw = part - kMessage;
    size_t count = static_cast<size_t>((kw + kMaxKeywordBytes) / (1 + kMaxKeywordBytes));
    size_t last = static_cast<size_t>(kw - (count - 1) * (1 + kMaxKeywordBytes) - 1);
    batch.push_back(msg(uid++, 0, keywords(count, last)));
  }
  return batch;
}

TEST_F(MailboxStateTest, ABatchOverTheRecordLimitIsRefusedWithItsOwnCode) {
  MailboxState st = make();
  auto over = st.append(batch_of_payload(uint64_t{kMaxRecordPayload} + 1));
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, kStateRecordTooLarge) << over.error().message;
  EXPECT_EQ(st.uidnext(), 1u);  // nothing applied, nothing written
  EXPECT_EQ(st.log_bytes(), read_bytes(log()).size());
  auto at = st.append(batch_of_payload(kMaxRecordPayload));
  ASSERT_TRUE(at) << at.error().message;
  const uint32_t uidnext = st.uidnext();
  EXPECT_GT(uidnext, 2000u);
  MailboxState again = reopen();  // a record of exactly the limit replays
  EXPECT_EQ(again.uidnext(), uidnext);
  EXPECT_EQ(again.snapshot(), st.snapshot());
}

}  // namespace
}  // namespace basalt::store
