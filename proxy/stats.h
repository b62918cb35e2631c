// Process-wide counters, shared by the worker threads (relaxed atomics; read by the admin endpoint).
#pragma once

#include <atomic>
#include <cstdint>

namespace basalt::proxy {

struct Stats {
  std::atomic<int64_t> sessions{0};          // open client connections
  std::atomic<int64_t> sessions_proxying{0};  // of which logged in and relaying
  std::atomic<uint64_t> sessions_total{0};
  std::atomic<uint64_t> logins_ok{0};
  std::atomic<uint64_t> logins_bad_credentials{0};
  std::atomic<uint64_t> logins_unavailable{0};   // directory or backend down, account moving/disabled
  std::atomic<uint64_t> logins_refused{0};       // plaintext before TLS, protocol errors
  std::atomic<uint64_t> backend_errors{0};
  std::atomic<uint64_t> bytes_client_to_backend{0};
  std::atomic<uint64_t> bytes_backend_to_client{0};

  static void add(std::atomic<uint64_t>& counter, uint64_t n = 1) { counter.fetch_add(n, std::memory_order_relaxed); }
};

}  // namespace basalt::proxy
