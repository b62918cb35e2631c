#include "directory/route_cache.h"

#include <gtest/gtest.h>

namespace basalt::directory {
namespace {

using std::chrono::seconds;

struct FakeClock {
  std::chrono::steady_clock::time_point now{};
  SteadyClock fn() {
    return [this] { return now; };
  }
};

UserRoute route(const std::string& user, const std::string& shard = "a") {
  return UserRoute{user, "uid=" + user + ",dc=x", shard, "active"};
}

TEST(RouteCache, HitUntilTtlThenMiss) {
  FakeClock clock;
  RouteCache cache(seconds(30), 100, clock.fn());
  cache.put("alice", route("alice"));
  ASSERT_NE(cache.find("alice"), nullptr);
  EXPECT_EQ(cache.find("alice")->dn, "uid=alice,dc=x");
  clock.now += seconds(29);
  EXPECT_NE(cache.find("alice"), nullptr);
  clock.now += seconds(1);
  EXPECT_EQ(cache.find("alice"), nullptr);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(RouteCache, KeyIsExact) {
  RouteCache cache(seconds(30), 100);
  cache.put("alice", route("alice"));
  EXPECT_EQ(cache.find("Alice"), nullptr);
  EXPECT_EQ(cache.find("alice "), nullptr);
}

TEST(RouteCache, ZeroTtlDisables) {
  RouteCache cache(seconds(0), 100);
  EXPECT_FALSE(cache.enabled());
  cache.put("alice", route("alice"));
  EXPECT_EQ(cache.find("alice"), nullptr);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(RouteCache, PutRefreshesEntryAndExpiry) {
  FakeClock clock;
  RouteCache cache(seconds(10), 100, clock.fn());
  cache.put("alice", route("alice", "a"));
  clock.now += seconds(8);
  cache.put("alice", route("alice", "b"));
  clock.now += seconds(8);
  ASSERT_NE(cache.find("alice"), nullptr);
  EXPECT_EQ(cache.find("alice")->shard, "b");
  clock.now += seconds(2);
  EXPECT_EQ(cache.find("alice"), nullptr);
}

TEST(RouteCache, BoundedSizeEvictsOldest) {
  FakeClock clock;
  RouteCache cache(seconds(60), 3, clock.fn());
  for (const char* u : {"a", "b", "c", "d"}) {
    cache.put(u, route(u));
    clock.now += seconds(1);
  }
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.find("a"), nullptr);
  EXPECT_NE(cache.find("d"), nullptr);
}

TEST(RouteCache, ExpiredEntriesAreEvictedOnPut) {
  FakeClock clock;
  RouteCache cache(seconds(5), 1000, clock.fn());
  for (int i = 0; i < 100; ++i) cache.put("u" + std::to_string(i), route("u"));
  clock.now += seconds(6);
  cache.put("fresh", route("fresh"));
  EXPECT_EQ(cache.size(), 1u);
}

TEST(RouteCache, Erase) {
  RouteCache cache(seconds(30), 100);
  cache.put("alice", route("alice"));
  cache.erase("alice");
  EXPECT_EQ(cache.find("alice"), nullptr);
}

}  // namespace
}  // namespace basalt::directory
