// Admin HTTP endpoint (libevent evhttp) on the main loop, loopback by default, bearer token required.
//   GET  /health             → 200 "ok"
//   GET  /metrics            → Prometheus text format
//   GET  /sessions[?user=U]  → JSON: the sessions of every worker
//   POST /kick?user=U        → JSON: U's sessions end (IMAP "* BYE", POP3 "-ERR")
// Session queries are posted to the workers' loops and answered when all have replied; the main
// loop never waits on them.
#pragma once

#include <event2/http.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/handles.h"
#include "common/loop_tasks.h"
#include "common/result.h"
#include "proxy/proxy_config.h"
#include "proxy/stats.h"

namespace basalt::proxy {

class Worker;

class AdminHttp {
 public:
  AdminHttp(const AdminConfig& config, const Stats& stats, std::vector<Worker*> workers, LoopTasks& main_tasks)
      : config_(config), stats_(stats), workers_(std::move(workers)), main_tasks_(main_tasks) {}
  Result<void> start(event_base* base);

 private:
  struct Pending;
  static void on_request(evhttp_request* request, void* self);
  static void on_connection_closed(evhttp_connection* connection, void* self);
  bool authorized(evhttp_request* request) const;
  std::string metrics() const;
  void list_sessions(evhttp_request* request, const std::string& user);
  void kick(evhttp_request* request, const std::string& user);
  std::shared_ptr<Pending> track(evhttp_request* request);
  void finish(const std::shared_ptr<Pending>& pending, const std::string& json);

  const AdminConfig& config_;
  const Stats& stats_;
  std::vector<Worker*> workers_;
  LoopTasks& main_tasks_;
  CHandle<evhttp, evhttp_free> http_;
  std::map<evhttp_connection*, std::shared_ptr<Pending>> pending_;
};

}  // namespace basalt::proxy
