// IMAP command parser and LineReader: a table of good and bad inputs, each fed in one piece, byte
// by byte, split in two at every position and split at seeded random positions; all feedings must
// give the same events (kind, content, tag, fatal flag and the offset consumed up to).
#include "common/imap_parser.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace basalt::imap {
namespace {

using namespace std::string_literals;

std::string escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
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

std::string render(const Arg& arg) {
  switch (arg.kind) {
    case ArgKind::kAtom: return "a\"" + escape(arg.text) + "\"";
    case ArgKind::kQuoted: return "q\"" + escape(arg.text) + "\"";
    case ArgKind::kLiteral: return "l\"" + escape(arg.text) + "\"";
    case ArgKind::kNil: return "n\"" + escape(arg.text) + "\"";
    case ArgKind::kList: {
      std::string out = "(";
      for (size_t i = 0; i < arg.items.size(); ++i) out += (i ? " " : "") + render(arg.items[i]);
      return out + ")";
    }
  }
  return "?";
}

std::string render(const Command& command) {
  std::string out = command.tag + " " + command.name;
  for (const Arg& arg : command.args) out += " " + render(arg);
  return out;
}

std::string render(const ParseError& error) {
  return std::string(error.fatal ? "FATAL" : "error") + " tag=\"" + escape(error.tag) + "\" \"" +
         error.message + "\"";
}

// Feeds `input` cut at `cuts` (ascending, duplicates allowed), the way reads would deliver it,
// and records each event followed by " @<offset just past the bytes consumed for it>".
template <class Parser, class TakeFn>
std::vector<std::string> drive(Parser& parser, std::string_view input, const std::vector<size_t>& cuts,
                               TakeFn take) {
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
      if (status == Status::kCommand) events.push_back(take(parser) + at);
      if (status == Status::kNeedContinuation) events.push_back("+" + at);
      if (status == Status::kError) {
        events.push_back(render(parser.error()) + at);
        if (parser.error().fatal) {
          size_t again = SIZE_MAX;
          EXPECT_EQ(parser.feed("A9 NOOP\r\n", again), Status::kError) << "fatal must be sticky";
          EXPECT_EQ(again, 0u);
          return events;
        }
      }
    }
    begin = end;
  }
  return events;
}

std::vector<std::string> run(const Limits& limits, std::string_view input, const std::vector<size_t>& cuts) {
  CommandParser parser(limits);
  return drive(parser, input, cuts, [](CommandParser& p) { return render(p.take_command()); });
}

std::vector<size_t> every_byte(size_t n) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < n; ++i) cuts.push_back(i);
  return cuts;
}

