// Admin HTTP endpoint (libevent evhttp) on the main loop: bearer token required.
//   GET /health   → 200 "ok"
//   GET /metrics  → Prometheus text format
#pragma once

#include <event2/http.h>

#include "common/handles.h"
#include "common/result.h"
#include "proxy/proxy_config.h"
#include "proxy/stats.h"

namespace basalt::proxy {

class AdminHttp {
 public:
  AdminHttp(const AdminConfig& config, const Stats& stats) : config_(config), stats_(stats) {}
  Result<void> start(event_base* base);

 private:
  static void on_request(evhttp_request* request, void* self);
  bool authorized(evhttp_request* request) const;
  std::string metrics() const;

  const AdminConfig& config_;
  const Stats& stats_;
  CHandle<evhttp, evhttp_free> http_;
};

}  // namespace basalt::proxy
