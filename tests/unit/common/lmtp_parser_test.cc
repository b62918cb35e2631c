#include "common/lmtp_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace basalt::lmtp {
namespace {

struct DataResult {
  bool done = false;
  bool too_big = false;
  std::string message;
  size_t consumed = 0;  // total bytes consumed
};

// Feeds `chunks` in order, stopping at the final dot.
DataResult run_data(const std::vector<std::string>& chunks, size_t max = 1 << 20) {
  DataReader r(max);
  DataResult out;
  for (const auto& chunk : chunks) {
    size_t used = 0;
    bool done = r.feed(chunk, used);
    out.consumed += used;
    if (done) break;
  }
  out.done = r.done();
  out.too_big = r.too_big();
  out.message = r.message();
  return out;
}

struct DataCase {
  std::string wire;
  std::string message;
};

const std::vector<DataCase> kDataCases = {
    {".\r\n", ""},
    {"a\r\n.\r\n", "a\r\n"},
    {"Subject: x\r\n\r\nbody\r\n.\r\n", "Subject: x\r\n\r\nbody\r\n"},
    {"..leading dot\r\n.\r\n", ".leading dot\r\n"},
    {"...\r\n.\r\n", "..\r\n"},
    {"a\r\n..\r\nb\r\n.\r\n", "a\r\n.\r\nb\r\n"},
    {"mid.dot .\r\n.\r\n", "mid.dot .\r\n"},
    {".x\r\n.\r\n", "x\r\n"},
    {"a\n.\n", "a\n"},                 // bare LF: lenient
    {".\rX\r\n.\r\n", "\rX\r\n"},      // stuffed dot before a bare CR
    {"a\r\n.\r\nTRAILING", "a\r\n"},  // bytes after the dot are not consumed
};

TEST(LmtpDataReader, Cases) {
  for (const auto& c : kDataCases) {
    DataResult r = run_data({c.wire});
    EXPECT_TRUE(r.done) << c.wire;
    EXPECT_EQ(r.message, c.message) << c.wire;
    size_t end = c.wire.find("TRAILING");
    EXPECT_EQ(r.consumed, end == std::string::npos ? c.wire.size() : end) << c.wire;
  }
}

TEST(LmtpDataReader, EverySplitPoint) {
  for (const auto& c : kDataCases) {
    for (size_t split = 0; split <= c.wire.size(); ++split) {
      DataResult r = run_data({c.wire.substr(0, split), c.wire.substr(split)});
      EXPECT_TRUE(r.done) << c.wire << " split " << split;
      EXPECT_EQ(r.message, c.message) << c.wire << " split " << split;
    }
  }
}

TEST(LmtpDataReader, ByteByByte) {
  for (const auto& c : kDataCases) {
    std::vector<std::string> bytes;
    for (char ch : c.wire) bytes.emplace_back(1, ch);
    DataResult r = run_data(bytes);
    EXPECT_TRUE(r.done) << c.wire;
    EXPECT_EQ(r.message, c.message) << c.wire;
  }
}

TEST(LmtpDataReader, MissingFinalDotIsNeverDone) {
  for (std::string wire : {"", "a\r\n", "a\r\n.", "a\r\n.\r", "a\r\n..\r\n", "a\r\n.x\r\n", "a.\r\n"}) {
    DataReader r(1 << 20);
    size_t used = 0;
    EXPECT_FALSE(r.feed(wire, used)) << wire;
    EXPECT_EQ(used, wire.size());
    EXPECT_FALSE(r.done());
  }
}

TEST(LmtpDataReader, SizeLimitAndLimitPlusOne) {
  DataResult at = run_data({"abc\r\n.\r\n"}, 5);
  EXPECT_TRUE(at.done);
  EXPECT_FALSE(at.too_big);
  EXPECT_EQ(at.message, "abc\r\n");
  DataResult over = run_data({"abcd\r\n.\r\n"}, 5);
  EXPECT_TRUE(over.done);  // read to the end anyway
  EXPECT_TRUE(over.too_big);
  EXPECT_EQ(over.message, "");
  // Split everywhere: the too-big state survives and the dot is still found.
  std::string wire = std::string(100, 'x') + "\r\n..y\r\n.\r\nNOOP\r\n";
  for (size_t split = 0; split <= wire.size(); ++split) {
    DataResult r = run_data({wire.substr(0, split), wire.substr(split)}, 10);
    EXPECT_TRUE(r.done && r.too_big) << split;
    EXPECT_EQ(r.consumed, wire.size() - 6) << split;
  }
}

std::vector<Command> run_commands(const std::vector<std::string>& chunks, int* errors) {
  CommandReader r;
  std::vector<Command> out;
  for (const auto& chunk : chunks) {
    std::string_view rest = chunk;
    while (!rest.empty()) {
      size_t used = 0;
      Status s = r.feed(rest, used);
      rest.remove_prefix(used);
      if (s == Status::kCommand) out.push_back(r.take_command());
      if (s == Status::kError) ++*errors;
      if (s == Status::kNeedMore) break;
    }
  }
  return out;
}

TEST(LmtpCommandReader, PipelinedEverySplit) {
  std::string wire = "LHLO mx\r\nmail FROM:<a@b> SIZE=10\r\nRCPT TO:<c@d>\r\nDATA\r\n";
  for (size_t split = 0; split <= wire.size(); ++split) {
    int errors = 0;
    auto cmds = run_commands({wire.substr(0, split), wire.substr(split)}, &errors);
    ASSERT_EQ(cmds.size(), 4u) << split;
    EXPECT_EQ(errors, 0);
    EXPECT_EQ(cmds[0].verb, "LHLO");
    EXPECT_EQ(cmds[0].args, "mx");
    EXPECT_EQ(cmds[1].verb, "MAIL");
    EXPECT_EQ(cmds[1].args, "FROM:<a@b> SIZE=10");
    EXPECT_EQ(cmds[3].verb, "DATA");
    EXPECT_EQ(cmds[3].args, "");
  }
  std::vector<std::string> bytes;
  for (char c : wire) bytes.emplace_back(1, c);
  int errors = 0;
  EXPECT_EQ(run_commands(bytes, &errors).size(), 4u);
}

TEST(LmtpCommandReader, LineLimitAndLimitPlusOne) {
  std::string ok = "NOOP " + std::string(1000 - 7, 'x') + "\r\n";  // exactly 1000 bytes
  std::string bad = "NOOP " + std::string(1000 - 6, 'x') + "\r\n";  // 1001
  ASSERT_EQ(ok.size(), 1000u);
  int errors = 0;
  auto cmds = run_commands({ok + bad + "QUIT\r\n"}, &errors);
  EXPECT_EQ(errors, 1);
  ASSERT_EQ(cmds.size(), 2u);
  EXPECT_EQ(cmds[0].verb, "NOOP");
  EXPECT_EQ(cmds[1].verb, "QUIT");  // resynchronised after the skipped line
}

TEST(LmtpPathArgument, Parses) {
  auto p = parse_path_argument("FROM:<a@b.c> SIZE=123 body=8BITMIME", "FROM:");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->address, "a@b.c");
  ASSERT_EQ(p->params.size(), 2u);
  EXPECT_EQ(p->params[0].first, "SIZE");
  EXPECT_EQ(p->params[0].second, "123");
  EXPECT_EQ(p->params[1].first, "BODY");
  auto null_path = parse_path_argument("from: <>", "FROM:");
  ASSERT_TRUE(null_path);
  EXPECT_EQ(null_path->address, "");
  EXPECT_TRUE(parse_path_argument("to:<x@y>", "TO:"));
  EXPECT_FALSE(parse_path_argument("TO:x@y", "TO:"));
  EXPECT_FALSE(parse_path_argument("TO:<x@y", "TO:"));
  EXPECT_FALSE(parse_path_argument("FROM:<x@y>", "TO:"));
  EXPECT_FALSE(parse_path_argument("TO:<x@y>junk", "TO:"));
  EXPECT_FALSE(parse_path_argument("TO:<x y>", "TO:"));
}

}  // namespace
}  // namespace basalt::lmtp
