#include "proxy/admin_http.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>

#include <cstring>

#include <nlohmann/json.hpp>

#include "proxy/worker.h"

namespace basalt::proxy {

// One request waiting for the workers' answers; `request` becomes null if the client goes away.
struct AdminHttp::Pending {
  evhttp_request* request = nullptr;
  evhttp_connection* connection = nullptr;
  size_t waiting = 0;
  nlohmann::json parts = nlohmann::json::array();
};

namespace {

void reply(evhttp_request* request, int code, const char* reason, const std::string& body, const char* type) {
  evbuffer* buffer = evbuffer_new();
  evbuffer_add(buffer, body.data(), body.size());
  evhttp_add_header(evhttp_request_get_output_headers(request), "Content-Type", type);
  evhttp_send_reply(request, code, reason, buffer);
  evbuffer_free(buffer);
}

std::string query_value(evhttp_request* request, const char* key) {
  const char* query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(request));
  if (!query) return {};
  evkeyvalq params;
  if (evhttp_parse_query_str(query, &params) != 0) return {};
  const char* value = evhttp_find_header(&params, key);
  std::string out = value ? value : "";
  evhttp_clear_headers(&params);
  return out;
}

nlohmann::json to_json(const SessionInfo& i) {
  return {{"id", i.id},       {"protocol", i.protocol}, {"user", i.user},         {"client", i.client},
          {"shard", i.shard}, {"state", i.state},       {"tls", i.tls},           {"age_ms", i.age_ms},
          {"bytes_in", i.bytes_in}, {"bytes_out", i.bytes_out}};
}

}  // namespace

Result<void> AdminHttp::start(event_base* base) {
  http_.reset(evhttp_new(base));
  if (!http_) return make_error("evhttp_new failed");
  evhttp_set_allowed_methods(http_.get(), EVHTTP_REQ_GET | EVHTTP_REQ_POST);
  evhttp_set_gencb(http_.get(), on_request, this);
  evhttp_set_max_headers_size(http_.get(), 8192);
  evhttp_set_max_body_size(http_.get(), 65536);
  if (evhttp_bind_socket_with_handle(http_.get(), config_.address.host().c_str(), config_.address.port()) == nullptr) {
    return make_error("admin: cannot listen on " + config_.address_text);
  }
  return {};
}

bool AdminHttp::authorized(evhttp_request* request) const {
  const char* header = evhttp_find_header(evhttp_request_get_input_headers(request), "Authorization");
  if (!header) return false;
  std::string expected = "Bearer " + config_.token;
  return std::strlen(header) == expected.size() && CRYPTO_memcmp(header, expected.data(), expected.size()) == 0;
}

std::string AdminHttp::metrics() const {
  auto get = [](const auto& counter) { return std::to_string(counter.load(std::memory_order_relaxed)); };
  const char* protocols[] = {"imap", "pop3"};
  std::string m;
  m += "# HELP basalt_sessions Open client connections.\n# TYPE basalt_sessions gauge\n";
  m += "basalt_sessions " + get(stats_.sessions) + "\n";
  m += "# HELP basalt_sessions_proxying Logged-in sessions relaying to a shard.\n# TYPE basalt_sessions_proxying gauge\n";
  m += "basalt_sessions_proxying " + get(stats_.sessions_proxying) + "\n";
  m += "# HELP basalt_connections Open client connections by protocol and state.\n# TYPE basalt_connections gauge\n";
  for (size_t p = 0; p < 2; ++p) {
    auto open = stats_.open_by_protocol[p].load(), proxying = stats_.proxying_by_protocol[p].load();
    m += std::string("basalt_connections{protocol=\"") + protocols[p] + "\",state=\"pre_auth\"} " +
         std::to_string(open - proxying) + "\n";
    m += std::string("basalt_connections{protocol=\"") + protocols[p] + "\",state=\"proxying\"} " +
         std::to_string(proxying) + "\n";
  }
  m += "# TYPE basalt_sessions_total counter\nbasalt_sessions_total " + get(stats_.sessions_total) + "\n";
  m += "# HELP basalt_logins_total Login attempts by result.\n# TYPE basalt_logins_total counter\n";
  m += "basalt_logins_total{result=\"ok\"} " + get(stats_.logins_ok) + "\n";
  m += "basalt_logins_total{result=\"bad_credentials\"} " + get(stats_.logins_bad_credentials) + "\n";
  m += "basalt_logins_total{result=\"unavailable\"} " + get(stats_.logins_unavailable) + "\n";
  m += "basalt_logins_total{result=\"refused\"} " + get(stats_.logins_refused) + "\n";
  m += "# HELP basalt_directory_seconds Directory round trip per login attempt.\n";
  m += "# TYPE basalt_directory_seconds histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= Stats::kLatencyBuckets.size(); ++i) {
    cumulative += stats_.directory_latency[i].load(std::memory_order_relaxed);
    std::string le = i < Stats::kLatencyBuckets.size() ? std::to_string(Stats::kLatencyBuckets[i] / 1000) : "+Inf";
    m += "basalt_directory_seconds_bucket{le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  m += "basalt_directory_seconds_sum " + std::to_string(stats_.directory_latency_sum_us.load() / 1e6) + "\n";
  m += "basalt_directory_seconds_count " + std::to_string(cumulative) + "\n";
  m += "# TYPE basalt_backend_errors_total counter\nbasalt_backend_errors_total " + get(stats_.backend_errors) + "\n";
  m += "# HELP basalt_shard_errors_total Failed shard connections or logins, by shard.\n";
  m += "# TYPE basalt_shard_errors_total counter\n";
  for (const auto& [shard, n] : stats_.shard_error_counts()) {
    m += "basalt_shard_errors_total{shard=\"" + shard + "\"} " + std::to_string(n) + "\n";
  }
  m += "# HELP basalt_shard_warm_connections_total Logins that took a warm shard connection (used) or found none "
       "(missed); warm connections that broke (failed) or aged out unused (expired).\n";
  m += "# TYPE basalt_shard_warm_connections_total counter\n";
  for (auto [result, counter] : {std::pair{"used", &stats_.warm_used}, std::pair{"missed", &stats_.warm_missed},
                                 std::pair{"failed", &stats_.warm_failed}, std::pair{"expired", &stats_.warm_expired}}) {
    m += std::string("basalt_shard_warm_connections_total{result=\"") + result + "\"} " + get(*counter) + "\n";
  }
  m += "# TYPE basalt_relayed_bytes_total counter\n";
  m += "basalt_relayed_bytes_total{direction=\"client_to_backend\"} " + get(stats_.bytes_client_to_backend) + "\n";
  m += "basalt_relayed_bytes_total{direction=\"backend_to_client\"} " + get(stats_.bytes_backend_to_client) + "\n";
  return m;
}