// Two-piece split positions: all of them, or for big inputs both ends plus a stride (splitting a
// 64 KiB literal at each of its 64 K positions would take minutes under ASan).
std::vector<size_t> two_piece_positions(size_t n) {
  std::vector<size_t> positions;
  for (size_t i = 0; i <= n; ++i) {
    if (n <= 10000 || i < 600 || n - i < 600 || i % (n / 500) == 0) positions.push_back(i);
  }
  return positions;
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

// gtest prints parameters on failure; the name is what identifies a case.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

std::vector<std::string> expected_events(const Case& c) {
  std::vector<std::string> out = c.expected;
  for (std::string& event : out) {
    size_t at = event.rfind("@$");
    if (at != std::string::npos) event.replace(at, 2, "@" + std::to_string(c.input.size()));
  }
  return out;
}

// Limits small enough that limit and limit+1 inputs stay short.
Limits small_limits() {
  Limits l;
  l.max_line = 32;
  l.max_tag = 8;
  l.max_args = 3;
  l.max_list_items = 4;
  l.max_list_depth = 1;
  l.max_literal = 16;
  l.max_nonsync_literal = 8;
  l.max_command = 64;
  return l;
}

// max_command below max_line + literals, so the command budget is what binds.
Limits budget_limits() {
  Limits l;
  l.max_line = 32;
  l.max_literal = 40;
  l.max_nonsync_literal = 40;
  l.max_command = 50;
  return l;
}

Limits depth_limits(size_t depth) {
  Limits l;
  l.max_list_depth = depth;
  return l;
}

std::string err(std::string_view tag, std::string_view message, std::string_view at = "$") {
  return "error tag=\"" + std::string(tag) + "\" \"" + std::string(message) + "\" @" + std::string(at);
}

std::string fatal(std::string_view tag, std::string_view message, std::string_view at) {
  return "FATAL tag=\"" + std::string(tag) + "\" \"" + std::string(message) + "\" @" + std::string(at);
}

std::string n(size_t count, char c = 'a') { return std::string(count, c); }

std::vector<Case> good_cases() {
  return {
      {"noop", "A1 NOOP\r\n", {"A1 NOOP @$"}},
      {"noop_bare_lf", "A1 NOOP\n", {"A1 NOOP @$"}},
      {"name_uppercased", "a1 nOoP\r\n", {"a1 NOOP @$"}},
      {"login_atoms", "A1 LOGIN alice secret\r\n", {R"(A1 LOGIN a"alice" a"secret" @$)"}},
      {"login_quoted", "A1 LOGIN \"alice\" \"se cret\"\r\n", {R"(A1 LOGIN q"alice" q"se cret" @$)"}},
      {"quoted_escapes", R"(A1 LOGIN "a\"b" "c\\d")" "\r\n", {R"(A1 LOGIN q"a\"b" q"c\\d" @$)"}},
      {"quoted_empty", "A1 LOGIN \"\" \"\"\r\n", {R"(A1 LOGIN q"" q"" @$)"}},
      {"quoted_specials", "A1 X \"(){%*]} \"\r\n", {R"(A1 X q"(){%*]} " @$)"}},
      {"atom_all_chars", "A1 X !#$&'+,-./09:;<=>?@AZ[^_`az|}~]\r\n", {R"(A1 X a"!#$&'+,-./09:;<=>?@AZ[^_`az|}~]" @$)"}},
      {"tag_chars", "a.b-c_d]~!} NOOP\r\n", {"a.b-c_d]~!} NOOP @$"}},
      {"tag_at_limit", n(64) + " NOOP\r\n", {n(64) + " NOOP @$"}},
      {"nil", "A1 ID NIL\r\n", {R"(A1 ID n"NIL" @$)"}},
      {"nil_lowercase", "A1 ID nil\r\n", {R"(A1 ID n"nil" @$)"}},
      {"nil_quoted_is_string", "A1 ID \"NIL\"\r\n", {R"(A1 ID q"NIL" @$)"}},
      {"nil_prefix_is_atom", "A1 ID NILS NI\r\n", {R"(A1 ID a"NILS" a"NI" @$)"}},
      {"sasl_ir_empty", "A1 AUTHENTICATE PLAIN =\r\n", {R"(A1 AUTHENTICATE a"PLAIN" a"=" @$)"}},
      {"sasl_ir", "A1 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n",
       {R"(A1 AUTHENTICATE a"PLAIN" a"AGFsaWNlAHNlY3JldA==" @$)"}},
      {"args_at_limit", "A1 X a b c\r\n", {R"(A1 X a"a" a"b" a"c" @$)"}},
      {"id_list", "A1 ID (\"name\" \"x\" \"version\" NIL)\r\n", {R"(A1 ID (q"name" q"x" q"version" n"NIL") @$)"}},
      {"list_empty", "A1 ID ()\r\n", {"A1 ID () @$"}},
      {"list_then_args", "A1 X (a) b ()\r\n", {R"(A1 X (a"a") a"b" () @$)"}},
      {"list_counts_as_one_arg", "A1 X (a b) c d\r\n", {R"(A1 X (a"a" a"b") a"c" a"d" @$)"}},
      {"list_items_at_limit", "A1 ID (a b c d)\r\n", {R"(A1 ID (a"a" a"b" a"c" a"d") @$)"}, small_limits()},
      {"list_depth_two", "A1 ID ((a) ())\r\n", {R"(A1 ID ((a"a") ()) @$)"}, depth_limits(2)},
      {"literal_sync", "A1 LOGIN {5}\r\nalice secret\r\n", {"+ @14", R"(A1 LOGIN l"alice" a"secret" @$)"}},
      {"literal_nonsync", "A1 LOGIN {5+}\r\nalice secret\r\n", {R"(A1 LOGIN l"alice" a"secret" @$)"}},
      {"literal_sync_then_nonsync", "A1 LOGIN {5}\r\nalice {6+}\r\nsecret\r\n",
       {"+ @14", R"(A1 LOGIN l"alice" l"secret" @$)"}},
      {"literal_binary", "A1 LOGIN {6}\r\na\0b\r\nc x\r\n"s, {"+ @14", R"(A1 LOGIN l"a\x00b\x0d\x0ac" a"x" @$)"}},
      {"literal_8bit", "A1 LOGIN {2+}\r\n\xc3\xa4 x\r\n", {R"(A1 LOGIN l"\xc3\xa4" a"x" @$)"}},
      {"literal_zero", "A1 LOGIN {0}\r\n {0+}\r\n\r\n", {"+ @14", R"(A1 LOGIN l"" l"" @$)"}},
      {"literal_leading_zeros", "A1 LOGIN {003+}\r\nabc x\r\n", {R"(A1 LOGIN l"abc" a"x" @$)"}},
      {"literal_last_bare_lf", "A1 LOGIN x {3+}\nabc\n", {R"(A1 LOGIN a"x" l"abc" @$)"}},
      {"literal_nil_text", "A1 ID {3+}\r\nNIL\r\n", {R"(A1 ID l"NIL" @$)"}},
      {"literal_in_list", "A1 ID ({4}\r\nname x)\r\n", {"+ @12", R"(A1 ID (l"name" a"x") @$)"}},
      {"literal_closes_list", "A1 ID (a {2+}\r\nbc)\r\n", {R"(A1 ID (a"a" l"bc") @$)"}},
      {"literal_sync_at_limit", "A1 X {16}\r\n" + n(16, 'x') + "\r\n", {"+ @11", "A1 X l\"" + n(16, 'x') + "\" @$"},
       small_limits()},
      {"literal_nonsync_at_limit", "A1 X {8+}\r\n" + n(8, 'x') + "\r\n", {"A1 X l\"" + n(8, 'x') + "\" @$"},
       small_limits()},
      {"literal_default_limit", "A1 LOGIN {65536}\r\n" + n(65536, 'x') + " b\r\n",
       {"+ @18", "A1 LOGIN l\"" + n(65536, 'x') + "\" a\"b\" @$"}},
      {"literal_nonsync_default_limit", "A1 LOGIN {4096+}\r\n" + n(4096, 'x') + "\r\n",
       {"A1 LOGIN l\"" + n(4096, 'x') + "\" @$"}},
      {"command_budget_at_limit", "A1 X {37}\r\n" + n(37, 'x') + "\r\n", {"+ @11", "A1 X l\"" + n(37, 'x') + "\" @50"},
       budget_limits()},
      {"command_budget_line_after_literal", "A1 X {30+}\r\n" + n(30, 'x') + " abcde\r\n",
       {"A1 X l\"" + n(30, 'x') + "\" a\"abcde\" @50"}, budget_limits()},
      {"line_at_limit", "A1 LOGIN " + n(8181) + "\r\n", {"A1 LOGIN a\"" + n(8181) + "\" @$"}},
      {"line_at_limit_bare_lf", "A1 LOGIN " + n(8182) + "\n", {"A1 LOGIN a\"" + n(8182) + "\" @$"}},
      {"line_budget_spans_literals", "A1 X {3+}\r\nabc " + n(18, 'y') + "\r\n",
       {"A1 X l\"abc\" a\"" + n(18, 'y') + "\" @$"}, small_limits()},
      {"tag_at_small_limit", "abcdefgh NOOP\r\n", {"abcdefgh NOOP @$"}, small_limits()},
      {"pipelined", "A1 NOOP\r\nA2 CAPABILITY\r\nA3 LOGOUT\r\n", {"A1 NOOP @9", "A2 CAPABILITY @24", "A3 LOGOUT @$"}},
      {"pipelined_literals", "A1 LOGIN {1+}\r\na b\r\nA2 NOOP\r\n", {R"(A1 LOGIN l"a" a"b" @20)", "A2 NOOP @$"}},
      {"incomplete_line", "A1 NOO", {}},
      {"incomplete_after_command", "A1 NOOP\r\nA2 NO", {"A1 NOOP @9"}},
      {"incomplete_literal", "A1 LOGIN {5}\r\nali", {"+ @14"}},
  };
}

std::vector<Case> syntax_error_cases() {
  return {
      {"empty_line", "\r\n", {err("", "empty command line")}},
      {"empty_line_bare_lf", "\n", {err("", "empty command line")}},
      {"empty_line_resync", "\r\nA1 NOOP\r\n", {err("", "empty command line", "2"), "A1 NOOP @$"}},
      {"tag_only", "A1\r\n", {err("A1", "missing command name")}},
      {"tag_space_only", "A1 \r\n", {err("A1", "missing command name")}},
      {"double_space_after_tag", "A1  NOOP\r\n", {err("A1", "missing command name")}},
      {"trailing_space", "A1 NOOP \r\n", {err("A1", "syntax error")}},
      {"trailing_space_resync", "A1 NOOP \r\nA2 NOOP\r\n", {err("A1", "syntax error", "10"), "A2 NOOP @$"}},
      {"double_space_args", "A1 LOGIN a  b\r\n", {err("A1", "syntax error")}},
      {"leading_space", " A1 NOOP\r\n", {err("", "invalid tag")}},
      {"tag_plus", "A+1 NOOP\r\n", {err("", "invalid tag")}},
      {"tag_continuation", "+ NOOP\r\n", {err("", "invalid tag")}},
      {"tag_star", "* NOOP\r\n", {err("", "invalid tag")}},
      {"tag_percent", "A%1 NOOP\r\n", {err("", "invalid tag")}},
      {"tag_paren", "A(1 NOOP\r\n", {err("", "invalid tag")}},
      {"tag_quote", "A\"1 NOOP\r\n", {err("", "invalid tag")}},
      {"tag_brace", "A{1 NOOP\r\n", {err("", "invalid tag")}},
      {"tag_backslash", "A\\1 NOOP\r\n", {err("", "invalid tag")}},
      {"tag_8bit", "A\xc3\xa4 NOOP\r\n", {err("", "invalid tag")}},
      {"tag_nul", "A\0 NOOP\r\n"s, {err("", "invalid tag")}},
      {"tag_tab", "A1\tNOOP\r\n", {err("", "invalid tag")}},
      {"tag_over_limit", n(65) + " NOOP\r\n", {err("", "invalid tag")}},
      {"tag_over_small_limit", "abcdefghi NOOP\r\n", {err("", "invalid tag")}, small_limits()},
      {"name_bracket", "A1 NO]OP\r\n", {err("A1", "invalid command name")}},
      {"name_paren", "A1 NO(OP\r\n", {err("A1", "invalid command name")}},
      {"name_8bit", "A1 \x80\r\n", {err("A1", "invalid command name")}},
      {"name_quoted", "A1 \"NOOP\"\r\n", {err("A1", "invalid command name")}},
      {"name_double_cr", "A1 NOOP\r\r\n", {err("A1", "invalid command name")}},
      {"name_bare_cr", "A1 NO\rOP\r\n", {err("A1", "invalid command name")}},
      {"atom_nul", "A1 LOGIN a\0b c\r\n"s, {err("A1", "syntax error")}},
      {"atom_starts_nul", "A1 LOGIN \0 c\r\n"s, {err("A1", "syntax error")}},
      {"atom_8bit", "A1 LOGIN \xc3\xa4 c\r\n", {err("A1", "syntax error")}},
      {"atom_8bit_inside", "A1 LOGIN a\xff" "b c\r\n", {err("A1", "syntax error")}},
      {"atom_percent", "A1 LOGIN a%b c\r\n", {err("A1", "syntax error")}},
      {"atom_star", "A1 LOGIN * c\r\n", {err("A1", "syntax error")}},
      {"atom_backslash", "A1 LOGIN a\\b c\r\n", {err("A1", "syntax error")}},
      {"atom_ctl", "A1 LOGIN a\x01 b\r\n", {err("A1", "syntax error")}},
      {"atom_del", "A1 LOGIN a\x7f b\r\n", {err("A1", "syntax error")}},
      {"atom_bare_cr", "A1 LOGIN a\rb c\r\n", {err("A1", "syntax error")}},
      {"quoted_nul", "A1 LOGIN \"a\0b\" c\r\n"s, {err("A1", "invalid character in quoted string")}},
      {"quoted_8bit", "A1 LOGIN \"\xc3\xa4\" c\r\n", {err("A1", "invalid character in quoted string")}},
      {"quoted_cr", "A1 LOGIN \"a\rb\" c\r\n", {err("A1", "invalid character in quoted string")}},
      {"quoted_lf_ends_line", "A1 LOGIN \"ab\ncd\" e\r\n",
       {err("A1", "unterminated quoted string", "13"), err("", "invalid tag")}},
      {"quoted_bad_escape", R"(A1 LOGIN "a\nb" c)" "\r\n", {err("A1", "invalid escape in quoted string")}},
      {"quoted_unterminated", "A1 LOGIN \"abc\r\n", {err("A1", "unterminated quoted string")}},
      {"quoted_trailing_backslash", "A1 LOGIN \"abc\\\r\n", {err("A1", "unterminated quoted string")}},
      {"quoted_then_char", "A1 LOGIN \"a\"b\r\n", {err("A1", "syntax error")}},
      {"args_over_limit", "A1 X a b c d\r\n", {err("A1", "too many arguments")}},
      {"args_over_limit_with_list", "A1 X (a) b c d\r\n", {err("A1", "too many arguments")}},
      {"args_over_limit_list", "A1 X a b c (d)\r\n", {err("A1", "too many arguments")}},
      {"list_items_over_limit", "A1 ID (a b c d e)\r\n", {err("A1", "too many list items")}, small_limits()},
      {"list_nested", "A1 ID ((a))\r\n", {err("A1", "lists nested too deeply")}},
      {"list_nested_over_two", "A1 ID (((a)))\r\n", {err("A1", "lists nested too deeply")}, depth_limits(2)},
      {"list_depth_zero", "A1 ID ()\r\n", {err("A1", "lists nested too deeply")}, depth_limits(0)},
      {"list_unterminated", "A1 ID (a\r\n", {err("A1", "unterminated list")}},
      {"list_open_at_end", "A1 ID (\r\n", {err("A1", "syntax error")}},
      {"list_space_before_close", "A1 ID (a )\r\n", {err("A1", "syntax error")}},
      {"list_space_after_open", "A1 ID ( a)\r\n", {err("A1", "syntax error")}},
      {"list_stray_close", "A1 ID a)\r\n", {err("A1", "syntax error")}},
      {"list_double_close", "A1 ID (a))\r\n", {err("A1", "syntax error")}},
      {"list_close_then_atom", "A1 ID (a)b\r\n", {err("A1", "syntax error")}},
      {"list_unterminated_after_literal", "A1 ID ({1+}\r\na\r\n", {err("A1", "unterminated list")}},
  };
}

std::vector<Case> literal_error_cases() {
  return {
      {"literal_empty", "A1 LOGIN {}\r\n", {err("A1", "invalid literal")}},
      {"literal_unclosed", "A1 LOGIN {5\r\n", {err("A1", "invalid literal")}},
      {"literal_not_at_end", "A1 LOGIN {5}x\r\n", {err("A1", "invalid literal")}},
      {"literal_space", "A1 LOGIN {5 }\r\n", {err("A1", "invalid literal")}},
      {"literal_plus_only", "A1 LOGIN {+}\r\n", {err("A1", "invalid literal")}},
      {"literal_double_plus", "A1 LOGIN {5++}\r\n", {err("A1", "invalid literal")}},
      {"literal_negative", "A1 LOGIN {-1}\r\n", {err("A1", "invalid literal")}},
      {"literal_double_brace", "A1 LOGIN {5}}\r\n", {err("A1", "invalid literal")}},
      {"literal_double_cr", "A1 LOGIN {5}\r\r\nA2 NOOP\r\n", {err("A1", "invalid literal", "15"), "A2 NOOP @$"}},
      {"literal_inside_atom", "A1 LOGIN a{5}\r\nA2 NOOP\r\n", {err("A1", "syntax error", "15"), "A2 NOOP @$"}},
      {"literal_as_name_sync", "A1 {4}\r\nA2 NOOP\r\n", {err("A1", "invalid command name", "8"), "A2 NOOP @$"}},
      {"literal_as_name_nonsync", "A1 {4+}\r\nNOOP\r\nA2 NOOP\r\n",
       {err("A1", "invalid command name", "15"), "A2 NOOP @$"}},
      {"literal_as_tag_nonsync", "{5+}\r\nhello\r\nA2 NOOP\r\n", {err("", "invalid tag", "13"), "A2 NOOP @$"}},
      {"literal_then_char", "A1 LOGIN {1+}\r\naX\r\n", {err("A1", "syntax error")}},
      {"literal_then_trailing_space", "A1 LOGIN {1+}\r\na \r\n", {err("A1", "syntax error")}},
      {"literal_sync_then_too_many_args", "A1 LOGIN {1}\r\na b c d\r\n", {"+ @14", err("A1", "too many arguments")}},
      {"bad_line_after_literal_skips_payload", "A1 LOGIN {1+}\r\na \x80 {2+}\r\nbc\r\nA2 NOOP\r\n",
       {err("A1", "syntax error", "29"), "A2 NOOP @$"}},
      {"too_many_args_skips_nonsync_payload", "A1 X a b c {5+}\r\nhello rest\r\nA2 NOOP\r\n",
       {err("A1", "too many arguments", "29"), "A2 NOOP @$"}},
      {"too_many_args_sync_literal_ends_line", "A1 X a b c {5}\r\nA2 NOOP\r\n",
       {err("A1", "too many arguments", "16"), "A2 NOOP @$"}},
      {"literal_huge_sync", "A1 LOGIN {99999999999999999999}\r\nA2 NOOP\r\n",
       {err("A1", "literal too large", "33"), "A2 NOOP @$"}},
      {"literal_huge_nonsync", "A1 LOGIN {99999999999999999999+}\r\nA2 NOOP\r\n",
       {fatal("A1", "literal too large", "34")}},
      {"literal_u32_max", "A1 LOGIN {4294967295}\r\nA2 NOOP\r\n", {err("A1", "literal too large", "23"), "A2 NOOP @$"}},
      {"literal_u32_overflow", "A1 LOGIN {4294967296}\r\nA2 NOOP\r\n",
       {err("A1", "literal too large", "23"), "A2 NOOP @$"}},
      {"literal_sync_over_limit", "A1 LOGIN {65537}\r\nA2 NOOP\r\n", {err("A1", "literal too large", "18"), "A2 NOOP @$"}},
      {"literal_nonsync_over_limit", "A1 LOGIN {4097+}\r\n" + n(4097, 'x') + "\r\n", {fatal("A1", "literal too large", "18")}},
      {"literal_sync_over_small_limit", "A1 X {17}\r\nA2 NOOP\r\n", {err("A1", "literal too large", "11"), "A2 NOOP @$"},
       small_limits()},
      {"literal_nonsync_over_small_limit", "A1 X {9+}\r\n" + n(9, 'x') + "\r\n", {fatal("A1", "literal too large", "11")},
       small_limits()},
      {"sync_literal_may_exceed_nonsync_limit", "A1 X {9}\r\n" + n(9, 'x') + "\r\n",
       {"+ @10", "A1 X l\"" + n(9, 'x') + "\" @$"}, small_limits()},
      {"command_budget_sync_over", "A1 X {38}\r\nA2 NOOP\r\n", {err("A1", "command too long", "11"), "A2 NOOP @$"},
       budget_limits()},
      {"command_budget_nonsync_over_is_skipped", "A1 X {38+}\r\n" + n(38, 'x') + "\r\nA2 NOOP\r\n",
       {err("A1", "command too long", "52"), "A2 NOOP @$"}, budget_limits()},
      {"command_budget_line_after_literal_over", "A1 X {30+}\r\n" + n(30, 'x') + " abcdef\r\nA2 NOOP\r\n",
       {err("A1", "command too long", "51"), "A2 NOOP @$"}, budget_limits()},
  };
}

std::vector<Case> line_limit_cases() {
  return {
      {"line_over_limit", "A1 LOGIN " + n(8182) + "\r\n", {err("A1", "line too long")}},
      {"line_over_limit_bare_lf", "A1 LOGIN " + n(8183) + "\n", {err("A1", "line too long")}},
      {"line_over_limit_resync", "A1 LOGIN " + n(9000) + "\r\nA2 NOOP\r\n",
       {err("A1", "line too long", "9011"), "A2 NOOP @$"}},
      {"line_over_limit_no_tag", n(9000) + "\r\n", {err("", "line too long")}},
      {"line_over_limit_bad_tag", "A+1 " + n(9000) + "\r\n", {err("", "line too long")}},
      {"line_over_small_limit", "A1 X " + n(26) + "\r\n", {err("A1", "line too long")}, small_limits()},
      {"line_at_small_limit", "A1 X " + n(25) + "\r\n", {"A1 X a\"" + n(25) + "\" @$"}, small_limits()},
      {"line_budget_spans_literals_over", "A1 X {3+}\r\nabc " + n(19, 'y') + "\r\n", {err("A1", "line too long")},
       small_limits()},
      {"overlong_line_skips_nonsync_payload", "A1 X " + n(30) + " {3+}\r\nabc\r\nA2 NOOP\r\n",
       {err("A1", "line too long", "47"), "A2 NOOP @$"}, small_limits()},
      {"overlong_line_trailer_straddles_limit", "A1 X " + n(24) + " {3+}\r\nabc\r\nA2 NOOP\r\n",
       {err("A1", "line too long", "41"), "A2 NOOP @$"}, small_limits()},
      {"overlong_line_sync_literal_ends_it", "A1 X " + n(30) + " {3}\r\nA2 NOOP\r\n",
       {err("A1", "line too long", "41"), "A2 NOOP @$"}, small_limits()},
      {"overlong_line_oversized_nonsync", "A1 X " + n(30) + " {9+}\r\n" + n(9, 'x'),
       {fatal("A1", "literal too large", "42")}, small_limits()},
      {"overlong_line_skip_at_cap", "A1 X " + n(91) + "\n", {err("A1", "line too long", "97")}, small_limits()},
      {"overlong_line_skip_over_cap", "A1 X " + n(91) + "\r\n", {fatal("A1", "line too long", "96")}, small_limits()},
      {"overlong_line_never_ends", "A1 X " + n(500), {fatal("A1", "line too long", "96")}, small_limits()},
  };
}

// The store's IMAP server: full client grammar, many arguments, deep SEARCH lists, big APPENDs.
Limits server_limits() {
  Limits l;
  l.server_grammar = true;
  l.max_args = 8;
  l.max_list_depth = 16;
  l.max_literal = 70000;
  l.max_command = 100000;
  return l;
}

// "@<size of prefix>": the offset just past `prefix`.
std::string at(std::string_view prefix) { return std::to_string(prefix.size()); }

std::string nested(size_t depth) { return n(depth, '(') + "a" + n(depth, ')'); }
std::string nested_rendered(size_t depth) { return n(depth, '(') + "a\"a\"" + n(depth, ')'); }

std::vector<Case> server_good_cases() {
  Limits s = server_limits();
  return {
      {"server_seq_all", "A1 UID FETCH 1:* (FLAGS)\r\n", {R"(A1 UID a"FETCH" a"1:*" (a"FLAGS") @$)"}, s},
      {"server_seq_set", "A1 FETCH 2,4:*,* FAST\r\n", {R"(A1 FETCH a"2,4:*,*" a"FAST" @$)"}, s},
      {"server_list_star", "A1 LIST \"\" *\r\n", {R"(A1 LIST q"" a"*" @$)"}, s},
      {"server_list_percent", "A1 LIST \"\" foo/%\r\n", {R"(A1 LIST q"" a"foo/%" @$)"}, s},
      {"server_list_mixed", "A1 LIST ~/ a*b%c]\r\n", {R"(A1 LIST a"~/" a"a*b%c]" @$)"}, s},
      {"server_flags_list", "A1 STORE 1 +FLAGS (\\Seen \\Deleted $Junk)\r\n",
       {R"(A1 STORE a"1" a"+FLAGS" (a"\\Seen" a"\\Deleted" a"$Junk") @$)"}, s},
      {"server_flag_atom", "A1 STORE 1 FLAGS.SILENT \\Seen\r\n", {R"(A1 STORE a"1" a"FLAGS.SILENT" a"\\Seen" @$)"}, s},
      {"server_flag_star", "A1 X \\*\r\n", {R"(A1 X a"\\*" @$)"}, s},
      {"server_flag_nil_is_atom", "A1 X \\NIL NIL\r\n", {R"(A1 X a"\\NIL" n"NIL" @$)"}, s},
      {"server_section_empty", "A1 FETCH 1 BODY[]\r\n", {R"(A1 FETCH a"1" a"BODY[]" @$)"}, s},
      {"server_section_fields", "A1 FETCH 1 BODY.PEEK[HEADER.FIELDS (From \"X-Y\")]<0.100>\r\n",
       {R"(A1 FETCH a"1" a"BODY.PEEK[HEADER.FIELDS (From \"X-Y\")]<0.100>" @$)"}, s},
      {"server_section_in_list", "A1 FETCH 1:3 (UID BODY.PEEK[1.2.MIME]<5.10> BODY[TEXT])\r\n",
       {R"(A1 FETCH a"1:3" (a"UID" a"BODY.PEEK[1.2.MIME]<5.10>" a"BODY[TEXT]") @$)"}, s},
      {"server_section_quoted_specials", "A1 FETCH 1 BODY[HEADER.FIELDS (\"a]\\\"b\" \"(\")]\r\n",
       {R"(A1 FETCH a"1" a"BODY[HEADER.FIELDS (\"a]\\\"b\" \"(\")]" @$)"}, s},
      {"server_section_nested_parens", "A1 FETCH 1 BODY[X ((a) ())]\r\n", {R"(A1 FETCH a"1" a"BODY[X ((a) ())]" @$)"}, s},
      {"server_section_leading", "A1 SELECT [Gmail]/Sent\r\n", {R"(A1 SELECT a"[Gmail]/Sent" @$)"}, s},
      {"server_section_twice", "A1 X a[b c]d[e]f\r\n", {R"(A1 X a"a[b c]d[e]f" @$)"}, s},
      {"server_section_bracket_inside", "A1 X a[[b]\r\n", {R"(A1 X a"a[[b]" @$)"}, s},
      {"server_search_nested", "A1 SEARCH (OR (A B) (C D)) UNSEEN\r\n",
       {R"(A1 SEARCH (a"OR" (a"A" a"B") (a"C" a"D")) a"UNSEEN" @$)"}, s},
      {"server_list_depth_at_limit", "A1 SEARCH " + nested(16) + "\r\n", {"A1 SEARCH " + nested_rendered(16) + " @$"}, s},
      {"server_append_sync", "A1 APPEND INBOX (\\Seen) {5}\r\nhello\r\n",
       {"+ @" + at("A1 APPEND INBOX (\\Seen) {5}\r\n"), R"(A1 APPEND a"INBOX" (a"\\Seen") l"hello" @$)"}, s},
      {"server_append_nonsync", "A1 APPEND INBOX {5+}\r\nhello\r\n", {R"(A1 APPEND a"INBOX" l"hello" @$)"}, s},
      {"server_append_big", "A1 APPEND INBOX {70000}\r\n" + n(70000, 'm') + "\r\n",
       {"+ @" + at("A1 APPEND INBOX {70000}\r\n"), "A1 APPEND a\"INBOX\" l\"" + n(70000, 'm') + "\" @$"}, s},
      {"server_literal_in_list", "A1 SEARCH (SUBJECT {3+}\r\nabc) ALL\r\n", {R"(A1 SEARCH (a"SUBJECT" l"abc") a"ALL" @$)"}, s},
  };
}

std::vector<Case> server_error_cases() {
  Limits s = server_limits();
  return {
      {"server_off_section_splits", "A1 FETCH 1 BODY[HEADER.FIELDS (From)]\r\n", {err("A1", "syntax error")}},
      {"server_off_star", "A1 FETCH 1:* FAST\r\n", {err("A1", "syntax error")}},
      {"server_backslash_alone", "A1 STORE 1 FLAGS \\ x\r\n", {err("A1", "syntax error")}, s},
      {"server_backslash_at_end", "A1 STORE 1 FLAGS \\\r\n", {err("A1", "syntax error")}, s},
      {"server_double_backslash", "A1 STORE 1 FLAGS \\\\Seen\r\n", {err("A1", "syntax error")}, s},
      {"server_backslash_inside", "A1 STORE 1 FLAGS a\\b\r\n", {err("A1", "syntax error")}, s},
      {"server_backslash_paren", "A1 STORE 1 FLAGS (\\(a))\r\n", {err("A1", "syntax error")}, s},
      {"server_section_unterminated", "A1 FETCH 1 BODY[HEADER\r\nA2 NOOP\r\n",
       {err("A1", "unterminated section", at("A1 FETCH 1 BODY[HEADER\r\n")), "A2 NOOP @$"}, s},
      {"server_section_unterminated_at_end", "A1 FETCH 1 BODY[\r\n", {err("A1", "unterminated section")}, s},
      {"server_section_literal_inside", "A1 FETCH 1 BODY[HEADER.FIELDS ({3+}\r\nabc)]\r\nA2 NOOP\r\n",
       {err("A1", "syntax error", at("A1 FETCH 1 BODY[HEADER.FIELDS ({3+}\r\nabc)]\r\n")), "A2 NOOP @$"}, s},
      {"server_section_sync_literal_inside", "A1 FETCH 1 BODY[HEADER.FIELDS ({3}\r\nA2 NOOP\r\n",
       {err("A1", "syntax error", at("A1 FETCH 1 BODY[HEADER.FIELDS ({3}\r\n")), "A2 NOOP @$"}, s},
      {"server_section_8bit", "A1 FETCH 1 BODY[\xc3\xa4]\r\n", {err("A1", "syntax error")}, s},
      {"server_section_ctl", "A1 FETCH 1 BODY[a\tb]\r\n", {err("A1", "syntax error")}, s},
      {"server_section_backslash", "A1 FETCH 1 BODY[a\\b]\r\n", {err("A1", "syntax error")}, s},
      {"server_section_bad_escape", "A1 FETCH 1 BODY[(\"a\\nb\")]\r\n", {err("A1", "invalid escape in quoted string")}, s},
      {"server_section_bad_quoted_char", "A1 FETCH 1 BODY[(\"a\x80\")]\r\n",
       {err("A1", "invalid character in quoted string")}, s},
      {"server_section_unterminated_quote", "A1 FETCH 1 BODY[(\"a)]\r\n", {err("A1", "unterminated quoted string")}, s},
      {"server_section_then_quote", "A1 FETCH 1 BODY[]\"x\"\r\n", {err("A1", "syntax error")}, s},
      {"server_section_then_paren", "A1 FETCH 1 BODY[](x)\r\n", {err("A1", "syntax error")}, s},
      {"server_list_too_deep", "A1 SEARCH " + nested(17) + "\r\n", {err("A1", "lists nested too deeply")}, s},
      {"server_args_over_limit", "A1 X a b c d e f g h i\r\n", {err("A1", "too many arguments")}, s},
      {"server_literal_over_limit", "A1 APPEND INBOX {70001}\r\nA2 NOOP\r\n",
       {err("A1", "literal too large", at("A1 APPEND INBOX {70001}\r\n")), "A2 NOOP @$"}, s},
      {"server_tag_star_still_bad", "* NOOP\r\n", {err("", "invalid tag")}, s},
      {"server_name_star_bad", "A1 FE*TCH\r\n", {err("A1", "invalid command name")}, s},
  };
}

std::vector<Case> all_cases() {
  std::vector<Case> all;
  for (auto* part : {good_cases, syntax_error_cases, literal_error_cases, line_limit_cases, server_good_cases,
                     server_error_cases}) {
    for (Case& c : part()) all.push_back(std::move(c));
  }
  return all;
}

class ImapParserTable : public testing::TestWithParam<Case> {};

TEST_P(ImapParserTable, OnePiece) {
  const Case& c = GetParam();
  EXPECT_EQ(run(c.limits, c.input, {}), expected_events(c));
}

TEST_P(ImapParserTable, ByteByByte) {
  const Case& c = GetParam();
  EXPECT_EQ(run(c.limits, c.input, every_byte(c.input.size())), expected_events(c));
}

TEST_P(ImapParserTable, EveryTwoPieceSplit) {
  const Case& c = GetParam();
  std::vector<std::string> expected = expected_events(c);
  for (size_t cut : two_piece_positions(c.input.size())) {
    ASSERT_EQ(run(c.limits, c.input, {cut}), expected) << "split at " << cut;
  }
}

TEST_P(ImapParserTable, RandomSplits) {
  const Case& c = GetParam();
  std::vector<std::string> expected = expected_events(c);
  for (unsigned seed = 1; seed <= 8; ++seed) {
    std::vector<size_t> cuts = random_cuts(c.input.size(), seed);
    ASSERT_EQ(run(c.limits, c.input, cuts), expected) << "seed " << seed;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, ImapParserTable, testing::ValuesIn(all_cases()),
                         [](const testing::TestParamInfo<Case>& info) { return info.param.name; });

// --- The continuation protocol and the parser's life cycle --------------------------------------

TEST(ImapParserTest, SyncLiteralStopsAtContinuation) {
  CommandParser parser;
  std::string input = "A1 LOGIN {5}\r\nalice secret\r\n";
  size_t consumed = 0;
  ASSERT_EQ(parser.feed(input, consumed), Status::kNeedContinuation);
  EXPECT_EQ(consumed, 14u);  // the payload is left alone until the caller has sent "+"
  ASSERT_EQ(parser.feed(std::string_view(input).substr(14), consumed), Status::kCommand);
  EXPECT_EQ(consumed, input.size() - 14);
  Command command = parser.take_command();
  EXPECT_EQ(command.tag, "A1");
  EXPECT_EQ(command.name, "LOGIN");
  ASSERT_EQ(command.args.size(), 2u);
  EXPECT_EQ(command.args[0].kind, ArgKind::kLiteral);
  EXPECT_EQ(command.args[0].text, "alice");
  EXPECT_EQ(command.args[1].kind, ArgKind::kAtom);
  EXPECT_EQ(command.args[1].text, "secret");
  EXPECT_TRUE(command.args[0].items.empty());
}

TEST(ImapParserTest, ContinuationOnlyOnceTheLfArrives) {
  CommandParser parser;
  size_t consumed = 0;
  EXPECT_EQ(parser.feed("A1 LOGIN {5}\r", consumed), Status::kNeedMore);
  EXPECT_EQ(consumed, 13u);
  EXPECT_EQ(parser.feed("\nalice", consumed), Status::kNeedContinuation);
  EXPECT_EQ(consumed, 1u);
}

TEST(ImapParserTest, ContinuationForEachSyncLiteral) {
  CommandParser parser;
  std::string_view input = "A1 LOGIN {5}\r\nalice {6}\r\nsecret\r\n";
  size_t consumed = 0;
  ASSERT_EQ(parser.feed(input, consumed), Status::kNeedContinuation);
  EXPECT_EQ(consumed, 14u);
  input.remove_prefix(consumed);
  ASSERT_EQ(parser.feed(input, consumed), Status::kNeedContinuation);
  EXPECT_EQ(consumed, 11u);  // "alice {6}\r\n"
  input.remove_prefix(consumed);
  ASSERT_EQ(parser.feed(input, consumed), Status::kCommand);
  EXPECT_EQ(consumed, input.size());
  EXPECT_EQ(render(parser.take_command()), R"(A1 LOGIN l"alice" l"secret")");
}

TEST(ImapParserTest, NonSyncLiteralNeverAsksForContinuation) {
  CommandParser parser;
  std::string_view input = "A1 LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n";
  for (size_t i = 0; i < input.size(); ++i) {
    size_t consumed = 0;
    Status status = parser.feed(input.substr(i, 1), consumed);
    EXPECT_EQ(consumed, 1u);
    EXPECT_EQ(status, i + 1 == input.size() ? Status::kCommand : Status::kNeedMore) << "at " << i;
  }
  EXPECT_EQ(render(parser.take_command()), R"(A1 LOGIN l"alice" l"secret")");
}

TEST(ImapParserTest, OversizedSyncLiteralGetsNoContinuation) {
  CommandParser parser;
  size_t consumed = 0;
  ASSERT_EQ(parser.feed("A1 LOGIN {65537}\r\n", consumed), Status::kError);
  EXPECT_EQ(consumed, 18u);
  EXPECT_FALSE(parser.error().fatal);
  EXPECT_EQ(parser.error().tag, "A1");
  EXPECT_EQ(parser.error().message, "literal too large");
  ASSERT_EQ(parser.feed("A2 NOOP\r\n", consumed), Status::kCommand);
  EXPECT_EQ(render(parser.take_command()), "A2 NOOP");
}

TEST(ImapParserTest, OversizedNonSyncLiteralIsFatalUntilReset) {
  CommandParser parser;
  size_t consumed = 0;
  ASSERT_EQ(parser.feed("A1 LOGIN {4097+}\r\nxxxx", consumed), Status::kError);
  EXPECT_EQ(consumed, 18u);
  EXPECT_TRUE(parser.error().fatal);
  EXPECT_EQ(parser.error().tag, "A1");
  EXPECT_EQ(parser.feed("xxxx", consumed), Status::kError);
  EXPECT_EQ(consumed, 0u);
  EXPECT_TRUE(parser.error().fatal);
  parser.reset();
  EXPECT_FALSE(parser.error().fatal);
  ASSERT_EQ(parser.feed("A2 NOOP\r\n", consumed), Status::kCommand);
  EXPECT_EQ(render(parser.take_command()), "A2 NOOP");
}

TEST(ImapParserTest, CommandLeavesFollowingBytes) {
  CommandParser parser;
  size_t consumed = 0;
  ASSERT_EQ(parser.feed("A1 NOOP\r\nA2 NOOP\r\n", consumed), Status::kCommand);
  EXPECT_EQ(consumed, 9u);
}

TEST(ImapParserTest, EmptyFeedNeedsMore) {
  CommandParser parser;
  size_t consumed = 7;
  EXPECT_EQ(parser.feed("", consumed), Status::kNeedMore);
  EXPECT_EQ(consumed, 0u);
}

TEST(ImapParserTest, UntakenCommandIsReplacedByTheNext) {
  CommandParser parser;
  size_t consumed = 0;
  ASSERT_EQ(parser.feed("A1 NOOP\r\n", consumed), Status::kCommand);
  ASSERT_EQ(parser.feed("A2 CAPABILITY\r\n", consumed), Status::kCommand);
  EXPECT_EQ(render(parser.take_command()), "A2 CAPABILITY");
  EXPECT_EQ(render(parser.take_command()), " ");  // taken: nothing left
}

TEST(ImapParserTest, TakeCommandMidCommandLeavesItAlone) {
  CommandParser parser;
  size_t consumed = 0;
  ASSERT_EQ(parser.feed("A1 ID (a {5+}\r\nal", consumed), Status::kNeedMore);
  EXPECT_EQ(render(parser.take_command()), " ");
  ASSERT_EQ(parser.feed("ice)\r\n", consumed), Status::kCommand);
  EXPECT_EQ(render(parser.take_command()), R"(A1 ID (a"a" l"alice"))");
}

TEST(ImapParserTest, ResetDropsPartialCommand) {
  CommandParser parser;
  size_t consumed = 0;
  ASSERT_EQ(parser.feed("A1 LOGIN {5+}\r\nal", consumed), Status::kNeedMore);
  parser.reset();
  ASSERT_EQ(parser.feed("A2 NOOP\r\n", consumed), Status::kCommand);
  EXPECT_EQ(render(parser.take_command()), "A2 NOOP");
}

TEST(ImapParserTest, SetLimitsAfterAuthentication) {
  CommandParser parser(small_limits());
  std::string line = "A1 X " + n(40) + "\r\n";
  size_t consumed = 0;
  ASSERT_EQ(parser.feed(line, consumed), Status::kError);
  EXPECT_EQ(parser.error().message, "line too long");
  parser.set_limits(Limits{});
  ASSERT_EQ(parser.feed(line, consumed), Status::kCommand);
  EXPECT_EQ(consumed, line.size());
  EXPECT_EQ(parser.take_command().args.at(0).text, n(40));
}

TEST(ImapParserTest, ErrorsNeverEchoInput) {
  const std::set<std::string> known = {
      "empty command line", "invalid tag", "missing command name", "invalid command name", "syntax error",
      "invalid character in quoted string", "invalid escape in quoted string", "unterminated quoted string",
      "invalid literal", "literal too large", "too many arguments", "too many list items",
      "lists nested too deeply", "unterminated list", "line too long", "command too long",
      "unterminated section"};
  for (const Case& c : all_cases()) {
    CommandParser parser(c.limits);
    std::string_view input = c.input;
    for (size_t guard = 0; !input.empty() && guard < 100; ++guard) {
      size_t consumed = 0;
      Status status = parser.feed(input, consumed);
      input.remove_prefix(consumed);
      if (status != Status::kError) continue;
      EXPECT_EQ(known.count(parser.error().message), 1u) << c.name << ": " << parser.error().message;
      if (parser.error().fatal) break;
    }
  }
  CommandParser parser;
  size_t consumed = 0;
  ASSERT_EQ(parser.feed("EV*IL NOOP\r\n", consumed), Status::kError);
  EXPECT_EQ(parser.error().tag, "");
  ASSERT_EQ(parser.feed("A1 EV]IL\r\n", consumed), Status::kError);
  EXPECT_EQ(parser.error().message.find("EV"), std::string::npos);
}

std::string list_of(size_t count) {
  std::string out = "A1 ID (";
  for (size_t i = 0; i < count; ++i) out += i ? " \"v\"" : "\"v\"";
  return out + ")\r\n";
}

TEST(ImapParserTest, DefaultListItemLimit) {
  std::string expected = "A1 ID (";
  for (size_t i = 0; i < 64; ++i) expected += i ? " q\"v\"" : "q\"v\"";
  expected += ") @" + std::to_string(list_of(64).size());
  EXPECT_EQ(run(Limits{}, list_of(64), {}), std::vector<std::string>{expected});
  EXPECT_EQ(run(Limits{}, list_of(64), every_byte(list_of(64).size())), std::vector<std::string>{expected});
  std::string over = list_of(65);
  std::vector<std::string> error = {err("A1", "too many list items", std::to_string(over.size()))};
  EXPECT_EQ(run(Limits{}, over, {}), error);
  EXPECT_EQ(run(Limits{}, over, every_byte(over.size())), error);
}

// Random token soup: whatever the input, every way of splitting it must give the same events.
void check_split_invariance(const Limits& limits, const std::vector<std::string>& tokens) {
  std::mt19937 rng(20240601);
  for (int iteration = 0; iteration < 1500; ++iteration) {
    std::string input;
    size_t count = std::uniform_int_distribution<size_t>(1, 40)(rng);
    for (size_t i = 0; i < count; ++i) input += tokens[std::uniform_int_distribution<size_t>(0, tokens.size() - 1)(rng)];
    std::vector<std::string> whole = run(limits, input, {});
    ASSERT_EQ(run(limits, input, every_byte(input.size())), whole) << escape(input);
    ASSERT_EQ(run(limits, input, random_cuts(input.size(), iteration)), whole) << escape(input);
  }
}

TEST(ImapParserTest, RandomInputsAreSplitInvariant) {
  const std::vector<std::string> tokens = {
      "A1", " ", "LOGIN", "ID", "\r\n", "\n", "\r", "{3}\r\n", "{2+}\r\n", "{0}\r\n", "{9+}\r\n", "{17}\r\n",
      "(", ")", "\"", "\\", "NIL", "x", "]", "+", "*", std::string(1, '\0'), "\x80", "{", "}", "abcdefghijkl"};
  check_split_invariance(small_limits(), tokens);
}

TEST(ImapParserTest, RandomServerInputsAreSplitInvariant) {
  const std::vector<std::string> tokens = {
      "A1", " ", "FETCH", "BODY[", "]", "[", "<0.5>", "\r\n", "\n", "{3}\r\n", "{2+}\r\n", "(", ")", "\"",
      "\\", "\\Seen", "1:*", "%", "*", "NIL", "x", std::string(1, '\0'), "\x80", "{", "HEADER.FIELDS (A \"b\")"};
  Limits limits = small_limits();
  limits.server_grammar = true;
  limits.max_list_depth = 3;
  check_split_invariance(limits, tokens);
}

// --- LineReader ----------------------------------------------------------------------------------

struct LineCase {
  std::string name;
  std::string input;
  std::vector<std::string> expected;
  size_t max_line = 8;
  size_t max_overlong = SIZE_MAX;
};

void PrintTo(const LineCase& c, std::ostream* os) { *os << c.name; }

std::vector<std::string> run_lines(const LineCase& c, const std::vector<size_t>& cuts) {
  LineReader reader(c.max_line, c.max_overlong);
  return drive(reader, c.input, cuts, [](LineReader& r) {
    std::string view(r.line());
    std::string line = r.take_line();
    EXPECT_EQ(view, line);
    return "line \"" + escape(line) + "\"";
  });
}

class LineReaderTable : public testing::TestWithParam<LineCase> {};

TEST_P(LineReaderTable, AllSplits) {
  const LineCase& c = GetParam();
  Case as_case{c.name, c.input, c.expected, {}};
  std::vector<std::string> expected = expected_events(as_case);
  EXPECT_EQ(run_lines(c, {}), expected);
  EXPECT_EQ(run_lines(c, every_byte(c.input.size())), expected);
  for (size_t cut = 0; cut <= c.input.size(); ++cut) EXPECT_EQ(run_lines(c, {cut}), expected) << "split at " << cut;
  for (unsigned seed = 1; seed <= 8; ++seed) {
    EXPECT_EQ(run_lines(c, random_cuts(c.input.size(), seed)), expected) << "seed " << seed;
  }
}

std::vector<LineCase> line_cases() {
  return {
      {"crlf", "abc\r\n", {"line \"abc\" @$"}},
      {"bare_lf", "abc\n", {"line \"abc\" @$"}},
      {"empty_crlf", "\r\n", {"line \"\" @$"}},
      {"empty_lf", "\n", {"line \"\" @$"}},
      {"nul_kept", "a\0b\r\n"s, {R"(line "a\x00b" @$)"}},
      {"eight_bit_kept", "\xc3\xa4\r\n", {R"(line "\xc3\xa4" @$)"}},
      {"only_last_cr_stripped", "abc\r\r\n", {R"(line "abc\x0d" @$)"}},
      {"inner_cr_kept", "a\rb\n", {R"(line "a\x0db" @$)"}},
      {"at_limit_crlf", "123456\r\n", {"line \"123456\" @$"}},
      {"at_limit_lf", "1234567\n", {"line \"1234567\" @$"}},
      {"over_limit_crlf", "1234567\r\n", {"error tag=\"\" \"line too long\" @$"}},
      {"over_limit_lf", "12345678\n", {"error tag=\"\" \"line too long\" @$"}},
      {"over_limit_resync", "123456789012\r\nabc\r\n", {"error tag=\"\" \"line too long\" @14", "line \"abc\" @$"}},
      {"pipelined", "a\r\nb\nc", {"line \"a\" @3", "line \"b\" @5"}},
      {"incomplete", "abc", {}},
      {"overlong_at_cap", "1234567890123456\n", {"error tag=\"\" \"line too long\" @$"}, 8, 16},
      {"overlong_over_cap", "12345678901234567\n", {"FATAL tag=\"\" \"line too long\" @16"}, 8, 16},
  };
}

INSTANTIATE_TEST_SUITE_P(Cases, LineReaderTable, testing::ValuesIn(line_cases()),
                         [](const testing::TestParamInfo<LineCase>& info) { return info.param.name; });

TEST(LineReaderTest, UntakenLineIsDropped) {
  LineReader reader(16);
  size_t consumed = 0;
  ASSERT_EQ(reader.feed("one\r\ntwo\r\n", consumed), Status::kCommand);
  EXPECT_EQ(reader.line(), "one");
  ASSERT_EQ(reader.feed("two\r\n", consumed), Status::kCommand);
  EXPECT_EQ(reader.take_line(), "two");
  EXPECT_EQ(reader.line(), "");
}

TEST(LineReaderTest, ResetClearsFatal) {
  LineReader reader(4, 8);
  size_t consumed = 0;
  ASSERT_EQ(reader.feed("123456789", consumed), Status::kError);
  EXPECT_TRUE(reader.error().fatal);
  EXPECT_EQ(consumed, 8u);
  reader.reset();
  ASSERT_EQ(reader.feed("ab\n", consumed), Status::kCommand);
  EXPECT_EQ(reader.take_line(), "ab");
}

}  // namespace
}  // namespace basalt::imap
