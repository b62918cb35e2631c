#include "common/pop3_writer.h"

#include <gtest/gtest.h>

namespace basalt::pop3 {
namespace {

std::string stuff(std::string_view in) {
  DotStuffer s;
  std::string out;
  s.feed(in, out);
  s.finish(out);
  return out;
}

struct Case {
  const char* in;
  const char* out;
};

const Case kCases[] = {
    {"", ".\r\n"},
    {"a\r\n", "a\r\n.\r\n"},
    {"a", "a\r\n.\r\n"},
    {"a\r", "a\r\n.\r\n"},
    {"a\nb\n", "a\r\nb\r\n.\r\n"},
    {".\r\n", "..\r\n.\r\n"},
    {".a\r\n..b\r\nc.\r\n", "..a\r\n...b\r\nc.\r\n.\r\n"},
    {"x\r\n.\r\n.\r\n", "x\r\n..\r\n..\r\n.\r\n"},
    {"\r\n\r\n.", "\r\n\r\n..\r\n.\r\n"},
    {"a\rb\n", "a\rb\r\n.\r\n"},  // a lone CR stays; the bare LF becomes CRLF
    {"\n.\n", "\r\n..\r\n.\r\n"},
};

TEST(DotStuffer, Table) {
  for (const Case& c : kCases) EXPECT_EQ(stuff(c.in), c.out) << c.in;
}

TEST(DotStuffer, SameOutputWhenSplitAtEveryByte) {
  for (const Case& c : kCases) {
    std::string_view in(c.in);
    for (size_t cut = 0; cut <= in.size(); ++cut) {
      DotStuffer s;
      std::string out;
      s.feed(in.substr(0, cut), out);
      s.feed(in.substr(cut), out);
      s.finish(out);
      EXPECT_EQ(out, c.out) << c.in << " cut at " << cut;
    }
    DotStuffer s;
    std::string out;
    for (char ch : in) s.feed(std::string_view(&ch, 1), out);
    s.finish(out);
    EXPECT_EQ(out, c.out) << c.in << " byte by byte";
  }
}

TEST(DotStuffer, FinishResetsForTheNextMessage) {
  DotStuffer s;
  std::string out;
  s.feed("a", out);
  s.finish(out);
  s.feed(".b\r\n", out);
  s.finish(out);
  EXPECT_EQ(out, "a\r\n.\r\n..b\r\n.\r\n");
}

TEST(MessageTop, HeaderAndLines) {
  std::string_view m = "A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n";
  EXPECT_EQ(message_top(m, 0), "A: 1\r\nB: 2\r\n\r\n");
  EXPECT_EQ(message_top(m, 1), "A: 1\r\nB: 2\r\n\r\nl1\r\n");
  EXPECT_EQ(message_top(m, 2), "A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n");
  EXPECT_EQ(message_top(m, 3), m);
  EXPECT_EQ(message_top(m, 100), m);
}

TEST(MessageTop, BareLfAndOddShapes) {
  EXPECT_EQ(message_top("A: 1\n\nx\ny\n", 1), "A: 1\n\nx\n");
  EXPECT_EQ(message_top("A: 1\r\nno blank line", 0), "A: 1\r\nno blank line");
  EXPECT_EQ(message_top("A: 1\r\n", 0), "A: 1\r\n");
  EXPECT_EQ(message_top("\r\nbody\r\n", 0), "\r\n");
  EXPECT_EQ(message_top("A: 1\r\n\r\nunterminated", 0), "A: 1\r\n\r\n");
  EXPECT_EQ(message_top("A: 1\r\n\r\nunterminated", 5), "A: 1\r\n\r\nunterminated");
  EXPECT_EQ(message_top("", 3), "");
}

}  // namespace
}  // namespace basalt::pop3