void AdminHttp::on_request(evhttp_request* request, void* arg) {
  auto* self = static_cast<AdminHttp*>(arg);
  if (!self->authorized(request)) {
    evhttp_add_header(evhttp_request_get_output_headers(request), "WWW-Authenticate", "Bearer");
    return reply(request, 401, "Unauthorized", "bearer token required\n", "text/plain");
  }
  const char* raw_path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(request));
  std::string path = raw_path ? raw_path : "";
  bool get = evhttp_request_get_command(request) == EVHTTP_REQ_GET;
  bool post = evhttp_request_get_command(request) == EVHTTP_REQ_POST;
  if (get && path == "/health") return reply(request, 200, "OK", "ok\n", "text/plain");
  if (get && path == "/metrics") return reply(request, 200, "OK", self->metrics(), "text/plain; version=0.0.4");
  if (get && path == "/sessions") return self->list_sessions(request, query_value(request, "user"));
  if (post && path == "/kick") {
    std::string user = query_value(request, "user");
    if (user.empty()) return reply(request, 400, "Bad Request", "{\"error\":\"user= is required\"}\n", "application/json");
    return self->kick(request, user);
  }
  reply(request, 404, "Not Found", "not found\n", "text/plain");
}

std::shared_ptr<AdminHttp::Pending> AdminHttp::track(evhttp_request* request) {
  auto pending = std::make_shared<Pending>();
  pending->request = request;
  pending->connection = evhttp_request_get_connection(request);
  pending->waiting = workers_.size();
  pending_[pending->connection] = pending;
  evhttp_connection_set_closecb(pending->connection, on_connection_closed, this);
  return pending;
}

void AdminHttp::on_connection_closed(evhttp_connection* connection, void* arg) {
  auto* self = static_cast<AdminHttp*>(arg);
  auto it = self->pending_.find(connection);
  if (it == self->pending_.end()) return;
  it->second->request = nullptr;  // the answer, when it comes, goes nowhere
  self->pending_.erase(it);
}

void AdminHttp::finish(const std::shared_ptr<Pending>& pending, const std::string& json) {
  if (!pending->request) return;
  evhttp_connection_set_closecb(pending->connection, nullptr, nullptr);
  pending_.erase(pending->connection);
  reply(pending->request, 200, "OK", json + "\n", "application/json");
}

void AdminHttp::list_sessions(evhttp_request* request, const std::string& user) {
  auto pending = track(request);
  for (Worker* worker : workers_) {
    worker->post([this, worker, pending, user] {
      nlohmann::json part = nlohmann::json::array();
      for (const auto& info : worker->sessions(user)) part.push_back(to_json(info));
      main_tasks_.post([this, pending, part = std::move(part)] {
        for (const auto& session : part) pending->parts.push_back(session);
        if (--pending->waiting == 0) finish(pending, nlohmann::json{{"sessions", pending->parts}}.dump());
      });
    });
  }
}

void AdminHttp::kick(evhttp_request* request, const std::string& user) {
  auto pending = track(request);
  for (Worker* worker : workers_) {
    worker->post([this, worker, pending, user] {
      size_t kicked = worker->kick_user(user, "Disconnected by the administrator.");
      main_tasks_.post([this, pending, user, kicked] {
        pending->parts.push_back(kicked);
        if (--pending->waiting > 0) return;
        size_t total = 0;
        for (const auto& n : pending->parts) total += n.get<size_t>();
        finish(pending, nlohmann::json{{"user", user}, {"kicked", total}}.dump());
      });
    });
  }
}

}  // namespace basalt::proxy
