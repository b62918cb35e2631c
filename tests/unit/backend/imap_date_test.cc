#include "backend/imap_date.h"

#include <gtest/gtest.h>

namespace basalt::store::imap {
namespace {

TEST(ImapDateTest, FormatsInternalDateInItsZone) {
  EXPECT_EQ(format_date_time({0, 0}), "01-Jan-1970 00:00:00 +0000");
  EXPECT_EQ(format_date_time({1700000000, 0}), "14-Nov-2023 22:13:20 +0000");
  EXPECT_EQ(format_date_time({1700000000, 120}), "15-Nov-2023 00:13:20 +0200");
  EXPECT_EQ(format_date_time({1700000000, -330}), "14-Nov-2023 16:43:20 -0530");
  EXPECT_EQ(format_date_time({951782400, 0}), "29-Feb-2000 00:00:00 +0000");
  EXPECT_EQ(format_date_time({-1, 0}), "31-Dec-1969 23:59:59 +0000");
}

TEST(ImapDateTest, ParsesAppendDateTime) {
  EXPECT_EQ(parse_date_time("14-Nov-2023 22:13:20 +0000"), (DateTime{1700000000, 0}));
  EXPECT_EQ(parse_date_time("15-nov-2023 00:13:20 +0200"), (DateTime{1700000000, 120}));
  EXPECT_EQ(parse_date_time("14-NOV-2023 16:43:20 -0530"), (DateTime{1700000000, -330}));
  EXPECT_EQ(parse_date_time(" 1-Jan-1970 00:00:00 +0000"), (DateTime{0, 0}));
  EXPECT_EQ(parse_date_time("1-Jan-1970 00:00:00 +0000"), (DateTime{0, 0}));
  EXPECT_EQ(parse_date_time("01-Jan-1970 00:00:00 +0000"), (DateTime{0, 0}));
  for (auto bad : {"", "14-Nov-2023", "14-Nov-2023 22:13:20", "14-Nov-2023 22:13:20 0000", "14-Nov-2023 24:00:00 +0000",
                   "14-Nov-2023 22:60:00 +0000", "14-Nov-2023 22:13:61 +0000", "14-Nov-2023 22:13:20 +0060",
                   "30-Feb-2023 00:00:00 +0000", "29-Feb-2023 00:00:00 +0000", "00-Jan-2023 00:00:00 +0000",
                   "14-Foo-2023 22:13:20 +0000", "14-Nov-23 22:13:20 +0000", "14 Nov 2023 22:13:20 +0000",
                   "14-Nov-2023  22:13:20 +0000", "14-Nov-2023 22:13:20 +0000 ", "114-Nov-2023 22:13:20 +0000",
                   "14-Nov-2023 2:13:20 +0000", "14-Nov-0000 22:13:20 +0000"}) {
    EXPECT_FALSE(parse_date_time(bad)) << bad;
  }
  EXPECT_TRUE(parse_date_time("29-Feb-2024 00:00:00 +0000"));
}

TEST(ImapDateTest, RoundTrips) {
  for (int64_t t : {int64_t{0}, int64_t{1700000000}, int64_t{4102444799}, int64_t{951868799}}) {
    for (int tz : {0, 60, -480, 765, -59}) {
      DateTime dt{t, tz};
      EXPECT_EQ(parse_date_time(format_date_time(dt)), dt) << format_date_time(dt);
    }
  }
}

TEST(ImapDateTest, ParsesSearchDates) {
  EXPECT_EQ(parse_search_date("1-Jan-1970"), 0);
  EXPECT_EQ(parse_search_date("01-jan-1970"), 0);
  EXPECT_EQ(parse_search_date("2-JAN-1970"), 1);
  EXPECT_EQ(parse_search_date("14-Nov-2023"), 19675);
  EXPECT_EQ(parse_search_date("31-Dec-1969"), -1);
  for (auto bad : {"", "1-Jan-70", "32-Jan-2023", "0-Jan-2023", "1-Jan-2023 ", " 1-Jan-2023", "1-Janu-2023",
                   "1/Jan/2023", "001-Jan-2023", "1-Jan-20233", "a-Jan-2023", "31-Apr-2023"}) {
    EXPECT_FALSE(parse_search_date(bad)) << bad;
  }
}

TEST(ImapDateTest, LocalDay) {
  EXPECT_EQ(local_day(1700000000, 0), 19675);
  EXPECT_EQ(local_day(1700000000, 120), 19676);  // already the 15th at +0200
  EXPECT_EQ(local_day(0, -60), -1);
  EXPECT_EQ(days_from_civil(2023, 11, 14), 19675);
  EXPECT_EQ(month_from_name("dec"), 12u);
  EXPECT_EQ(month_from_name("Dez"), 0u);
}

}  // namespace
}  // namespace basalt::store::imap
