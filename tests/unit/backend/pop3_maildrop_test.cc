#include "backend/pop3_maildrop.h"

#include <gtest/gtest.h>

namespace basalt::store {
namespace {

std::vector<MessageMeta> three() {
  std::vector<MessageMeta> m(3);
  m[0].uid = 4, m[0].size = 100;
  m[1].uid = 9, m[1].size = 20;
  m[2].uid = 10, m[2].size = 3;
  return m;
}

TEST(Pop3UniqueId, HexUidvalidityDotUid) {
  EXPECT_EQ(pop3_unique_id(0x65a1b2c3, 1), "65a1b2c3.00000001");
  EXPECT_EQ(pop3_unique_id(0xffffffff, 0xffffffff), "ffffffff.ffffffff");
}

TEST(Pop3Number, DigitsOnlyWithinMax) {
  EXPECT_EQ(parse_pop3_number("0", 10), 0u);
  EXPECT_EQ(parse_pop3_number("10", 10), 10u);
  EXPECT_EQ(parse_pop3_number("007", 10), 7u);
  EXPECT_EQ(parse_pop3_number("4294967295", UINT32_MAX), 4294967295u);
  EXPECT_EQ(parse_pop3_number("4294967296", UINT32_MAX), std::nullopt);
  EXPECT_EQ(parse_pop3_number("99999999999999999999999", UINT64_MAX), std::nullopt);
  EXPECT_EQ(parse_pop3_number("11", 10), std::nullopt);
  for (const char* bad : {"", "-1", "+1", "1a", " 1", "0x1", "1.0"}) {
    EXPECT_EQ(parse_pop3_number(bad, 100), std::nullopt) << bad;
  }
}

TEST(Maildrop, NumbersCountsAndOctets) {
  Maildrop d(7, three());
  EXPECT_EQ(d.size(), 3u);
  EXPECT_EQ(d.count(), 3u);
  EXPECT_EQ(d.octets(), 123u);
  EXPECT_EQ(d.unique_id(1), "00000007.00000009");
  auto i = d.find("2");
  ASSERT_TRUE(i.ok());
  EXPECT_EQ(d.at(*i).uid, 9u);
}

TEST(Maildrop, FindErrors) {
  Maildrop d(7, three());
  for (const char* bad : {"0", "4", "99999999999", "x", "-1", ""}) {
    auto r = d.find(bad);
    EXPECT_FALSE(r.ok()) << bad;
  }
  EXPECT_EQ(d.find("4").error().message, "There's no message 4.");
  EXPECT_EQ(d.find("x").error().message, "Invalid message number.");
}

TEST(Maildrop, DeleteAndReset) {
  Maildrop d(7, three());
  d.mark_deleted(0);
  d.mark_deleted(0);  // idempotent
  d.mark_deleted(2);
  EXPECT_EQ(d.count(), 1u);
  EXPECT_EQ(d.octets(), 20u);
  EXPECT_EQ(d.find("1").error().message, "Message 1 is deleted.");
  EXPECT_EQ(d.deleted_uids(), (std::vector<uint32_t>{4, 10}));
  EXPECT_EQ(d.size(), 3u);  // numbers stay valid for the session
  d.undelete_all();
  EXPECT_EQ(d.count(), 3u);
  EXPECT_EQ(d.octets(), 123u);
  EXPECT_TRUE(d.deleted_uids().empty());
  EXPECT_TRUE(d.find("1").ok());
}

TEST(Maildrop, Empty) {
  Maildrop d(1, {});
  EXPECT_EQ(d.count(), 0u);
  EXPECT_EQ(d.octets(), 0u);
  EXPECT_FALSE(d.find("1").ok());
}

}  // namespace
}  // namespace basalt::store
