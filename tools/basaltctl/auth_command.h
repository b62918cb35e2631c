// basaltctl auth ...: exercise the configured directory from the command line.
#pragma once

#include <string>
#include <vector>

namespace basalt::ctl {

// Exit codes shared by the auth commands.
enum class ExitCode : int {
  kOk = 0,
  kAuthFailed = 1,    // bad credentials, disabled or moving
  kUnavailable = 2,   // directory unreachable, slow or overloaded
  kConfigError = 3,   // configuration (or usage) error
};

struct AuthTestOptions {
  std::string config_path;
  std::string user;
  std::string password_file;  // "" = first line of stdin
};

struct AuthBenchOptions {
  std::string config_path;
  std::vector<std::string> users;  // cycled through
  std::string password_file;
  int requests = 1000;
  int concurrency = 50;
  bool no_cache = false;  // measure search + bind on every login
  int interval_ms = 0;    // pause between a login's answer and the next login of its slot
  bool print_each = false;  // one line per login: index outcome t_ms latency_ms detail
};

// Runs one authenticate() on a private event loop and prints outcome, route and elapsed time.
ExitCode run_auth_test(const AuthTestOptions& options);

// Runs `requests` authentications with at most `concurrency` in flight on one loop.
ExitCode run_auth_bench(const AuthBenchOptions& options);

}  // namespace basalt::ctl
