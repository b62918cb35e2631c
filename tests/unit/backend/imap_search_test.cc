#include "backend/imap_search.h"

#include <gtest/gtest.h>

#include <string>

#include "backend/mailbox_state.h"
#include "imap_test_args.h"

namespace basalt::store::imap {
namespace {

using basalt::imap::Arg;

Result<SearchKey> parse(const std::string& keys) {
  std::vector<Arg> args = testing::server_args(keys);
  return parse_search(args);
}

std::string error_of(const std::string& keys) {
  auto key = parse(keys);
  if (key) return "ok";
  return key.error().message + "/" + std::to_string(key.error().code);
}

const std::string kHeader =
    "Date: Tue, 14 Nov 2023 23:30:00 -0500\r\n"
    "From: =?UTF-8?B?SsO8cmdlbg==?= <juergen@example.com>\r\n"
    "To: Bob <bob@example.org>, carol@example.net\r\n"
    "Cc: dave@example.com\r\n"
    "Subject: Quarterly\r\n report\r\n"
    "X-Mailer: Tester 1.0\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n";
const std::string kRaw = kHeader + "Qm9keSB3aXRoIFN1cHJpc2UgV29yZHM=\r\n";  // "Body with Suprise Words"

class ImapSearchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    m_.seq = 3;
    m_.uid = 30;
    m_.count = 5;
    m_.max_uid = 50;
    m_.flags = kFlagSeen | kFlagFlagged;
    m_.keywords = keywords_;
    m_.internal_date = {1700000000, 120};  // 15-Nov-2023 00:13:20 +0200
    m_.size = 1000;
    m_.header = kHeader;
    m_.load_raw = [this]() -> Result<std::string> {
      ++loads_;
      if (fail_load_) return make_error("spool read failed");
      return kRaw;
    };
  }
  // "yes" / "no" / "error: ..."
  std::string eval(const std::string& keys) {
    auto key = parse(keys);
    if (!key) return "parse error: " + key.error().message;
    auto r = match(*key, m_);
    return r ? (*r ? "yes" : "no") : "error: " + r.error().message;
  }

  using Cases = std::vector<std::pair<std::string, std::string>>;
  void check(const Cases& cases) {
    for (const auto& [keys, expected] : cases) EXPECT_EQ(eval(keys), expected) << keys;
  }

  std::vector<std::string> keywords_ = {"$Work", "todo"};
  SearchMessage m_;
  int loads_ = 0;
  bool fail_load_ = false;
};

TEST_F(ImapSearchTest, FlagsAndState) {
  check({
      {"ALL", "yes"},
      {"SEEN", "yes"},
      {"unseen", "no"},
      {"FLAGGED", "yes"},
      {"UNFLAGGED", "no"},
      {"ANSWERED", "no"},
      {"UNANSWERED", "yes"},
      {"DELETED", "no"},
      {"UNDELETED", "yes"},
      {"DRAFT", "no"},
      {"UNDRAFT", "yes"},
      {"KEYWORD $work", "yes"},
      {"KEYWORD other", "no"},
      {"UNKEYWORD todo", "no"},
      {"UNKEYWORD other", "yes"},
      {"RECENT", "no"},
      {"OLD", "yes"},
      {"NEW", "no"},
  });
  m_.recent = true;
  EXPECT_EQ(eval("RECENT"), "yes");
  EXPECT_EQ(eval("NEW"), "no");  // recent but seen
  m_.flags = 0;
  EXPECT_EQ(eval("NEW"), "yes");
  EXPECT_EQ(eval("OLD"), "no");
}

