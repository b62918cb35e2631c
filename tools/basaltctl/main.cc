// basaltctl: the Basalt operator CLI. main() only parses arguments and dispatches.
#include <csignal>
#include <string>

#include <CLI/CLI.hpp>

#include "common/log.h"
#include "tools/basaltctl/admin_command.h"
#include "tools/basaltctl/auth_command.h"

int main(int argc, char** argv) {
  // libldap writes with write(2): a server closing the socket must not kill us with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);

  CLI::App app{"basaltctl: Basalt operator tool"};
  std::string config_path = "/etc/basalt/proxy.toml";
  std::string log_level = "warn";
  app.add_option("-c,--config", config_path, "configuration file (TOML)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  app.require_subcommand(1);

  auto* auth = app.add_subcommand("auth", "exercise the directory ([directory] table)");
  auth->require_subcommand(1);

  basalt::ctl::AuthTestOptions test;
  auto* test_cmd = auth->add_subcommand(
      "test", "authenticate USER once; password from stdin (one line) or --password-file.\n"
              "Exit: 0 ok, 1 auth failed (bad credentials, disabled, moving), 2 unavailable, 3 config error");
  test_cmd->add_option("USER", test.user, "user name")->required();
  test_cmd->add_option("--password-file", test.password_file, "read the password from this file");

  basalt::ctl::AuthBenchOptions bench;
  auto* bench_cmd = auth->add_subcommand("bench", "concurrent logins (load test)");
  bench_cmd->group("");  // hidden: a load generator, not an operator command
  bench_cmd->add_option("USER", bench.users, "user names (cycled)")->required();
  bench_cmd->add_option("-n", bench.requests, "number of logins");
  bench_cmd->add_option("-c", bench.concurrency, "logins in flight");
  bench_cmd->add_option("--password-file", bench.password_file, "read the password from this file");
  bench_cmd->add_flag("--no-cache", bench.no_cache, "disable the route cache (search on every login)");
  bench_cmd->add_option("--interval-ms", bench.interval_ms, "pause before each slot's next login");
  bench_cmd->add_flag("--print-each", bench.print_each, "print one line per login");

  basalt::ctl::AdminOptions admin;
  auto add_admin_options = [&admin](CLI::App* cmd) {
    cmd->add_option("--proxy", admin.proxies, "admin endpoint host:port (repeatable; default: the config's [admin])");
    cmd->add_option("--token", admin.token, "bearer token (default: the config's [admin] token)");
    cmd->add_option("--token-file", admin.token_file, "read the bearer token from this file");
  };
  auto* sessions_cmd = app.add_subcommand("sessions", "list the sessions on one or more proxies.\n"
                                                      "Exit: 0 ok, 2 a proxy did not answer, 3 usage error");
  add_admin_options(sessions_cmd);
  sessions_cmd->add_option("--user", admin.user, "only this user's sessions");
  sessions_cmd->add_flag("--json", admin.json, "JSON output");
  auto* kick_cmd = app.add_subcommand("kick", "end a user's sessions on one or more proxies (IMAP BYE / POP3 -ERR).\n"
                                              "Exit: 0 ok, 2 a proxy did not answer, 3 usage error");
  add_admin_options(kick_cmd);
  kick_cmd->add_option("USER", admin.user, "user name")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : static_cast<int>(basalt::ctl::ExitCode::kConfigError);
  }
  basalt::set_log_level(log_level);
  try {
    admin.config_path = config_path;
    if (*sessions_cmd) return basalt::ctl::run_sessions(admin);
    if (*kick_cmd) return basalt::ctl::run_kick(admin);
    if (*test_cmd) {
      test.config_path = config_path;
      return static_cast<int>(basalt::ctl::run_auth_test(test));
    }
    bench.config_path = config_path;
    return static_cast<int>(basalt::ctl::run_auth_bench(bench));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "basaltctl: %s\n", e.what());
    return static_cast<int>(basalt::ctl::ExitCode::kConfigError);
  }
}
