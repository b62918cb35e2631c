// Limits shared by all workers: open connections per client address, logged-in sessions per
// user, and the authentication-failure penalty per client network and per user (growing with
// each failure, decaying with time, like Dovecot's auth penalty). One mutex: every operation is
// a hash lookup, done at connect, login and close only.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/net.h"

namespace basalt::proxy {

class ClientLimits {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  struct Settings {
    size_t max_connections_per_ip = 0;  // 0: no limit
    size_t max_sessions_per_user = 0;   // 0: no limit
    std::chrono::milliseconds penalty_base{2000};
    std::chrono::milliseconds penalty_max{15000};
    std::chrono::seconds penalty_decay{60};  // the failure count halves per period without failures
    size_t max_tracked = 100000;             // penalty entries kept (oldest decayed ones go first)
  };

  explicit ClientLimits(Settings settings, Clock clock = std::chrono::steady_clock::now)
      : settings_(settings), clock_(std::move(clock)) {}

  void update(const Settings& settings);  // on reload

  // The key a client is counted and penalized under: the IPv4 address, or the IPv6 /48.
  static std::string network_key(const std::string& ip);

  bool acquire_connection(const std::string& ip);
  void release_connection(const std::string& ip);
  bool acquire_session(const std::string& user);
  void release_session(const std::string& user);

  // Records a failed login; returns how long to wait before answering it.
  std::chrono::milliseconds record_failure(const std::string& ip, const std::string& user);
  // A successful login clears the user's penalty (not the network's: others may share it).
  void record_success(const std::string& user);

 private:
  struct Penalty {
    unsigned failures = 0;
    std::chrono::steady_clock::time_point last;
  };
  unsigned decayed(const Penalty& p, std::chrono::steady_clock::time_point now) const;
  std::chrono::milliseconds bump(std::unordered_map<std::string, Penalty>& table, const std::string& key,
                                 std::chrono::steady_clock::time_point now);
  void prune(std::unordered_map<std::string, Penalty>& table, std::chrono::steady_clock::time_point now);

  std::mutex mu_;
  Settings settings_;
  Clock clock_;
  std::unordered_map<std::string, size_t> connections_;
  std::unordered_map<std::string, size_t> sessions_;
  std::unordered_map<std::string, Penalty> by_network_;
  std::unordered_map<std::string, Penalty> by_user_;
};

}  // namespace basalt::proxy
