#include "proxy/admin_http.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>

#include <cstring>

namespace basalt::proxy {

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
  std::string m;
  m += "# HELP basalt_sessions Open client connections.\n# TYPE basalt_sessions gauge\n";
  m += "basalt_sessions " + get(stats_.sessions) + "\n";
  m += "# HELP basalt_sessions_proxying Logged-in sessions relaying to a shard.\n# TYPE basalt_sessions_proxying gauge\n";
  m += "basalt_sessions_proxying " + get(stats_.sessions_proxying) + "\n";
  m += "# TYPE basalt_sessions_total counter\nbasalt_sessions_total " + get(stats_.sessions_total) + "\n";
  m += "# HELP basalt_logins_total Login attempts by result.\n# TYPE basalt_logins_total counter\n";
  m += "basalt_logins_total{result=\"ok\"} " + get(stats_.logins_ok) + "\n";
  m += "basalt_logins_total{result=\"bad_credentials\"} " + get(stats_.logins_bad_credentials) + "\n";
  m += "basalt_logins_total{result=\"unavailable\"} " + get(stats_.logins_unavailable) + "\n";
  m += "basalt_logins_total{result=\"refused\"} " + get(stats_.logins_refused) + "\n";
  m += "# TYPE basalt_backend_errors_total counter\nbasalt_backend_errors_total " + get(stats_.backend_errors) + "\n";
  m += "# TYPE basalt_relayed_bytes_total counter\n";
  m += "basalt_relayed_bytes_total{direction=\"client_to_backend\"} " + get(stats_.bytes_client_to_backend) + "\n";
  m += "basalt_relayed_bytes_total{direction=\"backend_to_client\"} " + get(stats_.bytes_backend_to_client) + "\n";
  return m;
}

void AdminHttp::on_request(evhttp_request* request, void* arg) {
  auto* self = static_cast<AdminHttp*>(arg);
  evbuffer* body = evbuffer_new();
  if (!self->authorized(request)) {
    evhttp_add_header(evhttp_request_get_output_headers(request), "WWW-Authenticate", "Bearer");
    evbuffer_add_printf(body, "bearer token required\n");
    evhttp_send_reply(request, 401, "Unauthorized", body);
  } else {
    std::string path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(request)) ?: "";
    if (path == "/health") {
      evbuffer_add_printf(body, "ok\n");
      evhttp_send_reply(request, 200, "OK", body);
    } else if (path == "/metrics") {
      std::string text = self->metrics();
      evhttp_add_header(evhttp_request_get_output_headers(request), "Content-Type", "text/plain; version=0.0.4");
      evbuffer_add(body, text.data(), text.size());
      evhttp_send_reply(request, 200, "OK", body);
    } else {
      evhttp_send_reply(request, 404, "Not Found", body);
    }
  }
  evbuffer_free(body);
}

}  // namespace basalt::proxy
