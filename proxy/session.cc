#include "proxy/session.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <cstring>

#include "common/log.h"
#include "common/sasl.h"
#include "proxy/shard_map.h"
#include "proxy/shard_pool.h"
#include "proxy/worker.h"

namespace basalt::proxy {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr size_t kPreAuthOutputCap = 64 * 1024;
constexpr size_t kPendingInputCap = 64 * 1024;

std::string describe_event(bufferevent* bev, short what) {
  if (what & BEV_EVENT_EOF) return "connection closed";
  if (unsigned long ssl_error = bufferevent_get_openssl_error(bev)) {
    char buf[256];
    ERR_error_string_n(ssl_error, buf, sizeof buf);
    return std::string("TLS error: ") + buf;
  }
  int err = EVUTIL_SOCKET_ERROR();
  if (err != 0) return evutil_socket_error_to_string(err);
  return "connection error";
}

// Writes at once when nothing is queued on a plain socket: a reply the socket takes whole costs
// no EPOLLOUT round (epoll_ctl, a loop iteration, epoll_ctl again). The rest queues as usual.
void write_through(bufferevent* bev, bool plain, std::string_view text) {
  if (plain && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
    ssize_t sent = ::send(bufferevent_getfd(bev), text.data(), text.size(), MSG_NOSIGNAL);
    if (sent > 0) text.remove_prefix(static_cast<size_t>(sent));
    if (text.empty()) return;
  }
  bufferevent_write(bev, text.data(), text.size());
}

}  // namespace

void Session::free_bufferevent(bufferevent*& bev) {
  if (!bev) return;
  bufferevent_setcb(bev, nullptr, nullptr, nullptr, nullptr);
  bufferevent_disable(bev, EV_READ | EV_WRITE);
  bufferevent_free(bev);
  bev = nullptr;
}

const char* to_string(State state) {
  switch (state) {
    case State::kTlsHandshake: return "tls-handshake";
    case State::kPreAuth: return "pre-auth";
    case State::kAuthenticating: return "authenticating";
    case State::kFailureDelay: return "failure-delay";
    case State::kBackendLogin: return "backend-login";
    case State::kProxying: return "proxying";
    case State::kClosing: return "closing";
  }
  return "?";
}

FailureReply failure_reply(LoginFailure failure) {
  switch (failure) {
    case LoginFailure::kBadCredentials: return {"AUTHENTICATIONFAILED", "AUTH", "Authentication failed."};
    case LoginFailure::kAuthzRefused: return {"AUTHORIZATIONFAILED", "AUTH", "Authorization failed."};
    case LoginFailure::kPrivacyRequired:
      return {"PRIVACYREQUIRED", "AUTH", "Plaintext authentication disallowed on non-secure (SSL/TLS) connections."};
    case LoginFailure::kDirectoryDown:
      return {"UNAVAILABLE", "SYS/TEMP", "Authentication service is temporarily unavailable, try again later."};
    case LoginFailure::kAccountUnavailable:
      return {"UNAVAILABLE", "SYS/TEMP", "Account is temporarily unavailable, try again later."};
    case LoginFailure::kNoShard:
    case LoginFailure::kBackendDown:
    case LoginFailure::kBackendRejected:
      return {"UNAVAILABLE", "SYS/TEMP", "Mail server is temporarily unavailable, try again later."};
    case LoginFailure::kProxyLoop: return {"UNAVAILABLE", "SYS/TEMP", "Proxy loop detected."};
    case LoginFailure::kTooManySessions: return {"LIMIT", "IN-USE", "Too many sessions for this user."};
  }
  return {"UNAVAILABLE", "SYS/TEMP", "Temporary failure."};
}

