// Process-wide counters, shared by the worker threads (relaxed atomics; read by the admin endpoint).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace basalt::proxy {

struct Stats {
  // Directory round trip per login attempt (search + bind), in these upper bounds (ms; last = +Inf).
  static constexpr std::array<double, 12> kLatencyBuckets = {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000};
  std::array<std::atomic<uint64_t>, kLatencyBuckets.size() + 1> directory_latency{};
  std::atomic<uint64_t> directory_latency_sum_us{0};
  std::array<std::atomic<int64_t>, 2> open_by_protocol{};      // [0] imap/imaps, [1] pop3/pop3s
  std::array<std::atomic<int64_t>, 2> proxying_by_protocol{};

  std::atomic<int64_t> sessions{0};          // open client connections
  std::atomic<int64_t> sessions_proxying{0};  // of which logged in and relaying
  std::atomic<uint64_t> sessions_total{0};
  std::atomic<uint64_t> logins_ok{0};
  std::atomic<uint64_t> logins_bad_credentials{0};
  std::atomic<uint64_t> logins_unavailable{0};   // directory or backend down, account moving/disabled
  std::atomic<uint64_t> logins_refused{0};       // plaintext before TLS, protocol errors
  std::atomic<uint64_t> backend_errors{0};
  std::atomic<uint64_t> warm_used{0};    // logins that took a warm shard connection
  std::atomic<uint64_t> warm_missed{0};  // logins that found none ready and connected themselves
  std::atomic<uint64_t> warm_failed{0};  // warm connections that broke or timed out unused
  std::atomic<uint64_t> warm_expired{0};  // warm connections closed unused at max age
  std::atomic<uint64_t> bytes_client_to_backend{0};
  std::atomic<uint64_t> bytes_backend_to_client{0};

  static void add(std::atomic<uint64_t>& counter, uint64_t n = 1) { counter.fetch_add(n, std::memory_order_relaxed); }

  void observe_directory_latency(double ms) {
    size_t i = 0;
    while (i < kLatencyBuckets.size() && ms > kLatencyBuckets[i]) ++i;
    add(directory_latency[i]);
    add(directory_latency_sum_us, static_cast<uint64_t>(ms * 1000));
  }

  void shard_error(const std::string& shard) {
    std::lock_guard lock(shard_errors_mu);
    ++shard_errors[shard];
  }
  std::map<std::string, uint64_t> shard_error_counts() const {
    std::lock_guard lock(shard_errors_mu);
    return shard_errors;
  }

 private:
  mutable std::mutex shard_errors_mu;
  std::map<std::string, uint64_t> shard_errors;
};

}  // namespace basalt::proxy
