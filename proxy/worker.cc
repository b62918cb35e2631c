#include "proxy/worker.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/proxy_protocol.h"
#include "directory/directory_config.h"
#include "proxy/imap_session.h"
#include "proxy/pop3_session.h"

namespace basalt::proxy {

Worker::Worker(unsigned index, std::shared_ptr<const ProxyConfig> config, std::shared_ptr<const TlsContexts> tls,
               Stats& stats, ClientLimits& limits, AuthCache& auth_cache, ThreadPool& pool)
    : index_(index),
      config_(std::move(config)),
      tls_(std::move(tls)),
      stats_(stats),
      limits_(limits),
      auth_cache_(auth_cache),
      pool_(pool) {}

Worker::~Worker() {
  if (thread_.joinable()) {
    stop();
    join();
  }
  while (!header_waits_.empty()) drop_header_wait(header_waits_.begin()->first, true);
  for (auto& [id, session] : sessions_) graveyard_.push_back(std::move(session));
  sessions_.clear();
  graveyard_.clear();
  for (auto& a : acceptors_) {
    if (a->listener) evconnlistener_free(a->listener);
  }
  directory_.reset();  // before the loop it runs on
  shard_pool_.reset();
  retired_directories_.clear();
  if (reaper_) event_free(reaper_);
  tasks_.reset();
}

Result<void> Worker::init(const std::vector<ListenSocket>& sockets) {
  // The changelist folds the enable/disable pairs of one loop iteration into one epoll_ctl.
  std::unique_ptr<event_config, decltype(&event_config_free)> cfg(event_config_new(), event_config_free);
  event_config_set_flag(cfg.get(), EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
  base_.reset(event_base_new_with_config(cfg.get()));
  if (!base_) return make_error("event_base_new failed");
  reaper_ = event_new(base_.get(), -1, 0, on_reap, this);
  tasks_ = std::make_unique<LoopTasks>(base_.get());
  directory_ = directory::make_directory(config_->directory, base_.get(), offload());
  if (!directory_) return make_error("cannot create the directory");
  shard_pool_ = std::make_unique<ShardPool>(base_.get(), stats_);
  shard_pool_->configure(config_, tls_);
  for (const auto& socket : sockets) {
    auto acceptor = std::make_unique<Acceptor>();
    acceptor->worker = this;
    acceptor->protocol = socket.protocol;
    acceptor->proxy_protocol = socket.proxy_protocol;
    acceptor->address.length = sizeof acceptor->address.storage;
    getsockname(socket.fd, reinterpret_cast<sockaddr*>(&acceptor->address.storage), &acceptor->address.length);
    std::string host = acceptor->address.host();
    acceptor->wildcard = host == "0.0.0.0" || host == "::";
    // The listening socket is shared by all workers: whichever loop wakes first accepts.
    acceptor->listener = evconnlistener_new(base_.get(), on_accept, acceptor.get(), LEV_OPT_REUSEABLE, 0, socket.fd);  // 0: already listening (main's backlog stands)
    if (!acceptor->listener) return make_error("evconnlistener_new failed");
    acceptors_.push_back(std::move(acceptor));
  }
  return {};
}

void Worker::start() {
  thread_ = std::thread([this] {
    event_base_dispatch(base_.get());
    logger("proxy")->debug("worker {} stopped", index_);
  });
}

void Worker::stop() {
  post([this] {
    for (auto& a : acceptors_) evconnlistener_disable(a->listener);
    shard_pool_->stop();
    std::vector<uint64_t> ids;
    for (const auto& [id, session] : sessions_) ids.push_back(id);
    for (uint64_t id : ids) {
      if (Session* s = find(id)) s->close("proxy shutting down");
    }
    graveyard_.clear();
    event_base_loopexit(base_.get(), nullptr);
  });
}

std::vector<SessionInfo> Worker::sessions(const std::string& user) const {
  std::vector<SessionInfo> out;
  for (const auto& [id, session] : sessions_) {
    if (user.empty() || session->user() == user) out.push_back(session->info());
  }
  return out;
}

size_t Worker::kick_user(const std::string& user, const std::string& text) {
  std::vector<uint64_t> ids;
  for (const auto& [id, session] : sessions_) {
    if (session->user() == user && session->state() != State::kClosing) ids.push_back(id);
  }
  for (uint64_t id : ids) find(id)->kick(text, "kicked by administrator");
  return ids.size();
}

void Worker::begin_drain() {
  for (auto& a : acceptors_) evconnlistener_disable(a->listener);
  shard_pool_->stop();
  std::vector<uint64_t> ids;
  for (const auto& [id, session] : sessions_) {
    if (session->state() != State::kProxying) ids.push_back(id);
  }
  for (uint64_t id : ids) find(id)->kick("Server shutting down.", "draining");
}

void Worker::kick_all(const std::string& text) {
  std::vector<uint64_t> ids;
  for (const auto& [id, session] : sessions_) ids.push_back(id);
  for (uint64_t id : ids) {
    if (Session* s = find(id)) s->kick(text, "drain timeout");
  }
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

std::span<char> Worker::relay_scratch() {
  constexpr size_t kScratch = 256 * 1024;
  if (!relay_scratch_) relay_scratch_ = std::make_unique_for_overwrite<char[]>(kScratch);
  return {relay_scratch_.get(), kScratch};
}

Session* Worker::find(uint64_t id) {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : it->second.get();
}

void Worker::retire(uint64_t id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  graveyard_.push_back(std::move(it->second));
  sessions_.erase(it);
  event_active(reaper_, EV_TIMEOUT, 0);
}

void Worker::on_reap(evutil_socket_t, short, void* arg) {
  auto* w = static_cast<Worker*>(arg);
  w->graveyard_.clear();
  // Here, not in retire(): a directory may not be destroyed from inside its own callback.
  std::erase_if(w->retired_directories_, [](const auto& d) { return d->pending() == 0; });
}

void Worker::reload(std::shared_ptr<const ProxyConfig> config, std::shared_ptr<const TlsContexts> tls) {
  config_ = std::move(config);
  tls_ = std::move(tls);
  retired_directories_.push_back(std::move(directory_));
  directory_ = directory::make_directory(config_->directory, base_.get(), offload());
  shard_pool_->configure(config_, tls_);
  event_active(reaper_, EV_TIMEOUT, 0);
}

void Worker::on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int len, void* arg) {
  auto* acceptor = static_cast<Acceptor*>(arg);
  Worker* w = acceptor->worker;
  SocketAddress peer = SocketAddress::from(addr, static_cast<socklen_t>(len));
  SocketAddress local = acceptor->address;  // a specific address needs no getsockname() per connection
  if (acceptor->wildcard) {
    local.length = sizeof local.storage;
    getsockname(fd, reinterpret_cast<sockaddr*>(&local.storage), &local.length);
  }
  if (!acceptor->proxy_protocol) return w->start_session(fd, acceptor->protocol, peer, local);
  if (!w->config_->trusted_load_balancers.contains(peer)) {
    // Only a trusted balancer may tell us who the client is.
    logger("proxy")->warn("PROXY protocol listener: connection from untrusted {} refused", peer.to_string());
    evutil_closesocket(fd);
    return;
  }
  w->wait_for_header(fd, acceptor->protocol, peer, local);
}

void Worker::start_session(evutil_socket_t fd, Protocol protocol, const SocketAddress& peer,
                           const SocketAddress& local) {
  // Session ids are unique per process and stay short in logs.
  uint64_t id = next_id_++ * config_->workers + index_;
  std::unique_ptr<Session> session;
  if (is_imap(protocol)) {
    session = std::make_unique<ImapSession>(*this, id, protocol, fd, peer, local);
  } else {
    session = std::make_unique<Pop3Session>(*this, id, protocol, fd, peer, local);
  }
  Session* raw = session.get();
  sessions_.emplace(id, std::move(session));
  raw->start();
}

void Worker::wait_for_header(evutil_socket_t fd, Protocol protocol, const SocketAddress& peer,
                             const SocketAddress& local) {
  auto wait = std::make_unique<HeaderWait>(HeaderWait{this, fd, protocol, peer, local});
  wait->readable = event_new(base_.get(), fd, EV_READ | EV_PERSIST, on_header_event, wait.get());
  wait->timeout = evtimer_new(base_.get(), on_header_event, wait.get());
  timeval limit{5, 0};
  event_add(wait->readable, nullptr);
  evtimer_add(wait->timeout, &limit);
  header_waits_.emplace(wait.get(), std::move(wait));
}

void Worker::drop_header_wait(HeaderWait* wait, bool close_fd) {
  event_free(wait->readable);
  event_free(wait->timeout);
  if (close_fd) evutil_closesocket(wait->fd);
  header_waits_.erase(wait);
}

// Peeks, so that nothing behind the header (a TLS ClientHello, a pipelined command) is taken
// from the socket; then consumes exactly the header.
void Worker::on_header_event(evutil_socket_t fd, short what, void* arg) {
  auto* wait = static_cast<HeaderWait*>(arg);
  Worker* w = wait->worker;
  if (what & EV_TIMEOUT) {
    logger("proxy")->info("PROXY protocol header from {} did not arrive in time", wait->peer.to_string());
    return w->drop_header_wait(wait, true);
  }
  char buf[proxy_protocol::kMaxV2Length];
  ssize_t n = recv(fd, buf, sizeof buf, MSG_PEEK);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  proxy_protocol::Header header;
  std::string error = n <= 0 ? "connection closed" : "";
  auto status = n <= 0 ? proxy_protocol::Status::kError
                       : proxy_protocol::parse(std::string_view(buf, static_cast<size_t>(n)), header, error);
  if (status == proxy_protocol::Status::kNeedMore) return;
  if (status == proxy_protocol::Status::kError || recv(fd, buf, header.length, 0) != static_cast<ssize_t>(header.length)) {
    logger("proxy")->info("PROXY protocol from {}: {}", wait->peer.to_string(), error.empty() ? "read failed" : error);
    return w->drop_header_wait(wait, true);
  }
  SocketAddress peer = header.source ? *header.source : wait->peer;
  SocketAddress local = header.destination ? *header.destination : wait->local;
  Protocol protocol = wait->protocol;
  w->drop_header_wait(wait, false);
  w->start_session(fd, protocol, peer, local);
}

}  // namespace basalt::proxy