Session::Session(Worker& worker, uint64_t id, Protocol protocol, evutil_socket_t fd, const SocketAddress& peer,
                 const SocketAddress& local)
    : worker_(worker),
      config_snapshot_(worker.config()),
      tls_(worker.tls()),
      config_(*config_snapshot_),
      protocol_(protocol),
      local_(local),
      id_(id),
      peer_(peer) {
  origin_.ip = peer.host();
  origin_.port = peer.port();
  trusted_ = config_.trusted_networks.contains(peer);
  if (!trusted_) {
    holds_connection_slot_ = worker.limits().acquire_connection(origin_.ip);
    over_connection_limit_ = !holds_connection_slot_;
  }
  started_ = last_activity_ = steady_clock::now();
  timer_ = evtimer_new(worker.base(), on_timer, this);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (is_implicit_tls(protocol)) {
    client_ = new_tls_client(fd);  // owns fd from here
    state_ = State::kTlsHandshake;
  } else {
    // Without CLOSE_ON_FREE: STARTTLS swaps this bufferevent for a TLS one on the same socket.
    client_ = bufferevent_socket_new(worker.base(), fd, BEV_OPT_DEFER_CALLBACKS);
    if (client_) client_fd_ = fd;
  }
  if (!client_) evutil_closesocket(fd);  // and client_fd_ stays -1
  worker_.stats().sessions.fetch_add(1, std::memory_order_relaxed);
  worker_.stats().open_by_protocol[is_imap(protocol_) ? 0 : 1].fetch_add(1, std::memory_order_relaxed);
  Stats::add(worker_.stats().sessions_total);
}

Session::~Session() {
  if (holds_connection_slot_) worker_.limits().release_connection(peer_.host());
  if (holds_session_slot_) worker_.limits().release_session(user_);
  relay_.reset();  // before the client socket closes: its events are on it
  release_client();
  free_bufferevent(backend_);
  if (timer_) event_free(timer_);
  sasl::wipe(secret_);
  worker_.stats().sessions.fetch_sub(1, std::memory_order_relaxed);
  worker_.stats().open_by_protocol[is_imap(protocol_) ? 0 : 1].fetch_sub(1, std::memory_order_relaxed);
}

void Session::start() {
  if (!client_) {
    close("cannot set up the connection");
    return;
  }
  logger("proxy")->debug("[C{}] connect proto={} client={} trusted={}", id_, to_string(protocol_),
                         peer_.to_string(), trusted_);
  install_client_callbacks();
  bufferevent_enable(client_, EV_READ | EV_WRITE);
  timer_action_ = [this] { on_timeout(); };
  arm_timer(duration_cast<milliseconds>(config_.limits.preauth_timeout));
  if (state_ == State::kPreAuth) greet();
}

void Session::greet() {
  greeted_ = true;
  if (over_connection_limit_) {
    send_bye("Too many connections from your address.");
    close_after_flush("too many connections from " + origin_.ip);
    return;
  }
  send_greeting();
}

void Session::install_client_callbacks() {
  bufferevent_setcb(client_, on_client_read, on_client_write, on_client_event, this);
}

bool Session::tls_available() const { return config_.tls_enabled && tls_->server != nullptr; }

bool Session::plaintext_allowed() const { return tls_active_ || trusted_; }

void Session::process_input() {
  // Re-entry (a login failure answered synchronously from inside the parser loop) would nest
  // one level per pipelined command: the outer loop picks the input up instead.
  if (processing_input_ || !client_) return;
  processing_input_ = true;
  on_client_input(bufferevent_get_input(client_));
  processing_input_ = false;
}

void Session::resume_input() {
  if (evbuffer_get_length(bufferevent_get_output(client_)) > kPreAuthOutputCap) return;  // on_client_write resumes
  bufferevent_setwatermark(client_, EV_READ, 0, 0);
  if (!client_eof_pending_) bufferevent_enable(client_, EV_READ);
  process_input();
  if (client_eof_pending_ && state_ == State::kPreAuth) close_after_flush("client closed the connection");
}

void Session::set_state(State next) {
  if (next == state_) return;
  logger("proxy")->debug("[C{}] {} -> {}", id_, to_string(state_), to_string(next));
  int delta = (next == State::kProxying) - (state_ == State::kProxying);
  if (delta != 0) {
    worker_.stats().sessions_proxying.fetch_add(delta, std::memory_order_relaxed);
    worker_.stats().proxying_by_protocol[is_imap(protocol_) ? 0 : 1].fetch_add(delta, std::memory_order_relaxed);
  }
  state_ = next;
}

void Session::send(std::string_view text) {
  if (!client_) return;
  write_through(client_, !tls_active_, text);
  // A client that pipelines commands but never reads the answers must not grow our buffer.
  if (state_ == State::kPreAuth && evbuffer_get_length(bufferevent_get_output(client_)) > kPreAuthOutputCap) {
    bufferevent_disable(client_, EV_READ);
  }
}

