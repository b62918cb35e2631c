#include "proxy/auth_cache.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace basalt::proxy {
namespace {

using testing::FakeClock;

AuthCache::Settings settings() {
  AuthCache::Settings s;
  s.ttl = std::chrono::seconds(300);
  s.iterations = 1000;  // speed for the test; production default is 10000
  s.max_entries = 3;
  return s;
}

directory::UserRoute route(const std::string& user) { return {user, "uid=" + user, "a", "active"}; }

TEST(AuthCache, SameSecretWithinTheTtlIsAccepted) {
  FakeClock clock;
  AuthCache cache(settings(), clock.fn());
  cache.remember("alice", route("alice"), "s3cret");
  auto hit = cache.check("alice", "s3cret");
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->shard, "a");
  EXPECT_FALSE(cache.check("alice", "s3cret ").has_value());
  EXPECT_FALSE(cache.check("alice", "").has_value());
  EXPECT_FALSE(cache.check("bob", "s3cret").has_value());
}

TEST(AuthCache, EntriesExpireAndCanBeForgotten) {
  FakeClock clock;
  AuthCache cache(settings(), clock.fn());
  cache.remember("alice", route("alice"), "pw");
  clock.now += std::chrono::seconds(301);
  EXPECT_FALSE(cache.has("alice"));
  EXPECT_FALSE(cache.check("alice", "pw").has_value());
  cache.remember("bob", route("bob"), "pw");
  cache.forget("bob");
  EXPECT_FALSE(cache.check("bob", "pw").has_value());
}

TEST(AuthCache, ANewPasswordReplacesTheOld) {
  FakeClock clock;
  AuthCache cache(settings(), clock.fn());
  cache.remember("alice", route("alice"), "old");
  cache.remember("alice", route("alice"), "new");
  EXPECT_FALSE(cache.check("alice", "old").has_value());
  EXPECT_TRUE(cache.check("alice", "new").has_value());
}

TEST(AuthCache, SizeIsBounded) {
  FakeClock clock;
  AuthCache cache(settings(), clock.fn());
  for (int i = 0; i < 10; ++i) cache.remember("user" + std::to_string(i), route("u"), "pw");
  int kept = 0;
  for (int i = 0; i < 10; ++i) kept += cache.has("user" + std::to_string(i));
  EXPECT_LE(kept, 3);
  EXPECT_TRUE(cache.has("user9"));
}

TEST(AuthCache, DisabledWithZeroTtl) {
  AuthCache cache(AuthCache::Settings{});
  EXPECT_FALSE(cache.enabled());
}

}  // namespace
}  // namespace basalt::proxy
