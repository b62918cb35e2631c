#include "tools/basaltctl/auth_command.h"

#include <event2/event.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>

#include <toml++/toml.h>

#include "common/handles.h"
#include "common/result.h"
#include "directory/directory_config.h"

namespace basalt::ctl {
namespace {

using directory::AuthOutcome;
using directory::AuthResult;
using Clock = std::chrono::steady_clock;

Result<directory::DirectoryConfig> load_config(const std::string& path) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return make_error(path + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()));
  }
  const toml::node* table = root.get("directory");
  if (table && !table->is_table()) return make_error(path + ": [directory] must be a table");
  std::string base_dir = std::filesystem::absolute(path).parent_path().string();
  static const toml::table empty;  // a reference, not a copy: copies lose source positions
  auto config = directory::parse_directory_config(table ? *table->as_table() : empty, base_dir);
  if (!config) return make_error(path + ": " + config.error().message);
  return config;
}

// One line: from the file, or from stdin (so it never shows up in `ps` or shell history).
Result<std::string> read_password(const std::string& file) {
  std::string line;
  if (file.empty()) {
    std::getline(std::cin, line);
  } else {
    std::ifstream in(file, std::ios::binary);
    if (!in) return make_error("cannot read password file '" + file + "'");
    std::getline(in, line);
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

ExitCode exit_code_for(AuthOutcome outcome) {
  switch (outcome) {
    case AuthOutcome::kOk: return ExitCode::kOk;
    case AuthOutcome::kBadCredentials:
    case AuthOutcome::kDisabled:
    case AuthOutcome::kMoving: return ExitCode::kAuthFailed;
    case AuthOutcome::kUnavailable: return ExitCode::kUnavailable;
  }
  return ExitCode::kUnavailable;
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

void print_result(const AuthResult& result, double elapsed_ms) {
  std::printf("outcome: %s\n", directory::to_string(result.outcome));
  std::printf("user: %s\nshard: %s\nstatus: %s\ndn: %s\n", result.route.user.c_str(), result.route.shard.c_str(),
              result.route.status.c_str(), result.route.dn.c_str());
  std::printf("detail: %s\nelapsed_ms: %.1f\n", result.detail.c_str(), elapsed_ms);
}

}  // namespace

ExitCode run_auth_test(const AuthTestOptions& options) {
  auto config = load_config(options.config_path);
  if (!config) {
    std::fprintf(stderr, "basaltctl: %s\n", config.error().message.c_str());
    return ExitCode::kConfigError;
  }
  auto password = read_password(options.password_file);
  if (!password) {
    std::fprintf(stderr, "basaltctl: %s\n", password.error().message.c_str());
    return ExitCode::kConfigError;
  }
  CHandle<event_base, event_base_free> base(event_base_new());
  auto dir = directory::make_directory(*config, base.get());
  std::optional<AuthResult> result;
  auto start = Clock::now();
  dir->authenticate(options.user, *password, [&](AuthResult r) {
    result = std::move(r);
    event_base_loopbreak(base.get());
  });
  OPENSSL_cleanse(password->data(), password->size());
  event_base_dispatch(base.get());
  double elapsed = ms_since(start);
  if (!result) {  // cannot happen: every operation has a timer
    std::fprintf(stderr, "basaltctl: no result\n");
    return ExitCode::kUnavailable;
  }
  print_result(*result, elapsed);
  return exit_code_for(result->outcome);
}

namespace {

struct Bench {
  event_base* base = nullptr;
  directory::Directory* dir = nullptr;
  const AuthBenchOptions* options = nullptr;
  std::string password;
  Clock::time_point start;
  int started = 0;
  int done = 0;
  std::map<std::string, int> outcomes;
  std::map<std::string, int> details;
  std::vector<double> latencies_ms;

  static void start_later(evutil_socket_t, short, void* arg) { static_cast<Bench*>(arg)->start_one(); }

  void start_one() {
    const int index = started++;
    const std::string& user = options->users[static_cast<size_t>(index) % options->users.size()];
    auto t0 = Clock::now();
    dir->authenticate(user, password, [this, t0, index](AuthResult r) { on_done(index, t0, r); });
  }

  void on_done(int index, Clock::time_point t0, const AuthResult& r) {
    double latency = ms_since(t0);
    latencies_ms.push_back(latency);
    ++outcomes[directory::to_string(r.outcome)];
    if (r.outcome != AuthOutcome::kOk) ++details[r.detail];
    if (options->print_each) {
      std::printf("login %d %s t_ms=%.1f latency_ms=%.1f detail=%s\n", index, directory::to_string(r.outcome),
                  ms_since(start), latency, r.detail.c_str());
      std::fflush(stdout);
    }
    ++done;
    if (started < options->requests) {
      if (options->interval_ms > 0) {
        timeval tv{options->interval_ms / 1000, options->interval_ms % 1000 * 1000};
        event_base_once(base, -1, EV_TIMEOUT, &Bench::start_later, this, &tv);
      } else {
        start_one();
      }
    }
    if (done == options->requests) event_base_loopbreak(base);
  }
};

double percentile(std::vector<double>& values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  auto index = static_cast<size_t>(p * static_cast<double>(values.size() - 1));
  return values[index];
}

}  // namespace

ExitCode run_auth_bench(const AuthBenchOptions& options) {
  auto config = load_config(options.config_path);
  auto password = config ? read_password(options.password_file) : Result<std::string>(config.error());
  if (!config || !password || options.requests < 1 || options.concurrency < 1) {
    std::fprintf(stderr, "basaltctl: %s\n", !config ? config.error().message.c_str()
                                            : !password ? password.error().message.c_str()
                                                        : "-n and -c must be positive");
    return ExitCode::kConfigError;
  }
  if (options.no_cache) config->cache_ttl = std::chrono::seconds(0);
  CHandle<event_base, event_base_free> base(event_base_new());
  auto dir = directory::make_directory(*config, base.get());
  Bench bench;
  bench.base = base.get();
  bench.dir = dir.get();
  bench.options = &options;
  bench.password = std::move(*password);
  bench.start = Clock::now();
  for (int i = 0; i < std::min(options.concurrency, options.requests); ++i) bench.start_one();
  event_base_dispatch(base.get());
  double elapsed = ms_since(bench.start);
  OPENSSL_cleanse(bench.password.data(), bench.password.size());
  std::printf("requests: %d\nconcurrency: %d\n", options.requests, options.concurrency);
  for (const auto& [name, count] : bench.outcomes) std::printf("%s: %d\n", name.c_str(), count);
  for (const auto& [detail, count] : bench.details) std::printf("detail: %s x%d\n", detail.c_str(), count);
  std::printf("elapsed_ms: %.1f\nlogins_per_s: %.0f\n", elapsed, options.requests * 1000.0 / elapsed);
  std::printf("latency_ms p50: %.2f p99: %.2f max: %.2f\n", percentile(bench.latencies_ms, 0.5),
              percentile(bench.latencies_ms, 0.99), percentile(bench.latencies_ms, 1.0));
  return bench.outcomes["ok"] == options.requests ? ExitCode::kOk : ExitCode::kAuthFailed;
}

}  // namespace basalt::ctl