void Session::send_to_backend(std::string_view text) {
  if (!backend_) return;
  if (state_ == State::kAuthenticating) logger("proxy")->debug("[C{}] early shard login: command sent", id_);
  write_through(backend_, !shard_->tls, text);
}

bool Session::count_bad_command() { return ++bad_commands_ >= config_.limits.max_bad_commands; }

bufferevent* Session::new_tls_client(evutil_socket_t fd) {
  SslPtr ssl(SSL_new(tls_->server.get()));
  if (!ssl) return nullptr;
  // The session owns the SSL and the socket (no CLOSE_ON_FREE): after the login the relay takes
  // them over from the bufferevent, and may hand them back for the last words.
  // A socket-level TLS bufferevent (not a filter over the plain one): its output buffer is what
  // waits for the client, so the pre-auth cap, the relay watermarks and "flushed" all see it.
  bufferevent* bev =
      bufferevent_openssl_socket_new(worker_.base(), fd, ssl.get(), BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_DEFER_CALLBACKS);
  if (!bev) return nullptr;
  bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
  client_ssl_ = std::move(ssl);
  client_fd_ = fd;
  tls_active_ = true;
  return bev;
}

void Session::release_client() {
  free_bufferevent(client_);
  client_ssl_.reset();
  if (client_fd_ >= 0) evutil_closesocket(client_fd_);
  client_fd_ = -1;
}

bool Session::start_tls(evbuffer* input) {
  if (evbuffer_get_length(input) > 0) {
    close_after_flush("plaintext pipelined after STARTTLS (command injection attempt)");
    return false;
  }
  // The ClientHello must stay in the socket for the TLS bufferevent: stop reading now, and
  // switch once our "OK Begin TLS" has reached the kernel (on_client_write).
  bufferevent_disable(client_, EV_READ);
  bufferevent_setwatermark(client_, EV_WRITE, 0, 0);
  set_state(State::kTlsHandshake);
  starttls_pending_ = true;
  // Written through already: on_client_write switches, from the loop (not under the parser).
  if (evbuffer_get_length(bufferevent_get_output(client_)) == 0) {
    bufferevent_trigger(client_, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
  }
  return true;
}

void Session::finish_starttls() {
  starttls_pending_ = false;
  free_bufferevent(client_);
  client_ = new_tls_client(client_fd_);
  if (!client_) {
    close("cannot start TLS: " + openssl_error_text());  // closes the socket
    return;
  }
  install_client_callbacks();
  bufferevent_enable(client_, EV_READ | EV_WRITE);
}

void Session::on_client_read(bufferevent*, void* self) {
  auto* s = static_cast<Session*>(self);
  switch (s->state_) {
    case State::kPreAuth:
      s->process_input();
      return;
    case State::kProxying:
      s->relay(s->client_, s->backend_);
      return;
    case State::kTlsHandshake:
    case State::kAuthenticating:
    case State::kFailureDelay:
    case State::kBackendLogin:
    case State::kClosing:
      return;  // input stays buffered until we are ready for it
  }
}

void Session::on_client_write(bufferevent* bev, void* self) {
  auto* s = static_cast<Session*>(self);
  switch (s->state_) {
    case State::kClosing:
      if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) s->close(s->close_reason_);
      return;
    case State::kProxying:
      s->on_relay_drained(s->client_);
      return;
    case State::kPreAuth:
      if (!(bufferevent_get_enabled(bev) & EV_READ)) s->resume_input();
      return;
    case State::kTlsHandshake:
      if (s->starttls_pending_ && evbuffer_get_length(bufferevent_get_output(bev)) == 0) s->finish_starttls();
      return;
    case State::kAuthenticating:
    case State::kFailureDelay:
    case State::kBackendLogin:
      return;
  }
}

void Session::on_client_event(bufferevent* bev, short what, void* self) {
  auto* s = static_cast<Session*>(self);
  if (what & BEV_EVENT_CONNECTED) {
    if (s->state_ != State::kTlsHandshake) return;
    s->set_state(State::kPreAuth);
    if (!s->greeted_) s->greet();
    if (s->state_ == State::kPreAuth) s->process_input();
    return;
  }
  std::string why = describe_event(bev, what);
  bool logging_in = s->state_ == State::kAuthenticating || s->state_ == State::kFailureDelay ||
                    s->state_ == State::kBackendLogin;
  if (logging_in && (what & BEV_EVENT_EOF)) {
    // A client may send LOGIN and more, then half-close: answer all of it first.
    s->client_eof_pending_ = true;
    bufferevent_disable(bev, EV_READ);
    return;
  }
  if (s->state_ == State::kProxying && (what & BEV_EVENT_EOF)) {
    s->on_client_eof();
  } else if (s->state_ == State::kProxying) {
    s->on_side_closed(s->client_, "client " + why);
  } else {
    s->close(std::string("client ") + why + " during " + to_string(s->state_));
  }
}

