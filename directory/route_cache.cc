#include "directory/route_cache.h"

namespace basalt::directory {

RouteCache::RouteCache(std::chrono::seconds ttl, size_t max_entries, SteadyClock clock)
    : ttl_(ttl), max_entries_(max_entries == 0 ? 1 : max_entries), clock_(std::move(clock)) {
  if (!clock_) clock_ = [] { return std::chrono::steady_clock::now(); };
}

const UserRoute* RouteCache::find(std::string_view user) {
  if (!enabled()) return nullptr;
  auto it = entries_.find(std::string(user));
  if (it == entries_.end()) return nullptr;
  if (clock_() >= it->second.expires) {
    entries_.erase(it);
    return nullptr;
  }
  return &it->second.route;
}

void RouteCache::put(const std::string& user, const UserRoute& route) {
  if (!enabled()) return;
  auto now = clock_();
  evict(now);
  auto expires = now + ttl_;
  entries_.insert_or_assign(user, Entry{route, expires});
  order_.emplace_back(user, expires);
}

void RouteCache::erase(const std::string& user) { entries_.erase(user); }

void RouteCache::evict(std::chrono::steady_clock::time_point now) {
  while (!order_.empty()) {
    auto& [key, expires] = order_.front();
    auto it = entries_.find(key);
    bool current = it != entries_.end() && it->second.expires == expires;
    bool expired = expires <= now;
    // The oldest live entry also goes when the cache is full.
    if (current && !expired && entries_.size() < max_entries_) break;
    if (current) entries_.erase(it);
    order_.pop_front();
  }
}

}  // namespace basalt::directory
