#include "backend/imap_server.h"

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <sys/socket.h>

#include "backend/imap_session.h"
#include "common/log.h"
#include "common/net.h"

namespace basalt::store {

ImapServer::ImapServer(event_base* base, const StoreConfig& config, MailboxHub& hub, ThreadPool& pool)
    : base_(base), config_(config), hub_(hub), pool_(pool), tasks_(base) {
  reap_ = evtimer_new(base_, on_reap, this);
}

ImapServer::~ImapServer() {
  if (listener_) evconnlistener_free(listener_);
  sessions_.clear();
  closed_.clear();
  if (reap_) event_free(reap_);
}

Result<void> ImapServer::listen(evutil_socket_t listen_fd) {
  listener_ = evconnlistener_new(base_, on_accept, this, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 0, listen_fd);
  if (!listener_) return make_error("evconnlistener_new failed");
  return {};
}

void ImapServer::post(uint64_t id, std::function<void(ImapSession&)> fn) {
  tasks_.post([this, id, fn = std::move(fn)] {
    auto it = sessions_.find(id);
    if (it != sessions_.end()) fn(*it->second);
  });
}

void ImapServer::on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int len, void* arg) {
  auto* self = static_cast<ImapServer*>(arg);
  SocketAddress peer = SocketAddress::from(addr, static_cast<socklen_t>(len));
  if (self->sessions_.size() >= self->config_.imap.max_connections) {
    static constexpr std::string_view kBusy = "* BYE [UNAVAILABLE] Too many connections\r\n";
    [[maybe_unused]] auto n = ::send(fd, kBusy.data(), kBusy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    evutil_closesocket(fd);
    logger("store")->warn("imap connection from {} refused: too many connections", peer.to_string());
    return;
  }
  evutil_make_socket_nonblocking(fd);
  bufferevent* bev = bufferevent_socket_new(self->base_, fd, BEV_OPT_CLOSE_ON_FREE);
  if (!bev) {
    evutil_closesocket(fd);
    return;
  }
  uint64_t id = self->next_id_++;
  auto session = std::make_unique<ImapSession>(*self, id, bev, peer);
  ImapSession* s = session.get();
  self->sessions_.emplace(id, std::move(session));
  s->start();
}

void ImapServer::close_session(uint64_t id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  closed_.push_back(std::move(it->second));
  sessions_.erase(it);
  timeval zero{0, 0};
  evtimer_add(reap_, &zero);
}

void ImapServer::on_reap(evutil_socket_t, short, void* arg) { static_cast<ImapServer*>(arg)->closed_.clear(); }

}  // namespace basalt::store