void Session::on_backend_read(bufferevent* bev, void* self) {
  auto* s = static_cast<Session*>(self);
  if (s->logging_in_to_backend()) {
    s->on_backend_input(bufferevent_get_input(bev));
  } else if (s->state_ == State::kProxying) {
    s->relay(s->backend_, s->client_);
  }
}

void Session::on_backend_write(bufferevent* bev, void* self) {
  auto* s = static_cast<Session*>(self);
  if (s->state_ == State::kProxying && s->client_eof_) {
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) s->shut_backend_writes();
  } else if (s->state_ == State::kProxying) {
    s->on_relay_drained(s->backend_);
  } else if (s->state_ == State::kClosing && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
    s->close(s->close_reason_);
  }
}

void Session::on_backend_event(bufferevent* bev, short what, void* self) {
  auto* s = static_cast<Session*>(self);
  if (what & BEV_EVENT_CONNECTED) {
    set_tcp_nodelay(bev);
    s->backend_established();
    return;
  }
  std::string why = describe_event(bev, what);
  if (s->state_ == State::kAuthenticating || s->state_ == State::kFailureDelay) {
    if (s->backend_warm_) Stats::add(s->worker_.stats().warm_failed);
    s->drop_early_backend();  // an early connection failed: connect_backend() tries again
  } else if (s->state_ == State::kBackendLogin) {
    s->backend_login_failed(LoginFailure::kBackendDown, "shard " + s->shard_->name + ": " + why);
  } else if (s->state_ == State::kProxying) {
    s->on_side_closed(s->backend_, "backend " + why);
  }
}

void Session::on_timer(evutil_socket_t, short, void* self) {
  auto* s = static_cast<Session*>(self);
  auto action = s->timer_action_;  // the action may re-arm the timer with a new one
  if (action) action();
}

void Session::arm_timer(milliseconds delay) {
  timeval tv{static_cast<time_t>(delay.count() / 1000), static_cast<suseconds_t>((delay.count() % 1000) * 1000)};
  evtimer_add(timer_, &tv);
}

void Session::on_timeout() {
  switch (state_) {
    case State::kProxying: {
      auto idle = steady_clock::now() - last_activity_;
      auto limit = config_.limits.idle_timeout;
      if (idle < limit) {
        arm_timer(duration_cast<milliseconds>(limit - idle) + milliseconds(1));
        return;
      }
      close("idle timeout");
      return;
    }
    case State::kClosing:
      close(close_reason_ + " (output not flushed)");
      return;
    case State::kTlsHandshake:
    case State::kPreAuth:
    case State::kAuthenticating:
    case State::kFailureDelay:
    case State::kBackendLogin:
      send_bye("Disconnected for inactivity.");
      close_after_flush("pre-auth timeout");
      return;
  }
}

void Session::authenticate(std::string user, std::string& secret) {
  set_state(State::kAuthenticating);
  // Reads stay on (no epoll change per login); what a client pipelines meanwhile waits in the
  // input buffer, which stops filling at the cap.
  bufferevent_setwatermark(client_, EV_READ, 0, kPendingInputCap);
  user_ = std::move(user);
  typed_user_ = user_;
  // Copy, then wipe the caller's buffer: a moved-from short string keeps its bytes.
  secret_.assign(secret);
  sasl::wipe(secret);
  if (origin_.proxy_ttl <= 0) {
    fail_login(LoginFailure::kProxyLoop, "proxy TTL exhausted");
    return;
  }
  Worker* worker = &worker_;
  uint64_t id = id_;
  auto asked = steady_clock::now();
  worker_.directory().authenticate_with_hint(
      user_, secret_,
      [worker, id, asked](directory::AuthResult result) {
        worker->stats().observe_directory_latency(
            std::chrono::duration<double, std::milli>(steady_clock::now() - asked).count());
        if (Session* s = worker->find(id)) s->on_auth_result(std::move(result));
      },
      [worker, id](const directory::UserRoute& route) {
        if (Session* s = worker->find(id)) s->on_route_hint(route);
      });
}

