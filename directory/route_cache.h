// A short-TTL cache of successful directory lookups (DN, route, status) keyed by the typed user
// name. It never holds password results: every login still binds. Its purpose is to save the
// search round trip for users who log in repeatedly (IMAP clients reconnect often).
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "directory/directory.h"

namespace basalt::directory {

// Injectable time source so expiry can be unit-tested without sleeping.
using SteadyClock = std::function<std::chrono::steady_clock::time_point()>;

class RouteCache {
 public:
  // ttl == 0 disables the cache. `max_entries` bounds memory: the oldest entries go first.
  RouteCache(std::chrono::seconds ttl, size_t max_entries, SteadyClock clock = {});

  // Returns the cached route, or nullptr when absent or expired (expired entries are dropped).
  const UserRoute* find(std::string_view user);
  void put(const std::string& user, const UserRoute& route);
  void erase(const std::string& user);
  size_t size() const { return entries_.size(); }
  bool enabled() const { return ttl_.count() > 0; }

 private:
  struct Entry {
    UserRoute route;
    std::chrono::steady_clock::time_point expires;
  };
  void evict(std::chrono::steady_clock::time_point now);

  std::chrono::seconds ttl_;
  size_t max_entries_;
  SteadyClock clock_;
  std::unordered_map<std::string, Entry> entries_;
  // Insertion order; the TTL is constant, so this is also expiry order. May hold stale keys
  // (re-inserted or erased); evict() skips them by comparing expiry times.
  std::deque<std::pair<std::string, std::chrono::steady_clock::time_point>> order_;
};

}  // namespace basalt::directory
