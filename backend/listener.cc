#include "backend/listener.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "common/log.h"

namespace basalt::store {

Connection::Connection(Listener& listener, uint64_t id, bufferevent* bev, const SocketAddress& peer)
    : listener_(listener), id_(id), fd_(bufferevent_getfd(bev)), bev_(bev), peer_(peer) {}

Connection::~Connection() {
  if (bev_) bufferevent_free(bev_);
  if (!tls_) evutil_closesocket(fd_);
}

bool Connection::start_tls(ssl_ctx_st* ctx) {
  SSL* ssl = SSL_new(ctx);
  if (!ssl) return false;
  bufferevent_free(bev_);  // plaintext: leaves the socket open
  // A socket-level TLS bufferevent (not a filter): its output buffer is the one the client
  // drains, so output caps and watermarks keep their meaning. It owns the socket from here.
  bev_ = bufferevent_openssl_socket_new(listener_.base(), fd_, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
  tls_ = true;
  if (!bev_) {
    // Left without a bufferevent: the caller closes the session (release() and the destructor
    // accept a null bev_), so nothing can write to a socket that is gone.
    SSL_free(ssl);
    evutil_closesocket(fd_);
    return false;
  }
  bufferevent_openssl_set_allow_dirty_shutdown(bev_, 1);
  return true;
}

void Connection::set_timeouts(unsigned seconds) {
  timeval tv{static_cast<time_t>(seconds), 0};
  bufferevent_set_timeouts(bev_, seconds ? &tv : nullptr, seconds ? &tv : nullptr);
}

void Connection::release() {
  closing_ = true;
  if (bev_) {
    bufferevent_setcb(bev_, nullptr, nullptr, nullptr, nullptr);
    bufferevent_disable(bev_, EV_READ | EV_WRITE);
  }
  listener_.release(id_);
}

Listener::Listener(event_base* base, ListenerOptions options, Factory factory)
    : base_(base), options_(std::move(options)), factory_(std::move(factory)), tasks_(base),
      reap_(evtimer_new(base_, on_reap, this)) {}

Listener::~Listener() = default;

Result<void> Listener::listen(evutil_socket_t listen_fd) {
  listener_.reset(evconnlistener_new(base_, on_accept, this, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 0, listen_fd));
  if (!listener_) {
    evutil_closesocket(listen_fd);
    return make_error(options_.name + ": evconnlistener_new failed");
  }
  return {};
}

void Listener::on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int len, void* arg) {
  auto* self = static_cast<Listener*>(arg);
  SocketAddress peer = SocketAddress::from(addr, static_cast<socklen_t>(len));
  if (self->sessions_.size() >= self->options_.max_connections) {
    // Best effort and non-blocking: a refused client must not cost the loop anything.
    const std::string& line = self->options_.refusal;
    [[maybe_unused]] auto n = ::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    evutil_closesocket(fd);
    logger("store")->warn("{}: connection from {} refused: too many connections", self->options_.name,
                          peer.to_string());
    return;
  }
  evutil_make_socket_nonblocking(fd);
  // Without CLOSE_ON_FREE: STARTTLS swaps the bufferevent for a TLS one on the same socket.
  bufferevent* bev = bufferevent_socket_new(self->base_, fd, 0);
  if (!bev) {
    evutil_closesocket(fd);
    return;
  }
  uint64_t id = self->next_id_++;
  auto session = self->factory_(*self, id, bev, peer);
  Connection* c = session.get();
  self->sessions_.emplace(id, std::move(session));
  c->start();
}

void Listener::post(uint64_t id, std::function<void(Connection&)> fn) {
  tasks_.post([this, id, fn = std::move(fn)] {
    auto it = sessions_.find(id);
    if (it != sessions_.end() && !it->second->closing()) fn(*it->second);
  });
}

void Listener::release(uint64_t id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  closed_.push_back(std::move(it->second));
  sessions_.erase(it);
  timeval zero{0, 0};
  evtimer_add(reap_.get(), &zero);
}

void Listener::on_reap(evutil_socket_t, short, void* arg) { static_cast<Listener*>(arg)->closed_.clear(); }

}  // namespace basalt::store
