// POP3 command parser: a table of good and bad lines, each fed in one piece, byte by byte, split
// in two at every position and at seeded random positions, all giving the same events.
#include "common/pop3_parser.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <ostream>
#include <random>
#include <string>
#include <vector>

namespace basalt::pop3 {
namespace {

using namespace std::string_literals;

std::string escape(std::string_view s) {
  std::string out;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out;
}

std::string render(const Command& command) {
  std::string out = command.name;
  for (const std::string& arg : command.args) out += " \"" + escape(arg) + "\"";
  return out;
}

std::string render(const ParseError& error) {
  return std::string(error.fatal ? "FATAL" : "error") + " tag=\"" + escape(error.tag) + "\" \"" +
         error.message + "\"";
}

// Feeds `input` cut at `cuts` and records each event with the offset just past its bytes.
std::vector<std::string> run(const Limits& limits, std::string_view input, const std::vector<size_t>& cuts) {
  CommandParser parser(limits);
  std::vector<std::string> events;
  size_t begin = 0;
  for (size_t i = 0; i <= cuts.size(); ++i) {
    size_t end = i < cuts.size() ? cuts[i] : input.size();
    size_t offset = begin;
    for (size_t guard = 0;; ++guard) {
      if (guard > input.size() + 8) {
        ADD_FAILURE() << "parser makes no progress at " << offset;
        return events;
      }
      size_t consumed = SIZE_MAX;
      Status status = parser.feed(input.substr(offset, end - offset), consumed);
      if (consumed > end - offset) {
        ADD_FAILURE() << "consumed " << consumed << " of " << end - offset;
        return events;
      }
      offset += consumed;
      std::string at = " @" + std::to_string(offset);
      if (status == Status::kNeedMore) {
        EXPECT_EQ(offset, end) << "kNeedMore must consume everything";
        break;
      }
      if (status == Status::kNeedContinuation) ADD_FAILURE() << "POP3 never asks for a continuation";
      if (status == Status::kCommand) events.push_back(render(parser.take_command()) + at);
      if (status == Status::kError) {
        events.push_back(render(parser.error()) + at);
        if (parser.error().fatal) {
          size_t again = SIZE_MAX;
          EXPECT_EQ(parser.feed("NOOP\r\n", again), Status::kError) << "fatal must be sticky";
          EXPECT_EQ(again, 0u);
          return events;
        }
      }
    }
    begin = end;
  }
  return events;
}

std::vector<size_t> random_cuts(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  size_t count = std::uniform_int_distribution<size_t>(1, std::min<size_t>(n + 1, 24))(rng);
  std::vector<size_t> cuts(count);
  for (size_t& cut : cuts) cut = std::uniform_int_distribution<size_t>(0, n)(rng);
  std::sort(cuts.begin(), cuts.end());
  return cuts;
}

struct Case {
  std::string name;
  std::string input;
  std::vector<std::string> expected;  // "@$" stands for "@<input size>"
  Limits limits{};
};

std::string err(std::string_view message, std::string_view at = "$") {
  return "error tag=\"\" \"" + std::string(message) + "\" @" + std::string(at);
}

std::string n(size_t count, char c = 'a') { return std::string(count, c); }

std::vector<Case> cases() {
  Limits three_args;
  three_args.max_args = 3;
  return {
      {"stat", "STAT\r\n", {"STAT @$"}},
      {"bare_lf", "STAT\n", {"STAT @$"}},
      {"keyword_uppercased", "uSeR alice\r\n", {"USER \"alice\" @$"}},
      {"two_args", "TOP 1 10\r\n", {"TOP \"1\" \"10\" @$"}},
      {"apop", "APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n",
       {"APOP \"mrose\" \"c4c9334bac560ecc979e58001b3e22fb\" @$"}},
      {"auth_plain_ir", "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", {"AUTH \"PLAIN\" \"AGFsaWNlAHNlY3JldA==\" @$"}},
      {"auth_empty_ir", "AUTH PLAIN =\r\n", {"AUTH \"PLAIN\" \"=\" @$"}},
      {"pass_utf8", "PASS p\xc3\xa4ss\r\n", {R"(PASS "p\xc3\xa4ss" @$)"}},
      {"pass_punctuation", "PASS a\"b\\c(){}*%\r\n", {R"(PASS "a\"b\\c(){}*%" @$)"}},
      {"pass_with_space", "PASS my secret\r\n", {"PASS \"my secret\" @$"}},
      {"pass_rest_of_line", "PASS  two  spaces \r\n", {"PASS \" two  spaces \" @$"}},
      {"pass_many_spaces", "PASS a b c d e f g h i j\r\n", {"PASS \"a b c d e f g h i j\" @$"}},
      {"pass_control_char", "PASS a\tb\r\n", {err("invalid character")}},
      {"pass_empty", "PASS \r\n", {err("syntax error")}},
      {"keyword_digits", "X2 a\r\n", {"X2 \"a\" @$"}},
      {"keyword_at_cap", n(32, 'K') + "\r\n", {n(32, 'K') + " @$"}},
      {"pipelined", "USER alice\r\nPASS secret\r\nSTAT\r\n", {"USER \"alice\" @12", "PASS \"secret\" @25", "STAT @$"}},
      {"incomplete", "USER ali", {}},
      {"too_many_args", "USER a b c\r\n", {err("too many arguments")}},
      {"args_at_custom_limit", "X a b c\r\n", {"X \"a\" \"b\" \"c\" @$"}, three_args},
      {"args_over_custom_limit", "X a b c d\r\n", {err("too many arguments")}, three_args},
      {"empty_line", "\r\n", {err("empty command line")}},
      {"empty_line_bare_lf", "\n", {err("empty command line")}},
      {"empty_line_resync", "\r\nSTAT\r\n", {err("empty command line", "2"), "STAT @$"}},
      {"leading_space", " STAT\r\n", {err("invalid command")}},
      {"double_space", "USER  alice\r\n", {err("syntax error")}},
      {"trailing_space", "STAT \r\n", {err("syntax error")}},
      {"trailing_space_resync", "USER alice \r\nSTAT\r\n", {err("syntax error", "13"), "STAT @$"}},
      {"keyword_punctuation", "US-R a\r\n", {err("invalid command")}},
      {"keyword_8bit", "ST\xc3\xa4T\r\n", {err("invalid command")}},
      {"keyword_nul", "ST\0T\r\n"s, {err("invalid command")}},
      {"keyword_tab", "USER\talice\r\n", {err("invalid command")}},
      {"keyword_over_cap", n(33, 'K') + "\r\n", {err("invalid command")}},
      {"arg_nul", "USER a\0b\r\n"s, {err("invalid character")}},
      {"arg_tab", "USER a\tb\r\n", {err("invalid character")}},
      {"arg_del", "USER a\x7f\r\n", {err("invalid character")}},
      {"arg_bare_cr", "USER a\rb\r\n", {err("invalid character")}},
      {"double_cr", "STAT\r\r\n", {err("invalid command")}},
      {"line_at_limit", "USER " + n(505) + "\r\n", {"USER \"" + n(505) + "\" @$"}},
      {"line_at_limit_bare_lf", "USER " + n(506) + "\n", {"USER \"" + n(506) + "\" @$"}},
      {"line_over_limit", "USER " + n(506) + "\r\n", {err("line too long")}},
      {"line_over_limit_resync", "USER " + n(600) + "\r\nSTAT\r\n", {err("line too long", "607"), "STAT @$"}},
      {"overlong_at_fatal_cap", n(2048) + "\n", {err("line too long")}},
      {"overlong_over_fatal_cap", n(2048) + "\r\n", {"FATAL tag=\"\" \"line too long\" @2048"}},
      {"overlong_never_ends", n(3000), {"FATAL tag=\"\" \"line too long\" @2048"}},
  };
}

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class Pop3ParserTable : public testing::TestWithParam<Case> {};

std::vector<std::string> expected_events(const Case& c) {
  std::vector<std::string> out = c.expected;
  for (std::string& event : out) {
    size_t at = event.rfind("@$");
    if (at != std::string::npos) event.replace(at, 2, "@" + std::to_string(c.input.size()));
  }
  return out;
}

TEST_P(Pop3ParserTable, OnePiece) {
  EXPECT_EQ(run(GetParam().limits, GetParam().input, {}), expected_events(GetParam()));
}

TEST_P(Pop3ParserTable, ByteByByte) {
  const Case& c = GetParam();
  std::vector<size_t> cuts;
  for (size_t i = 1; i < c.input.size(); ++i) cuts.push_back(i);
  EXPECT_EQ(run(c.limits, c.input, cuts), expected_events(c));
}

TEST_P(Pop3ParserTable, EveryTwoPieceSplit) {
  const Case& c = GetParam();
  std::vector<std::string> expected = expected_events(c);
  for (size_t cut = 0; cut <= c.input.size(); ++cut) {
    ASSERT_EQ(run(c.limits, c.input, {cut}), expected) << "split at " << cut;
  }
}

TEST_P(Pop3ParserTable, RandomSplits) {
  const Case& c = GetParam();
  std::vector<std::string> expected = expected_events(c);
  for (unsigned seed = 1; seed <= 8; ++seed) {
    ASSERT_EQ(run(c.limits, c.input, random_cuts(c.input.size(), seed)), expected) << "seed " << seed;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, Pop3ParserTable, testing::ValuesIn(cases()),
                         [](const testing::TestParamInfo<Case>& info) { return info.param.name; });

TEST(Pop3ParserTest, CommandLeavesFollowingBytes) {
  CommandParser parser;
  size_t consumed = 0;
  ASSERT_EQ(parser.feed("USER alice\r\nPASS x\r\n", consumed), Status::kCommand);
  EXPECT_EQ(consumed, 12u);
  Command command = parser.take_command();
  EXPECT_EQ(command.name, "USER");
  EXPECT_EQ(command.args, std::vector<std::string>{"alice"});
}

TEST(Pop3ParserTest, FatalUntilReset) {
  CommandParser parser(Limits{8, 2});
  size_t consumed = 0;
  ASSERT_EQ(parser.feed(n(40), consumed), Status::kError);
  EXPECT_TRUE(parser.error().fatal);
  EXPECT_EQ(consumed, 32u);
  EXPECT_EQ(parser.feed("STAT\r\n", consumed), Status::kError);
  EXPECT_EQ(consumed, 0u);
  parser.reset();
  ASSERT_EQ(parser.feed("STAT\r\n", consumed), Status::kCommand);
  EXPECT_EQ(render(parser.take_command()), "STAT");
}

TEST(Pop3ParserTest, ErrorLeavesNoCommand) {
  CommandParser parser;
  size_t consumed = 0;
  ASSERT_EQ(parser.feed("USER a b c\r\n", consumed), Status::kError);
  EXPECT_EQ(parser.error().message, "too many arguments");
  EXPECT_FALSE(parser.error().fatal);
  EXPECT_TRUE(parser.error().tag.empty());
  Command command = parser.take_command();
  EXPECT_TRUE(command.name.empty());
  EXPECT_TRUE(command.args.empty());
}

}  // namespace
}  // namespace basalt::pop3