TEST_F(ImapSearchTest, SetsSizesAndLogic) {
  check({
      {"3", "yes"},
      {"1,2,4:*", "no"},
      {"*", "no"},
      {"2:*", "yes"},
      {"UID 30", "yes"},
      {"UID 31:*", "no"},
      {"UID 60:*", "no"},  // "60:*" = 50:60
      {"UID 1:29,31", "no"},
      {"LARGER 999", "yes"},
      {"LARGER 1000", "no"},
      {"SMALLER 1001", "yes"},
      {"SMALLER 1000", "no"},
      {"SEEN UNFLAGGED", "no"},  // implicit AND
      {"OR UNSEEN FLAGGED", "yes"},
      {"OR UNSEEN UNFLAGGED", "no"},
      {"NOT SEEN", "no"},
      {"NOT NOT SEEN", "yes"},
      {"(SEEN FLAGGED) (3)", "yes"},
      {"OR (UNSEEN DELETED) (FLAGGED NOT DRAFT)", "yes"},
      {"OR (OR (UNSEEN DELETED) (DRAFT ANSWERED)) (OR (1) (2))", "no"},
  });
}

TEST_F(ImapSearchTest, Dates) {
  // Internal date: 15-Nov-2023 in its own zone (+0200), though 14-Nov in UTC.
  check({
      {"ON 15-Nov-2023", "yes"},
      {"ON 14-Nov-2023", "no"},
      {"SINCE 15-Nov-2023", "yes"},
      {"SINCE 16-Nov-2023", "no"},
      {"BEFORE 15-Nov-2023", "no"},
      {"BEFORE \"16-nov-2023\"", "yes"},
  });
  // Date: 14 Nov 2023 23:30 -0500 (15 Nov in UTC): the sent day is the 14th.
  check({
      {"SENTON 14-Nov-2023", "yes"},
      {"SENTON 15-Nov-2023", "no"},
      {"SENTSINCE 14-Nov-2023", "yes"},
      {"SENTSINCE 15-Nov-2023", "no"},
      {"SENTBEFORE 14-Nov-2023", "no"},
      {"SENTBEFORE 15-Nov-2023", "yes"},
  });
  m_.header = "Subject: no date\r\n\r\n";
  EXPECT_EQ(eval("SENTBEFORE 1-Jan-3000"), "no");
  EXPECT_EQ(eval("NOT SENTSINCE 1-Jan-1970"), "yes");
}

TEST_F(ImapSearchTest, HeaderKeysNeverLoadTheBody) {
  check({
      {"FROM {7+}\r\nj\xc3\xbcrgen", "yes"},  // decoded encoded-word, literal UTF-8
      {"FROM \"JUERGEN@EXAMPLE\"", "yes"},
      {"TO carol", "yes"},
      {"TO dave", "no"},
      {"CC DAVE", "yes"},
      {"BCC x", "no"},
      {"SUBJECT \"quarterly report\"", "yes"},  // unfolded
      {"SUBJECT \"\"", "yes"},  // present
      {"BCC \"\"", "no"},       // absent
      {"HEADER X-Mailer tester", "yes"},
      {"HEADER x-mailer \"\"", "yes"},
      {"HEADER X-Other \"\"", "no"},
      {"HEADER X-MAILER 2.0", "no"},
  });
  EXPECT_EQ(loads_, 0);
}

TEST_F(ImapSearchTest, BodyAndTextLoadTheBodyOnce) {
  EXPECT_EQ(eval("BODY suprise"), "yes");  // base64 decoded
  EXPECT_EQ(loads_, 1);
  check({
      {"BODY \"quarterly\"", "no"},  // header text is not body
      {"TEXT quarterly", "yes"},     // but is text
      {"TEXT words", "yes"},
  });
  loads_ = 0;
  EXPECT_EQ(eval("BODY x BODY y TEXT z"), "no");
  EXPECT_EQ(loads_, 1);
  loads_ = 0;
  EXPECT_EQ(eval("UNSEEN BODY suprise"), "no");  // short-circuit: no load
  EXPECT_EQ(eval("TEXT quarterly"), "yes");       // found in the header first
  EXPECT_EQ(loads_, 0);
  fail_load_ = true;
  EXPECT_EQ(eval("BODY x"), "error: spool read failed");
  EXPECT_EQ(eval("NOT BODY x"), "error: spool read failed");
  m_.load_raw = nullptr;
  EXPECT_EQ(eval("BODY x"), "error: search needs the message body");
}

