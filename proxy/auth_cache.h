// Rides out a short directory outage: remembers, for users who logged in recently, their route
// and a salted PBKDF2-SHA256 hash of the secret (never the secret), and lets the same secret in
// while the directory is unreachable. Whenever the directory answers, its answer wins (a wrong
// password there erases the entry). Shared by all workers; the hashing is slow on purpose and
// runs on a thread pool, never on an event loop.
#pragma once

#include <array>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "directory/directory.h"

namespace basalt::proxy {

class AuthCache {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  struct Settings {
    std::chrono::seconds ttl{0};  // 0: disabled
    unsigned iterations = 10000;
    size_t max_entries = 100000;
  };

  explicit AuthCache(Settings settings, Clock clock = std::chrono::steady_clock::now)
      : settings_(settings), clock_(std::move(clock)) {}

  bool enabled() const { return settings_.ttl.count() > 0; }
  bool has(const std::string& user);  // cheap check, to skip the slow path

  // Slow (PBKDF2): call on a pool thread. `secret` is read, not kept.
  void remember(const std::string& user, const directory::UserRoute& route, const std::string& secret);
  std::optional<directory::UserRoute> check(const std::string& user, const std::string& secret);

  void forget(const std::string& user);

 private:
  struct Entry {
    directory::UserRoute route;
    std::array<unsigned char, 16> salt{};
    std::array<unsigned char, 32> hash{};
    std::chrono::steady_clock::time_point stored;
  };
  std::array<unsigned char, 32> derive(const std::string& secret, const std::array<unsigned char, 16>& salt) const;

  std::mutex mu_;
  Settings settings_;
  Clock clock_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace basalt::proxy
