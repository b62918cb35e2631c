#include "tools/basaltctl/admin_command.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <cstdio>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "common/net.h"
#include "proxy/proxy_config.h"

namespace basalt::ctl {
namespace {

struct HttpResult {
  int status = 0;  // 0: no answer
  std::string body;
  event_base* base = nullptr;
};

void on_response(evhttp_request* request, void* arg) {
  auto* result = static_cast<HttpResult*>(arg);
  if (request) {
    result->status = evhttp_request_get_response_code(request);
    evbuffer* in = evhttp_request_get_input_buffer(request);
    result->body.resize(evbuffer_get_length(in));
    evbuffer_remove(in, result->body.data(), result->body.size());
  }
  event_base_loopexit(result->base, nullptr);  // don't wait for the idle keep-alive connection
}

// One request on a private loop (a CLI may block).
HttpResult request(const std::string& endpoint, evhttp_cmd_type method, const std::string& path,
                   const std::string& token) {
  HttpResult result;
  auto address = parse_socket_address(endpoint);
  if (!address) return result;
  std::unique_ptr<event_base, decltype(&event_base_free)> base(event_base_new(), event_base_free);
  result.base = base.get();
  evhttp_connection* conn = evhttp_connection_base_new(base.get(), nullptr, address->host().c_str(), address->port());
  evhttp_connection_set_timeout(conn, 10);
  evhttp_request* req = evhttp_request_new(on_response, &result);
  evkeyvalq* headers = evhttp_request_get_output_headers(req);
  evhttp_add_header(headers, "Host", endpoint.c_str());
  evhttp_add_header(headers, "Connection", "close");
  std::string auth = "Bearer " + token;
  evhttp_add_header(headers, "Authorization", auth.c_str());
  if (evhttp_make_request(conn, req, method, path.c_str()) == 0) event_base_dispatch(base.get());
  evhttp_connection_free(conn);
  return result;
}

std::string url_encode(const std::string& text) {
  char* encoded = evhttp_uriencode(text.c_str(), static_cast<ev_ssize_t>(text.size()), 0);
  std::string out = encoded ? encoded : "";
  free(encoded);
  return out;
}

// The endpoints and token to use: --proxy/--token(-file), else the config file's [admin].
bool resolve(AdminOptions& o) {
  if (!o.token_file.empty()) {
    std::ifstream in(o.token_file);
    if (!std::getline(in, o.token)) {
      std::fprintf(stderr, "basaltctl: cannot read token file %s\n", o.token_file.c_str());
      return false;
    }
  }
  if (!o.proxies.empty() && !o.token.empty()) return true;
  auto config = proxy::load_proxy_config(o.config_path);
  if (!config || !config->admin.enabled) {
    std::fprintf(stderr, "basaltctl: give --proxy and --token, or a config with an [admin] table (%s)\n",
                 config ? o.config_path.c_str() : config.error().message.c_str());
    return false;
  }
  if (o.proxies.empty()) o.proxies.push_back(config->admin.address_text);
  if (o.token.empty()) o.token = config->admin.token;
  return true;
}

bool answered(const std::string& proxy, const HttpResult& r) {
  if (r.status == 200) return true;
  if (r.status == 0) std::fprintf(stderr, "basaltctl: %s: no answer\n", proxy.c_str());
  else std::fprintf(stderr, "basaltctl: %s: HTTP %d %s", proxy.c_str(), r.status, r.body.c_str());
  return false;
}

}  // namespace

int run_sessions(const AdminOptions& options) {
  AdminOptions o = options;
  if (!resolve(o)) return 3;
  int rc = 0;
  nlohmann::json all = nlohmann::json::array();
  for (const auto& proxy : o.proxies) {
    std::string path = "/sessions" + (o.user.empty() ? "" : "?user=" + url_encode(o.user));
    HttpResult r = request(proxy, EVHTTP_REQ_GET, path, o.token);
    if (!answered(proxy, r)) {
      rc = 2;
      continue;
    }
    for (auto s : nlohmann::json::parse(r.body, nullptr, false).value("sessions", nlohmann::json::array())) {
      s["proxy"] = proxy;
      all.push_back(s);
    }
  }
  if (o.json) {
    std::printf("%s\n", all.dump(2).c_str());
    return rc;
  }
  std::printf("%-21s %-16s %-6s %-24s %-6s %-14s %10s\n", "PROXY", "USER", "PROTO", "CLIENT", "SHARD", "STATE", "AGE_S");
  for (const auto& s : all) {
    std::printf("%-21s %-16s %-6s %-24s %-6s %-14s %10.1f\n", s.value("proxy", "").c_str(), s.value("user", "").c_str(),
                s.value("protocol", "").c_str(), s.value("client", "").c_str(), s.value("shard", "").c_str(),
                s.value("state", "").c_str(), s.value("age_ms", 0) / 1000.0);
  }
  return rc;
}

int run_kick(const AdminOptions& options) {
  AdminOptions o = options;
  if (o.user.empty() || !resolve(o)) return 3;
  int rc = 0;
  size_t total = 0;
  for (const auto& proxy : o.proxies) {
    HttpResult r = request(proxy, EVHTTP_REQ_POST, "/kick?user=" + url_encode(o.user), o.token);
    if (!answered(proxy, r)) {
      rc = 2;
      continue;
    }
    size_t kicked = nlohmann::json::parse(r.body, nullptr, false).value("kicked", 0);
    total += kicked;
    std::printf("%s: %zu session(s) of %s ended\n", proxy.c_str(), kicked, o.user.c_str());
  }
  std::printf("total: %zu\n", total);
  return rc;
}

}  // namespace basalt::ctl
