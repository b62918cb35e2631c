#include "proxy/client_limits.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace basalt::proxy {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::FakeClock;

ClientLimits::Settings settings() {
  ClientLimits::Settings s;
  s.max_connections_per_ip = 2;
  s.max_sessions_per_user = 3;
  s.penalty_base = milliseconds(2000);
  s.penalty_max = milliseconds(15000);
  s.penalty_decay = seconds(60);
  return s;
}

TEST(ClientLimits, ConnectionsPerAddressAtAndOverTheLimit) {
  ClientLimits limits(settings());
  EXPECT_TRUE(limits.acquire_connection("10.0.0.1"));
  EXPECT_TRUE(limits.acquire_connection("10.0.0.1"));
  EXPECT_FALSE(limits.acquire_connection("10.0.0.1"));
  EXPECT_TRUE(limits.acquire_connection("10.0.0.2"));
  limits.release_connection("10.0.0.1");
  EXPECT_TRUE(limits.acquire_connection("10.0.0.1"));
}

TEST(ClientLimits, Ipv6ClientsAreCountedPerSlash48) {
  ClientLimits limits(settings());
  EXPECT_TRUE(limits.acquire_connection("2001:db8:1:aaaa::1"));
  EXPECT_TRUE(limits.acquire_connection("2001:db8:1:bbbb::2"));
  EXPECT_FALSE(limits.acquire_connection("2001:db8:1:cccc::3"));
  EXPECT_TRUE(limits.acquire_connection("2001:db8:2::1"));
  EXPECT_EQ(ClientLimits::network_key("2001:db8:1:aaaa::1"), "2001:db8:1::/48");
  EXPECT_EQ(ClientLimits::network_key("::ffff:192.0.2.7"), "192.0.2.7");
  EXPECT_EQ(ClientLimits::network_key("192.0.2.7"), "192.0.2.7");
}

TEST(ClientLimits, SessionsPerUser) {
  ClientLimits limits(settings());
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limits.acquire_session("alice"));
  EXPECT_FALSE(limits.acquire_session("alice"));
  EXPECT_TRUE(limits.acquire_session("bob"));
  limits.release_session("alice");
  EXPECT_TRUE(limits.acquire_session("alice"));
}

TEST(ClientLimits, ZeroMeansUnlimited) {
  ClientLimits::Settings s = settings();
  s.max_connections_per_ip = 0;
  s.max_sessions_per_user = 0;
  ClientLimits limits(s);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(limits.acquire_connection("10.0.0.1"));
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(limits.acquire_session("alice"));
}

TEST(ClientLimits, PenaltyDoublesUpToTheMaximum) {
  FakeClock clock;
  ClientLimits limits(settings(), clock.fn());
  std::vector<long> delays;
  for (int i = 0; i < 6; ++i) delays.push_back(limits.record_failure("10.0.0.1", "").count());
  EXPECT_EQ(delays, (std::vector<long>{2000, 4000, 8000, 15000, 15000, 15000}));
}

TEST(ClientLimits, PenaltyDecaysWithTime) {
  FakeClock clock;
  ClientLimits limits(settings(), clock.fn());
  for (int i = 0; i < 4; ++i) limits.record_failure("10.0.0.1", "");  // 4 failures
  clock.now += seconds(60);                                            // halves to 2
  EXPECT_EQ(limits.record_failure("10.0.0.1", "").count(), 8000);     // 3rd failure
  clock.now += seconds(600);                                           // long quiet: gone
  EXPECT_EQ(limits.record_failure("10.0.0.1", "").count(), 2000);
}

TEST(ClientLimits, PenaltyPerUserFollowsTheUserAcrossAddresses) {
  FakeClock clock;
  ClientLimits limits(settings(), clock.fn());
  limits.record_failure("10.0.0.1", "alice");
  limits.record_failure("10.0.0.2", "alice");
  EXPECT_EQ(limits.record_failure("10.0.0.3", "alice").count(), 8000);
  limits.record_success("alice");
  EXPECT_EQ(limits.record_failure("10.0.0.4", "alice").count(), 2000);
}

TEST(ClientLimits, TrackedEntriesAreBounded) {
  FakeClock clock;
  ClientLimits::Settings s = settings();
  s.max_tracked = 100;
  ClientLimits limits(s, clock.fn());
  for (int i = 0; i < 1000; ++i) limits.record_failure("10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256), "");
  // Still works, and an address seen once long ago does not carry over.
  clock.now += seconds(3600);
  EXPECT_EQ(limits.record_failure("10.0.0.0", "").count(), 2000);
}

}  // namespace
}  // namespace basalt::proxy