TEST(ImapSearchParseTest, NeedsBody) {
  EXPECT_FALSE(needs_body(*parse("FROM a SUBJECT b HEADER c d SENTON 1-Jan-2020 OR SEEN (1:* UID 3)")));
  EXPECT_TRUE(needs_body(*parse("BODY x")));
  EXPECT_TRUE(needs_body(*parse("SEEN OR FLAGGED (NOT TEXT y)")));
}

using ParseCases = std::vector<std::pair<std::string, std::string>>;

void check_parse(const ParseCases& cases) {
  for (const auto& [keys, expected] : cases) EXPECT_EQ(error_of(keys), expected) << keys;
}

TEST(ImapSearchParseTest, Charset) {
  check_parse({
      {"CHARSET UTF-8 ALL", "ok"},
      {"charset \"us-ascii\" SEEN", "ok"},
      {"CHARSET ISO-8859-1 ALL", "unsupported charset/2"},
      {"CHARSET", "missing search argument/1"},
      {"CHARSET (UTF-8) ALL", "missing search argument/1"},
      {"CHARSET UTF-8", "missing search key/1"},
      {"ALL CHARSET UTF-8", "unknown search key/1"},
  });
}

TEST(ImapSearchParseTest, Errors) {
  check_parse({
           {"()", "missing search key/1"},
           {"FOO", "unknown search key/1"},
           {"\"SEEN\"", "unknown search key/1"},
           {"NIL", "unknown search key/1"},
           {"FROM", "missing search argument/1"},
           {"FROM (a)", "missing search argument/1"},
           {"HEADER X", "missing search argument/1"},
           {"HEADER \"\" x", "invalid search argument/1"},
           {"KEYWORD", "missing search argument/1"},
           {"KEYWORD \\Seen", "invalid search argument/1"},
           {"KEYWORD \"a b\"", "invalid search argument/1"},
           {"SINCE 32-Jan-2020", "invalid search date/1"},
           {"SINCE 1-Jan-2020x", "invalid search date/1"},
           {"SINCE {10+}\r\n1-Jan-2020", "invalid search date/1"},
           {"ON", "missing search argument/1"},
           {"LARGER x", "invalid number/1"},
           {"LARGER -1", "invalid number/1"},
           {"LARGER 4294967296", "invalid number/1"},
           {"SMALLER \"5\"", "invalid number/1"},
           {"UID", "missing search argument/1"},
           {"UID x", "invalid sequence set/1"},
           {"UID \"1\"", "invalid sequence set/1"},
           {"0", "invalid sequence set/1"},
           {"1:2:3", "invalid sequence set/1"},
           {"*x", "invalid sequence set/1"},
           {"NOT", "missing search key/1"},
           {"OR SEEN", "missing search key/1"},
           {"OR", "missing search key/1"},
           {"NOT (FOO)", "unknown search key/1"},
           {"LARGER 4294967295", "ok"},
  });
}

TEST(ImapSearchParseTest, DepthIsLimited) {
  std::string deep;
  for (size_t i = 0; i < kMaxSearchDepth; ++i) deep += "NOT ";
  EXPECT_EQ(error_of(deep + "SEEN"), "search too complex/1");
  EXPECT_EQ(error_of(deep.substr(4) + "SEEN"), "ok");
}

TEST(ImapSearchParseTest, Tree) {
  auto key = parse("OR SEEN (UID 1:3 FROM x) LARGER 5");
  ASSERT_TRUE(key);
  ASSERT_EQ(key->op, SearchOp::kAnd);
  ASSERT_EQ(key->children.size(), 2u);
  const SearchKey& either = key->children[0];
  EXPECT_EQ(either.op, SearchOp::kOr);
  EXPECT_EQ(either.children[0].op, SearchOp::kFlag);
  EXPECT_EQ(either.children[0].flag, kFlagSeen);
  EXPECT_EQ(either.children[1].op, SearchOp::kAnd);
  EXPECT_EQ(either.children[1].children[0].op, SearchOp::kUid);
  EXPECT_EQ(either.children[1].children[1].name, "From");
  EXPECT_EQ(either.children[1].children[1].value, "x");
  EXPECT_EQ(key->children[1].op, SearchOp::kLarger);
  EXPECT_EQ(key->children[1].number, 5);
}

}  // namespace
}  // namespace basalt::store::imap
