#include "common/net.h"

#include <gtest/gtest.h>

namespace basalt {
namespace {

TEST(SocketAddress, ParsesV4AndV6WithPorts) {
  auto v4 = parse_socket_address("127.0.0.1:143");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->family(), AF_INET);
  EXPECT_EQ(v4->port(), 143);
  EXPECT_EQ(v4->to_string(), "127.0.0.1:143");
  auto v6 = parse_socket_address("[::1]:993");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->family(), AF_INET6);
  EXPECT_EQ(v6->to_string(), "[::1]:993");
  auto bare_v6 = parse_socket_address("::1", 110);
  ASSERT_TRUE(bare_v6.ok());
  EXPECT_EQ(bare_v6->port(), 110);
  EXPECT_EQ(parse_socket_address("localhost:25")->host(), "127.0.0.1");
}

TEST(SocketAddress, RejectsBadInput) {
  for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "mail.example.org:143",
                          "[::1", "[::1]x", "1.2.3.4:12a", "256.0.0.1:1"}) {
    EXPECT_FALSE(parse_socket_address(bad).ok()) << bad;
  }
}

TEST(Network, MatchesPrefixes) {
  auto n = Network::parse("10.1.0.0/16");
  ASSERT_TRUE(n.ok());
  EXPECT_TRUE(n->contains(*parse_socket_address("10.1.200.3:1")));
  EXPECT_FALSE(n->contains(*parse_socket_address("10.2.0.1:1")));
  EXPECT_FALSE(n->contains(*parse_socket_address("[::1]:1")));
  auto odd = Network::parse("192.168.1.128/25");
  EXPECT_TRUE(odd->contains(*parse_socket_address("192.168.1.200:1")));
  EXPECT_FALSE(odd->contains(*parse_socket_address("192.168.1.127:1")));
  auto all = Network::parse("0.0.0.0/0");
  EXPECT_TRUE(all->contains(*parse_socket_address("8.8.8.8:1")));
}

TEST(Network, MatchesV6AndV4MappedAddresses) {
  auto loop6 = Network::parse("::1/128");
  EXPECT_TRUE(loop6->contains(*parse_socket_address("[::1]:5")));
  auto net6 = Network::parse("2001:db8::/48");
  EXPECT_TRUE(net6->contains(*parse_socket_address("[2001:db8:0:ffff::1]:5")));
  EXPECT_FALSE(net6->contains(*parse_socket_address("[2001:db8:1::1]:5")));
  auto loop4 = Network::parse("127.0.0.0/8");
  EXPECT_TRUE(loop4->contains(*parse_socket_address("[::ffff:127.0.0.9]:5")));
}

TEST(Network, RejectsBadCidrs) {
  for (const char* bad : {"", "10.0.0.0/33", "::1/129", "10.0.0.0/", "10.0.0/8", "10.0.0.0/x"}) {
    EXPECT_FALSE(Network::parse(bad).ok()) << bad;
  }
  auto list = NetworkList::parse({"127.0.0.0/8", "bogus"});
  EXPECT_FALSE(list.ok());
}

}  // namespace
}  // namespace basalt