void Session::on_auth_result(directory::AuthResult result) {
  if (state_ != State::kAuthenticating) return;
  using directory::AuthOutcome;
  AuthCache& cache = worker_.auth_cache();
  switch (result.outcome) {
    case AuthOutcome::kOk:
      if (cache.enabled()) {
        // The slow hash runs on the pool; the copy of the secret is wiped there.
        worker_.pool().post([&cache, key = typed_user_, route = result.route, secret = secret_]() mutable {
          cache.remember(key, route, secret);
          sasl::wipe(secret);
        }, 4096);
      }
      route_to_shard(result.route);
      return;
    case AuthOutcome::kBadCredentials:
      if (cache.enabled()) cache.forget(typed_user_);  // the directory answered: it wins
      fail_login(LoginFailure::kBadCredentials, result.detail);
      return;
    case AuthOutcome::kDisabled:
    case AuthOutcome::kMoving:
      fail_login(LoginFailure::kAccountUnavailable,
                 std::string(directory::to_string(result.outcome)) + ": " + result.detail);
      return;
    case AuthOutcome::kUnavailable:
      if (!try_auth_cache(result)) fail_login(LoginFailure::kDirectoryDown, result.detail);
      return;
  }
}

void Session::route_to_shard(const directory::UserRoute& route) {
  if (!route.user.empty()) user_ = route.user;
  const ShardConfig* shard = ShardMap(config_.shards).resolve(route.shard);
  if (backend_ && (shard != shard_ || (early_login_ && early_user_ != user_))) drop_early_backend();  // wrong guess
  shard_ = shard;
  if (!shard_) {
    fail_login(LoginFailure::kNoShard, "route '" + route.shard + "' names no configured shard");
    return;
  }
  if (!worker_.limits().acquire_session(user_)) {
    fail_login(LoginFailure::kTooManySessions, "max_sessions_per_user reached");
    return;
  }
  holds_session_slot_ = true;
  connect_backend();
}

// The directory is unreachable: a user who logged in recently may still get in with the same
// secret. The check is a slow hash, so it runs on the pool and answers through the worker.
bool Session::try_auth_cache(const directory::AuthResult& unavailable) {
  AuthCache& cache = worker_.auth_cache();
  if (!cache.enabled() || !cache.has(typed_user_)) return false;
  Worker* worker = &worker_;
  uint64_t id = id_;
  return worker_.pool().post([worker, id, &cache, key = typed_user_, secret = secret_, why = unavailable.detail]() mutable {
    auto route = cache.check(key, secret);
    sasl::wipe(secret);
    worker->post([worker, id, route = std::move(route), why] {
      if (Session* s = worker->find(id)) s->on_auth_cache_result(route, why);
    });
  }, 4096);
}

void Session::on_auth_cache_result(std::optional<directory::UserRoute> route, const std::string& why_unavailable) {
  if (state_ != State::kAuthenticating) return;
  if (!route) return fail_login(LoginFailure::kDirectoryDown, why_unavailable + " (auth cache: no match)");
  logger("proxy")->info("[C{}] directory unavailable ({}); user={} accepted from the auth cache", id_,
                        why_unavailable, log_safe(typed_user_));
  route_to_shard(*route);
}

// Opens the connection to shard_ (the login comes later), a warm one from the worker's pool
// when there is one; "" or what went wrong.
std::string Session::open_backend(bool warm) {
  bool imap = is_imap(protocol_);
  if (imap ? !shard_->has_imap : !shard_->has_pop3) return "has no address for this protocol";
  backend_warm_ = false;
  if (bufferevent* ready = warm ? worker_.shard_pool().take(*shard_, imap) : nullptr) {
    adopt_backend(ready);
    return "";
  }
  const SocketAddress& address = imap ? shard_->imap : shard_->pop3;
  auto bev = new_shard_bufferevent(worker_.base(), *shard_, tls_->shard(static_cast<size_t>(shard_ - config_.shards.data())),
                                   address);
  if (!bev) return bev.error().message;
  backend_ = *bev;
  backend_connected_ = false;
  bufferevent_setcb(backend_, on_backend_read, on_backend_write, on_backend_event, this);
  bufferevent_enable(backend_, EV_READ | EV_WRITE);
  if (bufferevent_socket_connect(backend_, address.get(), static_cast<int>(address.length)) < 0) {
    free_bufferevent(backend_);
    return std::string("connect: ") + evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
  }
  return "";
}

