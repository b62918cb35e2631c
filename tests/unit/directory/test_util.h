// Helpers shared by the directory unit tests.
#pragma once

#include <event2/event.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "common/handles.h"
#include "directory/directory.h"

namespace basalt::directory::testing {

// A fresh directory under the test temp dir, removed at destruction.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = std::filesystem::path(::testing::TempDir()) /
            ("basalt-dir-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string path() const { return path_.string(); }
  std::string write(const std::string& name, const std::string& content) const {
    auto p = path_ / name;
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }

 private:
  std::filesystem::path path_;
};

using EventBase = CHandle<event_base, event_base_free>;

// Runs `base` until `done` holds a value or `limit` passes.
inline void run_until(event_base* base, const std::optional<AuthResult>& done,
                      std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done && std::chrono::steady_clock::now() < deadline) {
    timeval tick{0, 10000};
    event_base_loopexit(base, &tick);
    event_base_dispatch(base);
  }
}

// Runs the loop for `duration` (lets stray events fire).
inline void run_for(event_base* base, std::chrono::milliseconds duration) {
  timeval tv{static_cast<time_t>(duration.count() / 1000), static_cast<suseconds_t>(duration.count() % 1000 * 1000)};
  event_base_loopexit(base, &tv);
  event_base_dispatch(base);
}

}  // namespace basalt::directory::testing
