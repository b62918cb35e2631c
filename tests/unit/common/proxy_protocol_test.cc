#include "common/proxy_protocol.h"

#include <gtest/gtest.h>

namespace basalt::proxy_protocol {
namespace {

std::string v2(unsigned char command, unsigned char family, const std::string& addresses) {
  std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
  h.push_back(static_cast<char>(0x20 | command));
  h.push_back(static_cast<char>(family));
  h.push_back(static_cast<char>(addresses.size() >> 8));
  h.push_back(static_cast<char>(addresses.size() & 0xff));
  return h + addresses;
}

std::string v2_tcp4(const std::string& tlvs = "") {
  // 192.0.2.7:50000 -> 198.51.100.1:993
  std::string a = {'\xc0', '\x00', '\x02', '\x07', '\xc6', '\x33', '\x64', '\x01', '\xc3', '\x50', '\x03', '\xe1'};
  return v2(1, 0x11, a + tlvs);
}

Status parse_all(std::string_view data, Header& h, std::string& error) { return parse(data, h, error); }

TEST(ProxyProtocol, V1Tcp4) {
  Header h;
  std::string error;
  std::string data = "PROXY TCP4 192.0.2.7 198.51.100.1 50000 993\r\nA1 CAPABILITY\r\n";
  ASSERT_EQ(parse_all(data, h, error), Status::kDone) << error;
  EXPECT_EQ(h.length, data.find("A1"));
  EXPECT_FALSE(h.local);
  EXPECT_EQ(h.source->to_string(), "192.0.2.7:50000");
  EXPECT_EQ(h.destination->to_string(), "198.51.100.1:993");
}

TEST(ProxyProtocol, V1Tcp6AndUnknown) {
  Header h;
  std::string error;
  ASSERT_EQ(parse_all("PROXY TCP6 2001:db8::7 2001:db8::1 4000 143\r\n", h, error), Status::kDone) << error;
  EXPECT_EQ(h.source->to_string(), "[2001:db8::7]:4000");
  ASSERT_EQ(parse_all("PROXY UNKNOWN\r\n", h, error), Status::kDone);
  EXPECT_TRUE(h.local);
  EXPECT_EQ(h.length, 15u);
}

TEST(ProxyProtocol, V1Errors) {
  for (const char* bad : {"PROXY TCP4 192.0.2.7 198.51.100.1 50000\r\n", "PROXY TCP4 1.2.3 1.2.3.4 1 2\r\n",
                          "PROXY TCP4 ::1 ::1 1 2\r\n", "PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n",
                          "PROXY TCP4 1.2.3.4 1.2.3.4 1 70000\r\n", "PROXY TCP4 1.2.3.4 1.2.3.4 1 2 extra\r\n",
                          "A1 LOGIN alice secret\r\n", "GET / HTTP/1.0\r\n"}) {
    Header h;
    std::string error;
    EXPECT_EQ(parse_all(bad, h, error), Status::kError) << bad;
    EXPECT_FALSE(error.empty());
  }
  Header h;
  std::string error;
  EXPECT_EQ(parse_all("PROXY TCP4 " + std::string(200, '1'), h, error), Status::kError);
}

TEST(ProxyProtocol, V2Tcp4WithTlvs) {
  Header h;
  std::string error;
  std::string header = v2_tcp4(std::string("\x04\x00\x02ok", 5));
  ASSERT_EQ(parse_all(header + "* tail", h, error), Status::kDone) << error;
  EXPECT_EQ(h.length, header.size());
  EXPECT_EQ(h.source->to_string(), "192.0.2.7:50000");
  EXPECT_EQ(h.destination->to_string(), "198.51.100.1:993");
}

TEST(ProxyProtocol, V2Tcp6LocalAndErrors) {
  Header h;
  std::string error;
  std::string a6(36, '\0');
  a6[15] = 1;             // src ::1
  a6[31] = 2;             // dst ::2
  a6[32] = '\x04';        // sport 1024
  a6[35] = '\x8f';        // dport 143
  ASSERT_EQ(parse_all(v2(1, 0x21, a6), h, error), Status::kDone) << error;
  EXPECT_EQ(h.source->to_string(), "[::1]:1024");
  EXPECT_EQ(h.destination->to_string(), "[::2]:143");
  ASSERT_EQ(parse_all(v2(0, 0x00, ""), h, error), Status::kDone);
  EXPECT_TRUE(h.local);
  EXPECT_EQ(parse_all(v2(1, 0x11, "short"), h, error), Status::kError);
  EXPECT_EQ(parse_all(v2(1, 0x12, std::string(12, '\0')), h, error), Status::kError);  // UDP
  EXPECT_EQ(parse_all(v2(2, 0x11, std::string(12, '\0')), h, error), Status::kError);  // bad command
  std::string bad_version = v2_tcp4();
  bad_version[12] = '\x31';
  EXPECT_EQ(parse_all(bad_version, h, error), Status::kError);
  std::string huge = v2_tcp4();
  huge[14] = '\xff';
  EXPECT_EQ(parse_all(huge, h, error), Status::kError);
}

TEST(ProxyProtocol, EveryPrefixNeedsMoreAndNeverFails) {
  for (const std::string& full : {std::string("PROXY TCP4 192.0.2.7 198.51.100.1 50000 993\r\n"), v2_tcp4()}) {
    for (size_t n = 0; n < full.size(); ++n) {
      Header h;
      std::string error;
      EXPECT_EQ(parse_all(full.substr(0, n), h, error), Status::kNeedMore) << n;
    }
  }
}

}  // namespace
}  // namespace basalt::proxy_protocol