// A warm connection is connected and greeted: from here it goes as if it had just connected,
// and its greeting is read at once (the login goes out now, not an iteration later).
void Session::adopt_backend(bufferevent* bev) {
  backend_ = bev;
  backend_warm_ = true;
  bufferevent_setcb(backend_, on_backend_read, on_backend_write, on_backend_event, this);
  bufferevent_enable(backend_, EV_READ | EV_WRITE);
  backend_established();
  if (logging_in_to_backend()) on_backend_input(bufferevent_get_input(backend_));
}

void Session::backend_established() {
  backend_connected_ = true;
  if (state_ == State::kBackendLogin) arm_timer(shard_->login_timeout);
  on_backend_connected();
}

// A login on a warm connection failed: the shard restarted or closed it just as we took it, or
// (Dovecot after a reload) its old login process can no longer reach the auth service and
// answers NO. The login is repeated once on a fresh connection before the client hears of it.
void Session::retry_backend_cold(const std::string& why) {
  logger("proxy")->info("[C{}] login on a warm connection to shard {} failed ({}); retrying on a new one", id_,
                        shard_->name, why);
  Stats::add(worker_.stats().warm_failed);
  free_bufferevent(backend_);
  arm_timer(shard_->connect_timeout);
  if (std::string error = open_backend(false); !error.empty()) {
    backend_login_failed(LoginFailure::kBackendDown, "shard " + shard_->name + ": " + error);
  }
}

void Session::connect_backend() {
  const bool ready = backend_ && backend_ready_;
  early_login_ = backend_ready_ = false;  // the login is the verdict's from here on
  set_state(State::kBackendLogin);
  if (ready) {
    backend_login_succeeded();
    return;
  }
  timer_action_ = [this] { backend_login_failed(LoginFailure::kBackendDown, "shard " + shard_->name + " timed out"); };
  if (backend_) {  // opened while the directory was still checking the secret
    arm_timer(backend_connected_ ? shard_->login_timeout : shard_->connect_timeout);
    if (backend_connected_) on_backend_input(bufferevent_get_input(backend_));
    return;
  }
  arm_timer(shard_->connect_timeout);
  if (std::string error = open_backend(); !error.empty()) {
    backend_login_failed(LoginFailure::kBackendDown, "shard " + shard_->name + ": " + error);
  }
}

// The directory knows the route and is now checking the secret: connect to the shard meanwhile,
// and with a master login log in there too, so the shard's own login overlaps the bind. The
// client hears nothing, and nothing is relayed, before the verdict.
void Session::on_route_hint(const directory::UserRoute& route) {
  if (state_ != State::kAuthenticating || backend_) return;
  shard_ = ShardMap(config_.shards).resolve(route.shard);
  if (!shard_) return;
  // Set before opening: a warm connection starts its login inside open_backend().
  early_login_ = config_.early_shard_login && shard_->login == ShardLogin::kMaster;
  early_user_ = route.user.empty() ? user_ : route.user;
  if (!open_backend().empty()) early_login_ = false;  // a failure is retried, and reported, after the verdict
}

void Session::drop_early_backend() {
  free_bufferevent(backend_);
  early_login_ = backend_ready_ = false;
}

void Session::backend_login_failed(LoginFailure failure, const std::string& detail) {
  if (state_ == State::kAuthenticating && early_login_) {
    logger("proxy")->debug("[C{}] early shard login dropped: {}", id_, detail);
    if (backend_warm_) Stats::add(worker_.stats().warm_failed);
    drop_early_backend();
    return;
  }
  if (state_ != State::kBackendLogin) return;
  if (backend_warm_) {
    retry_backend_cold(detail);
    return;
  }
  Stats::add(worker_.stats().backend_errors);
  worker_.stats().shard_error(shard_->name);
  free_bufferevent(backend_);
  if (holds_session_slot_) worker_.limits().release_session(user_);
  holds_session_slot_ = false;
  fail_login(failure, detail);
}

