// basaltctl sessions / kick: talk to one or more basalt-proxy admin endpoints.
#pragma once

#include <string>
#include <vector>

namespace basalt::ctl {

struct AdminOptions {
  std::string config_path;           // its [admin] table is used when no --proxy is given
  std::vector<std::string> proxies;  // "host:port" of admin endpoints
  std::string token;
  std::string token_file;
  std::string user;                  // sessions: filter; kick: required
  bool json = false;
};

// Exit codes: 0 ok, 2 a proxy could not be reached or refused, 3 usage or configuration error.
int run_sessions(const AdminOptions& options);
int run_kick(const AdminOptions& options);

}  // namespace basalt::ctl
