// Named spdlog loggers, one per component.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include <spdlog/spdlog.h>

namespace basalt {

// Returns the logger for `component` ("proxy", "directory", ...), creating it on first use.
std::shared_ptr<spdlog::logger> logger(const std::string& component);

// Sets the level of every logger ("trace", "debug", "info", "warn", "error").
void set_log_level(std::string_view level);

// Client-supplied text made safe for a log line: control and 8-bit bytes as \xNN, cut at `max`.
std::string log_safe(std::string_view text, size_t max = 64);

// While one exists, every logger's lines are collected in memory and written to stderr in
// batches: every `interval`, at once for warnings and errors, when 64 KiB are waiting, and when
// it is destroyed (after that, lines are written one by one again). For a server that logs
// every session on its event loops: one write(2) per line otherwise. Create it once, before
// other threads log.
class BufferedLogging {
 public:
  explicit BufferedLogging(std::chrono::milliseconds interval);
  ~BufferedLogging();
  BufferedLogging(const BufferedLogging&) = delete;
  BufferedLogging& operator=(const BufferedLogging&) = delete;

 private:
  std::jthread flusher_;
};

// Writes out whatever BufferedLogging holds (no-op otherwise).
void flush_logs();

}  // namespace basalt