void Session::fail_login(LoginFailure failure, const std::string& detail) {
  sasl::wipe(secret_);
  drop_early_backend();  // an early shard connection (or login), if the route was known
  Stats& stats = worker_.stats();
  switch (failure) {
    case LoginFailure::kBadCredentials: Stats::add(stats.logins_bad_credentials); break;
    case LoginFailure::kPrivacyRequired:
    case LoginFailure::kAuthzRefused:
    case LoginFailure::kProxyLoop:
    case LoginFailure::kTooManySessions: Stats::add(stats.logins_refused); break;
    case LoginFailure::kDirectoryDown:
    case LoginFailure::kAccountUnavailable:
    case LoginFailure::kNoShard:
    case LoginFailure::kBackendDown:
    case LoginFailure::kBackendRejected: Stats::add(stats.logins_unavailable); break;
  }
  logger("proxy")->info("[C{}] login failed proto={} client={} user={} reason=\"{}\"", id_, protocol_name(),
                        peer_.to_string(), log_safe(user_), detail);
  auto answer = [this, failure, detail] {
    set_state(State::kPreAuth);
    timer_action_ = [this] { on_timeout(); };
    auto elapsed = steady_clock::now() - started_;
    auto left = config_.limits.preauth_timeout - duration_cast<std::chrono::seconds>(elapsed);
    arm_timer(std::max(milliseconds(1), duration_cast<milliseconds>(left)));
    send_login_failure(failure, detail);
    if (state_ == State::kPreAuth) resume_input();  // unless the reply closed the session
  };
  bool penalize = failure == LoginFailure::kBadCredentials || failure == LoginFailure::kAuthzRefused;
  auto delay = penalize ? worker_.limits().record_failure(origin_.ip, user_) : milliseconds(0);
  if (delay.count() > 0) {
    set_state(State::kFailureDelay);
    timer_action_ = answer;
    arm_timer(delay);
  } else {
    answer();
  }
}

void Session::backend_login_succeeded() {
  if (state_ == State::kAuthenticating) {  // early: the client is answered once the verdict is in
    logger("proxy")->debug("[C{}] early shard login ready shard={}", id_, shard_->name);
    backend_ready_ = true;
    return;
  }
  send_login_ok();
  sasl::wipe(secret_);
  worker_.limits().record_success(user_);
  Stats::add(worker_.stats().logins_ok);
  logger("proxy")->info("[C{}] login proto={} client={} user={} shard={} tls={}", id_, protocol_name(),
                        peer_.to_string(), log_safe(user_), shard_->name, tls_active_);
  set_state(State::kProxying);
  start_relay();
}

SessionInfo Session::info() const {
  SessionInfo i;
  i.id = id_;
  i.protocol = protocol_name();
  i.user = user_;
  i.client = origin_.ip + ":" + std::to_string(origin_.port);
  i.shard = shard_ && state_ == State::kProxying ? shard_->name : "";
  i.state = to_string(state_);
  i.tls = tls_active_;
  i.age_ms = duration_cast<milliseconds>(steady_clock::now() - started_).count();
  i.bytes_in = bytes_in_;
  i.bytes_out = bytes_out_;
  return i;
}

void Session::close_after_flush(const std::string& reason) {
  if (!client_ || evbuffer_get_length(bufferevent_get_output(client_)) == 0) {
    close(reason);
    return;
  }
  close_reason_ = reason;
  set_state(State::kClosing);
  bufferevent_disable(client_, EV_READ);
  bufferevent_setwatermark(client_, EV_WRITE, 0, 0);
  timer_action_ = [this] { on_timeout(); };
  arm_timer(kFlushTimeout);
}

void Session::close(const std::string& reason) {
  if (!timer_) return;  // already closed
  log_end(reason);
  set_state(State::kClosing);
  relay_.reset();
  release_client();
  free_bufferevent(backend_);
  event_free(timer_);
  timer_ = nullptr;
  sasl::wipe(secret_);
  worker_.retire(id_);
}

void Session::log_end(const std::string& reason) {
  auto ms = duration_cast<milliseconds>(steady_clock::now() - started_).count();
  logger("proxy")->info("[C{}] session end proto={} client={} user={} shard={} in={} out={} duration_ms={} reason=\"{}\"",
                        id_, protocol_name(), peer_.to_string(), user_.empty() ? "-" : log_safe(user_),
                        shard_ ? shard_->name : "-", bytes_in_, bytes_out_, ms, reason);
}

}  // namespace basalt::proxy
