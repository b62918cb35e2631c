// Session, after the login: the byte relay between client and shard (raw sockets when the shard
// is plain, the client plain or TLS; bufferevents with watermarks otherwise), half-close, kick.
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "proxy/session.h"
#include "proxy/worker.h"

namespace basalt::proxy {
void Session::start_relay() {
  last_activity_ = std::chrono::steady_clock::now();
  timer_action_ = [this] { on_timeout(); };
  arm_timer(std::chrono::duration_cast<std::chrono::milliseconds>(config_.limits.idle_timeout));
  if (!shard_->tls) {
    start_raw_relay();
    return;
  }
  constexpr size_t kMaxSingleIo = 128 * 1024;
  for (bufferevent* bev : {client_, backend_}) {
    bufferevent_setwatermark(bev, EV_READ, 0, 0);
    bufferevent_set_max_single_read(bev, kMaxSingleIo);
    bufferevent_set_max_single_write(bev, kMaxSingleIo);
    bufferevent_setwatermark(bev, EV_WRITE, config_.limits.relay_high_watermark / 2, 0);
    bufferevent_enable(bev, bev == client_ && client_eof_pending_ ? EV_WRITE : EV_READ | EV_WRITE);
  }
  // Whatever either side sent right behind the login exchange is already buffered.
  relay(backend_, client_);
  relay(client_, backend_);
  if (client_eof_pending_) on_client_eof();
}

// A plain shard: the relay takes both sockets (and a TLS client's SSL) over, with what the login
// left in the bufferevents (the client's tagged OK, anything pipelined either way). A TLS
// bufferevent may have tried to write its output already: those bytes are still at its head,
// and the relay's first SSL write repeats them, as OpenSSL requires.
void Session::start_raw_relay() {
  relay(backend_, client_);
  relay(client_, backend_);
  evutil_socket_t backend_fd = bufferevent_getfd(backend_);
  bufferevent_setfd(backend_, -1);  // so that freeing the bufferevent does not close it
  if (client_ssl_) SSL_set_mode(client_ssl_.get(), SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  relay_ = std::make_unique<Relay>(worker_.base(), worker_.relay_scratch(), config_.limits.relay_high_watermark,
                                   static_cast<Relay::Owner&>(*this), client_fd_, backend_fd, client_ssl_.get(),
                                   &worker_.relay_tls_sink());
  relay_->start(bufferevent_get_output(client_), bufferevent_get_output(backend_), client_eof_pending_);
  free_bufferevent(client_);
  free_bufferevent(backend_);
  if (client_eof_pending_) on_relay_client_eof();
}

// Back to a bufferevent on the client socket for the last words: what the shard sent, a
// goodbye, then close once flushed. The shard's socket closes with the relay. A TLS client's
// SSL goes back to writing to its socket (the relay has sent all its records: see end_relay).
void Session::rewrap_client() {
  if (client_ssl_) {
    SSL_set0_wbio(client_ssl_.get(), BIO_new_socket(client_fd_, BIO_NOCLOSE));
    client_ = bufferevent_openssl_socket_new(worker_.base(), client_fd_, client_ssl_.get(), BUFFEREVENT_SSL_OPEN,
                                             BEV_OPT_DEFER_CALLBACKS);
    if (client_) bufferevent_openssl_set_allow_dirty_shutdown(client_, 1);
  } else {
    client_ = bufferevent_socket_new(worker_.base(), client_fd_, BEV_OPT_DEFER_CALLBACKS);
    if (client_) relay_->take_client_pending(bufferevent_get_output(client_));
  }
  if (client_) {
    install_client_callbacks();
    bufferevent_enable(client_, EV_WRITE);
  }
  relay_.reset();
}

// The relay ends (the shard closed, a kick, a drain): what it holds for the client goes first,
// then `bye` (if any), then the close once that is flushed. What waits for a TLS client is
// ciphertext, which only the relay can send: the session waits for it (reading nothing more).
void Session::end_relay(const std::string& bye, const std::string& reason) {
  if (relay_end_) return;  // already ending: the first reason and goodbye stand
  if (client_ssl_ && !relay_->client_flushed()) {
    relay_end_ = RelayEnd{bye, reason};
    close_reason_ = reason;
    set_state(State::kClosing);
    timer_action_ = [this] { on_timeout(); };
    arm_timer(kFlushTimeout);
    relay_->quiesce();
    return;
  }
  rewrap_client();
  if (!bye.empty()) send_bye(bye);
  close_after_flush(reason);
}

void Session::on_relay_client_flushed() {
  if (!relay_end_) return;
  RelayEnd end = std::move(*relay_end_);
  relay_end_.reset();
  end_relay(end.bye, end.reason);
}

void Session::count_relayed(bool from_client, size_t bytes) {
  (from_client ? bytes_in_ : bytes_out_) += bytes;
  Stats::add(from_client ? worker_.stats().bytes_client_to_backend : worker_.stats().bytes_backend_to_client, bytes);
  last_activity_ = std::chrono::steady_clock::now();
}

void Session::on_relayed(Relay::Side from, size_t bytes) { count_relayed(from == Relay::Side::kClient, bytes); }

void Session::on_relay_client_eof() {
  client_eof_ = true;
  expect_shard_finish();
}

void Session::on_relay_closed(Relay::Side side, const std::string& why) {
  if (side == Relay::Side::kClient) {
    close("client " + why);
    return;
  }
  end_relay("", "backend " + why);
}

void Session::relay(bufferevent* from, bufferevent* to) {
  evbuffer* input = bufferevent_get_input(from);
  size_t n = evbuffer_get_length(input);
  if (n == 0) return;
  count_relayed(from == client_, n);
  evbuffer* output = bufferevent_get_output(to);
  // Write through on plain sockets, straight from the input: libevent then never arms EPOLLOUT
  // for a chunk the socket takes at once (no epoll_ctl, no extra wake-up). What the socket
  // does not take goes to the output buffer as usual.
  if (evbuffer_get_length(output) == 0 && !is_tls(to)) evbuffer_write(input, bufferevent_getfd(to));
  evbuffer_add_buffer(output, input);
  // Back-pressure: stop reading from a fast sender until the slow reader has caught up.
  if (evbuffer_get_length(output) >= config_.limits.relay_high_watermark) bufferevent_disable(from, EV_READ);
}

bool Session::is_tls(bufferevent* bev) const {
  return bev == client_ ? tls_active_ : (shard_ != nullptr && shard_->tls);
}

void Session::on_relay_drained(bufferevent* drained) {
  bufferevent* other = drained == client_ ? backend_ : client_;
  if (!other || (bufferevent_get_enabled(other) & EV_READ)) return;
  bufferevent_enable(other, EV_READ);
  relay(other, drained);
}

void Session::on_client_eof() {
  // The client may have half-closed after pipelining commands: deliver them all to the shard,
  // then half-close towards it and keep relaying its answers until it closes.
  relay(client_, backend_);
  client_eof_ = true;
  bufferevent_disable(client_, EV_READ);
  bufferevent_enable(backend_, EV_READ);
  bufferevent_setwatermark(backend_, EV_WRITE, 0, 0);
  expect_shard_finish();
  if (evbuffer_get_length(bufferevent_get_output(backend_)) == 0) shut_backend_writes();
}

void Session::expect_shard_finish() {
  close_reason_ = "client closed the connection";
  timer_action_ = [this] { close(close_reason_ + " (shard did not finish)"); };
  arm_timer(3 * kFlushTimeout);
}

void Session::shut_backend_writes() {
  if (shard_->tls) {
    close(close_reason_);  // no TLS half-close: everything for the shard has been written
    return;
  }
  shutdown(bufferevent_getfd(backend_), SHUT_WR);
}

void Session::on_side_closed(bufferevent* side, const std::string& reason) {
  bufferevent* other = side == client_ ? backend_ : client_;
  relay(side, other);
  if (side == client_) {
    close(reason);  // nobody left to deliver the backend's remaining output to
    return;
  }
  free_bufferevent(backend_);
  close_after_flush(reason);
}

void Session::kick(const std::string& text, const std::string& reason) {
  if (!timer_ || state_ == State::kClosing) return;
  if (relay_) {
    end_relay(text, reason);  // what the relay holds for the client goes first
    return;
  }
  if (backend_) {
    // Whatever the shard already sent goes first; nothing more is read from it.
    relay(backend_, client_);
    free_bufferevent(backend_);
  }
  send_bye(text);
  close_after_flush(reason);
}

}  // namespace basalt::proxy
