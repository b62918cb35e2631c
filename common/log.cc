#include "common/log.h"

#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace basalt {
namespace {

constexpr const char* kPattern = "%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v";
constexpr size_t kBatchLimit = 64 * 1024;

// Collects formatted lines and writes them to stderr in one write(2) per flush; while not
// batching (before and after BufferedLogging) it writes each line at once.
class BatchSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  void set_batching(bool on) {
    std::lock_guard lock(mutex_);
    batching_ = on;
    write_out();
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    pending_.append(line.data(), line.size());
    if (!batching_ || pending_.size() >= kBatchLimit) write_out();
  }
  void flush_() override { write_out(); }

 private:
  // Called with mutex_ held. A failed write drops the batch: stderr is gone, nothing to tell.
  void write_out() {
    size_t done = 0;
    while (done < pending_.size()) {
      ssize_t n = ::write(STDERR_FILENO, pending_.data() + done, pending_.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    pending_.clear();
  }

  std::string pending_;
  bool batching_ = false;
};

std::mutex registry_mutex;
std::shared_ptr<BatchSink> batch_sink;  // set while batching (and after, for the loggers made then)

std::shared_ptr<spdlog::logger> make_logger(const std::string& component) {
  if (!batch_sink) return spdlog::stderr_color_mt(component);
  auto created = std::make_shared<spdlog::logger>(component, batch_sink);
  spdlog::register_logger(created);
  return created;
}

}  // namespace

std::shared_ptr<spdlog::logger> logger(const std::string& component) {
  std::lock_guard lock(registry_mutex);
  if (auto existing = spdlog::get(component)) return existing;
  auto created = make_logger(component);
  created->set_pattern(kPattern);
  created->set_level(spdlog::get_level());
  created->flush_on(spdlog::level::warn);  // warnings and errors are not held back
  return created;
}

void set_log_level(std::string_view level) {
  spdlog::set_level(spdlog::level::from_str(std::string(level)));
}

BufferedLogging::BufferedLogging(std::chrono::milliseconds interval) {
  {
    std::lock_guard lock(registry_mutex);
    if (!batch_sink) batch_sink = std::make_shared<BatchSink>();
    batch_sink->set_pattern(kPattern);
    batch_sink->set_batching(true);
    // Loggers made before now switch over too (no other thread logs yet).
    spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->sinks().assign(1, batch_sink); });
  }
  flusher_ = std::jthread([interval](std::stop_token stop) {
    std::mutex mu;
    std::condition_variable_any wake;
    std::unique_lock lock(mu);
    while (!stop.stop_requested()) {
      wake.wait_for(lock, stop, interval, [] { return false; });
      flush_logs();
    }
  });
}

BufferedLogging::~BufferedLogging() {
  flusher_.request_stop();
  flusher_.join();
  std::lock_guard lock(registry_mutex);
  batch_sink->set_batching(false);  // writes out what is left; later lines go out at once
}

void flush_logs() {
  std::shared_ptr<BatchSink> sink;
  {
    std::lock_guard lock(registry_mutex);
    sink = batch_sink;
  }
  if (sink) sink->flush();
}

std::string log_safe(std::string_view text, size_t max) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < text.size() && i < max; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > max) out += "...(" + std::to_string(text.size()) + " bytes)";
  return out;
}

}  // namespace basalt
