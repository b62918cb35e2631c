#include "proxy/reply_reader.h"

#include <event2/buffer.h>
#include <gtest/gtest.h>

#include <memory>

namespace basalt::proxy {
namespace {

struct Buffer {
  std::unique_ptr<evbuffer, decltype(&evbuffer_free)> b{evbuffer_new(), evbuffer_free};
  void add(std::string_view s) { evbuffer_add(b.get(), s.data(), s.size()); }
  size_t size() const { return evbuffer_get_length(b.get()); }
};

TEST(ReadLine, SplitsCrlfAndLfLines) {
  Buffer buf;
  buf.add("+OK ready\r\nline two\npartial");
  std::string line;
  ASSERT_EQ(read_line(buf.b.get(), 100, line), ReadStatus::kLine);
  EXPECT_EQ(line, "+OK ready");
  ASSERT_EQ(read_line(buf.b.get(), 100, line), ReadStatus::kLine);
  EXPECT_EQ(line, "line two");
  EXPECT_EQ(read_line(buf.b.get(), 100, line), ReadStatus::kNeedMore);
  EXPECT_EQ(read_line(buf.b.get(), 5, line), ReadStatus::kTooLong);
}

TEST(ReadImapResponse, KeepsLiteralsInsideOneResponse) {
  Buffer buf;
  buf.add("* ID (\"name\" {7}\r\nDovecot)\r\nL OK done\r\n");
  std::string r;
  ASSERT_EQ(read_imap_response(buf.b.get(), 1000, r), ReadStatus::kLine);
  EXPECT_EQ(r, "* ID (\"name\" {7}\r\nDovecot)");
  ASSERT_EQ(read_imap_response(buf.b.get(), 1000, r), ReadStatus::kLine);
  EXPECT_EQ(r, "L OK done");
  EXPECT_EQ(buf.size(), 0u);
}

TEST(ReadImapResponse, WaitsForTheWholeLiteralAndItsLine) {
  Buffer buf;
  std::string r;
  buf.add("* X {10}\r\n01234");
  EXPECT_EQ(read_imap_response(buf.b.get(), 1000, r), ReadStatus::kNeedMore);
  buf.add("56789 tail");
  EXPECT_EQ(read_imap_response(buf.b.get(), 1000, r), ReadStatus::kNeedMore);
  buf.add("\r\n");
  ASSERT_EQ(read_imap_response(buf.b.get(), 1000, r), ReadStatus::kLine);
  EXPECT_EQ(r, "* X {10}\r\n0123456789 tail");
}

TEST(ReadImapResponse, RefusesOversizedResponses) {
  Buffer buf;
  std::string r;
  buf.add("* X {999999}\r\n");
  EXPECT_EQ(read_imap_response(buf.b.get(), 1000, r), ReadStatus::kTooLong);
  Buffer endless;
  endless.add(std::string(2000, 'a'));
  EXPECT_EQ(read_imap_response(endless.b.get(), 1000, r), ReadStatus::kTooLong);
}

TEST(Capabilities, FindsNamesIgnoringCase) {
  std::string caps = "IMAP4rev1 SASL-IR ID AUTH=PLAIN";
  EXPECT_TRUE(has_capability(caps, "sasl-ir"));
  EXPECT_TRUE(has_capability(caps, "AUTH=PLAIN"));
  EXPECT_FALSE(has_capability(caps, "AUTH"));
  EXPECT_FALSE(has_capability(caps, "IMAP4"));
  EXPECT_EQ(capability_code("[CAPABILITY IMAP4rev1 IDLE] Logged in"), "IMAP4rev1 IDLE");
  EXPECT_EQ(capability_code("Logged in"), "");
  EXPECT_EQ(capability_code("[CAPABILITY broken"), "");
}

}  // namespace
}  // namespace basalt::proxy
