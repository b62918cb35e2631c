#include "backend/imap_sequence.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace basalt::store::imap {
namespace {

using Positions = std::vector<uint32_t>;

SequenceSet parse(std::string_view text) {
  auto set = parse_sequence_set(text);
  EXPECT_TRUE(set) << text;
  return set ? *set : SequenceSet{};
}

Positions seqs(std::string_view text, uint32_t count) {
  auto out = resolve_seqnums(parse(text), count);
  EXPECT_TRUE(out) << text << " in " << count << ": " << out.error().message;
  return out ? *out : Positions{};
}

Positions uids(std::string_view text, const std::vector<uint32_t>& mailbox) {
  return resolve_uids(parse(text), mailbox);
}

TEST(ImapSequenceTest, ParsesElementsAsSent) {
  EXPECT_EQ(parse("1").ranges, (std::vector<SeqRange>{{1, 1}}));
  EXPECT_EQ(parse("1:5").ranges, (std::vector<SeqRange>{{1, 5}}));
  EXPECT_EQ(parse("5:1").ranges, (std::vector<SeqRange>{{5, 1}}));
  EXPECT_EQ(parse("*").ranges, (std::vector<SeqRange>{{kSeqStar, kSeqStar}}));
  EXPECT_EQ(parse("3:*").ranges, (std::vector<SeqRange>{{3, kSeqStar}}));
  EXPECT_EQ(parse("*:3").ranges, (std::vector<SeqRange>{{kSeqStar, 3}}));
  EXPECT_EQ(parse("1,3,5:7").ranges, (std::vector<SeqRange>{{1, 1}, {3, 3}, {5, 7}}));
  EXPECT_EQ(parse("4294967295").ranges, (std::vector<SeqRange>{{4294967295u, 4294967295u}}));
  EXPECT_EQ(parse("1:4294967295").ranges, (std::vector<SeqRange>{{1, 4294967295u}}));
}

TEST(ImapSequenceTest, RejectsBadSets) {
  for (std::string_view bad : {"", "0", "0:5", "5:0", "01", "1:05", "4294967296", "99999999999", "1,", ",1", "1,,2",
                               ":", "1:", ":1", "1:2:3", "a", "1a", "-1", "+1", " 1", "1 ", "**", "*1", "1:**", "$",
                               "1.5", "1;2"}) {
    auto set = parse_sequence_set(bad);
    ASSERT_FALSE(set) << "'" << bad << "'";
    EXPECT_EQ(set.error().message, "invalid sequence set");
    EXPECT_EQ(set.error().code, static_cast<int>(SeqErrc::kSyntax));
  }
}

TEST(ImapSequenceTest, SeqnumsResolveToSortedUniquePositions) {
  EXPECT_EQ(seqs("1", 3), (Positions{0}));
  EXPECT_EQ(seqs("1:3", 5), (Positions{0, 1, 2}));
  EXPECT_EQ(seqs("3:1", 5), (Positions{0, 1, 2}));
  EXPECT_EQ(seqs("*", 5), (Positions{4}));
  EXPECT_EQ(seqs("3:*", 5), (Positions{2, 3, 4}));
  EXPECT_EQ(seqs("*:3", 5), (Positions{2, 3, 4}));
  EXPECT_EQ(seqs("1:*", 1), (Positions{0}));
  EXPECT_EQ(seqs("5,1,3,1:2,2", 5), (Positions{0, 1, 2, 4}));
  EXPECT_EQ(seqs("2,4:7,9,12:*", 15), (Positions{1, 3, 4, 5, 6, 8, 11, 12, 13, 14}));  // RFC 3501 §9 example
  EXPECT_EQ(seqs("1:*,1:*,2:3", 4), (Positions{0, 1, 2, 3}));
}

TEST(ImapSequenceTest, SeqnumBeyondTheMailboxIsAnError) {
  for (auto [text, count] : std::vector<std::pair<std::string_view, uint32_t>>{
           {"4", 3}, {"1:4", 3}, {"4:*", 3}, {"1,4294967295", 3}, {"1", 0}, {"*", 0}, {"1:*", 0}}) {
    auto out = resolve_seqnums(parse(text), count);
    ASSERT_FALSE(out) << text << " in " << count;
    EXPECT_EQ(out.error().message, "invalid message sequence number");
    EXPECT_EQ(out.error().code, static_cast<int>(SeqErrc::kOutOfRange));
  }
}

TEST(ImapSequenceTest, UidsMatchOnlyExistingUids) {
  const std::vector<uint32_t> mailbox = {3, 5, 9, 10, 20};
  EXPECT_EQ(uids("5", mailbox), (Positions{1}));
  EXPECT_EQ(uids("4", mailbox), Positions{});
  EXPECT_EQ(uids("1:9", mailbox), (Positions{0, 1, 2}));
  EXPECT_EQ(uids("9:1", mailbox), (Positions{0, 1, 2}));
  EXPECT_EQ(uids("*", mailbox), (Positions{4}));
  EXPECT_EQ(uids("10:*", mailbox), (Positions{3, 4}));
  EXPECT_EQ(uids("1:*", mailbox), (Positions{0, 1, 2, 3, 4}));
  EXPECT_EQ(uids("21:*", mailbox), (Positions{4}));  // RFC 3501 §6.4.8: n:* always includes the highest
  EXPECT_EQ(uids("4294967295:*", mailbox), (Positions{4}));
  EXPECT_EQ(uids("21:30", mailbox), Positions{});
  EXPECT_EQ(uids("1:2", mailbox), Positions{});
  EXPECT_EQ(uids("20,3,5:9,9,4:6", mailbox), (Positions{0, 1, 2, 4}));
  EXPECT_EQ(uids("1:4294967295", mailbox), (Positions{0, 1, 2, 3, 4}));
}

TEST(ImapSequenceTest, UidsInEmptyMailboxMatchNothing) {
  EXPECT_EQ(uids("1:*", {}), Positions{});
  EXPECT_EQ(uids("*", {}), Positions{});
  EXPECT_EQ(uids("7", {}), Positions{});
}

TEST(ImapSequenceTest, SetContains) {
  SequenceSet set = parse("2,5:*");
  EXPECT_FALSE(set_contains(set, 1, 10));
  EXPECT_TRUE(set_contains(set, 2, 10));
  EXPECT_FALSE(set_contains(set, 3, 10));
  EXPECT_TRUE(set_contains(set, 5, 10));
  EXPECT_TRUE(set_contains(set, 10, 10));
  EXPECT_FALSE(set_contains(set, 11, 10));
  EXPECT_TRUE(set_contains(set, 3, 3));  // "5:*" with "*" = 3 is 3:5
  EXPECT_FALSE(set_contains(parse("*"), 1, 0));
}

TEST(ImapSequenceTest, FormatsUidSets) {
  EXPECT_EQ(format_uid_set(std::vector<uint32_t>{}), "");
  EXPECT_EQ(format_uid_set(std::vector<uint32_t>{7}), "7");
  EXPECT_EQ(format_uid_set(std::vector<uint32_t>{1, 2, 3, 7}), "1:3,7");
  EXPECT_EQ(format_uid_set(std::vector<uint32_t>{1, 3, 5}), "1,3,5");
  EXPECT_EQ(format_uid_set(std::vector<uint32_t>{1, 2, 4, 5, 6, 9, 10}), "1:2,4:6,9:10");
  EXPECT_EQ(format_uid_set(std::vector<uint32_t>{1, 1, 2, 2, 5, 5}), "1:2,5");
  EXPECT_EQ(format_uid_set(std::vector<uint32_t>{4294967294u, 4294967295u, 4294967295u}), "4294967294:4294967295");
}

TEST(ImapSequenceTest, FormatRoundTripsThroughResolve) {
  const std::vector<uint32_t> mailbox = {1, 2, 3, 7, 8, 12, 4000000000u};
  std::string text = format_uid_set(mailbox);
  EXPECT_EQ(text, "1:3,7:8,12,4000000000");
  EXPECT_EQ(uids(text, mailbox), (Positions{0, 1, 2, 3, 4, 5, 6}));
}

}  // namespace
}  // namespace basalt::store::imap
