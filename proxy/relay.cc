#include "proxy/relay.h"

#include <event2/buffer.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace basalt::proxy {
namespace {

using std::chrono::steady_clock;

constexpr int kBulkBytes = 64 * 1024;              // SO_RCVLOWAT in bulk mode
constexpr auto kBulkWindow = std::chrono::milliseconds(2);
constexpr timeval kTail{0, 1000};                   // picks up what is below the low-water mark
constexpr int kReadsPerWakeup = 4;                  // full reads in a row before yielding to the loop
constexpr size_t kTlsAnswerBacklog = 64 * 1024;     // TLS client: not read while more waits for it

bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

Relay::Side other(Relay::Side side) {
  return side == Relay::Side::kClient ? Relay::Side::kBackend : Relay::Side::kClient;
}

// The write side of a relayed client's SSL: records collect in memory (the loop's sink string)
// and the relay sends them in one piece.
int sink_write(BIO* bio, const char* data, int size) {
  static_cast<std::string*>(BIO_get_data(bio))->append(data, static_cast<size_t>(size));
  return size;
}

long sink_ctrl(BIO*, int command, long, void*) {
  if (command == BIO_CTRL_FLUSH) return 1;
  if (command == BIO_C_GET_FD) return -1;  // no socket behind it
  return 0;
}

int sink_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* sink_method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "basalt relay sink");
    BIO_meth_set_write(m, sink_write);
    BIO_meth_set_ctrl(m, sink_ctrl);
    BIO_meth_set_create(m, sink_create);
    return m;
  }();
  return method;
}

std::string tls_error(int code) {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return std::string("TLS error: ") + buf;
  }
  return code == SSL_ERROR_SYSCALL && errno != 0 ? evutil_socket_error_to_string(errno) : "TLS error";
}

}  // namespace

Relay::Relay(event_base* base, std::span<char> scratch, size_t max_read, Owner& owner, evutil_socket_t client_fd,
             evutil_socket_t backend_fd, SSL* client_tls, std::string* tls_sink)
    : owner_(owner),
      scratch_(scratch),
      max_read_(std::min(max_read, scratch.size())),
      backend_fd_(backend_fd),
      tls_(client_tls && tls_sink ? client_tls : nullptr),
      sink_(tls_sink) {
  if (tls_) {
    BIO* sink = BIO_new(sink_method());
    BIO_set_data(sink, sink_);
    SSL_set0_wbio(tls_, sink);  // the socket BIO stays for reading
    // A client that closes without close_notify ends like one that sends it; OpenSSL 3 would
    // otherwise fail the SSL, and the shard's last answers could not be encrypted any more.
    SSL_set_options(tls_, SSL_OP_IGNORE_UNEXPECTED_EOF);
    evtimer_assign(&tls_more_, base, on_tls_more, this);
  }
  event_assign(&up_.readable, base, client_fd, EV_READ | EV_PERSIST, on_readable, &up_);
  event_assign(&up_.writable, base, backend_fd, EV_WRITE | EV_PERSIST, on_writable, &up_);
  event_assign(&down_.readable, base, backend_fd, EV_READ | EV_PERSIST, on_readable, &down_);
  event_assign(&down_.writable, base, client_fd, EV_WRITE | EV_PERSIST, on_writable, &down_);
  evtimer_assign(&tail_, base, on_tail, this);
  setup_flow(up_, Side::kClient, client_fd, backend_fd);
  setup_flow(down_, Side::kBackend, backend_fd, client_fd);
}

Relay::~Relay() {
  for (event* e : {&up_.readable, &up_.writable, &down_.readable, &down_.writable, &tail_}) event_del(e);
  if (tls_) event_del(&tls_more_);
  evutil_closesocket(backend_fd_);
}

void Relay::setup_flow(Flow& flow, Side source, evutil_socket_t from, evutil_socket_t to) {
  flow.relay = this;
  flow.source = source;
  flow.from = from;
  flow.to = to;
}

void Relay::start(evbuffer* to_client, evbuffer* to_backend, bool client_eof) {
  queue(down_, to_client);
  queue(up_, to_backend);
  up_.eof = client_eof;
  for (Flow* flow : {&up_, &down_}) {
    if (!flow->pending && !flow->eof) resume_reading(*flow);
  }
  if (client_eof && !up_.pending) shutdown(backend_fd_, SHUT_WR);
}

void Relay::resume_reading(Flow& flow) {
  event_add(&flow.readable, nullptr);
  if (&flow == &up_) read_decrypted_later();
}

// Plaintext the SSL has decrypted but we have not taken yet is invisible to the readable event:
// it is read in the next loop iteration (a timer, so that the loop polls in between). Bytes of
// an incomplete record are not such plaintext: the socket signals the rest.
void Relay::read_decrypted_later() {
  if (!tls_ || up_.pending || quiet_ || SSL_pending(tls_) <= 0) return;
  timeval now{0, 0};
  evtimer_add(&tls_more_, &now);
}

void Relay::on_tls_more(evutil_socket_t, short, void* arg) {
  auto* relay = static_cast<Relay*>(arg);
  relay->read_some(relay->up_);
}

void Relay::quiesce() {
  quiet_ = true;
  for (event* e : {&up_.readable, &down_.readable, &up_.writable, &tail_}) event_del(e);
  up_.pending.reset();  // nothing more goes to a shard we are leaving
  up_.pending_begin = up_.pending_end = 0;
  if (tls_) event_del(&tls_more_);
  if (!down_.pending) owner_.on_relay_client_flushed();
}

// Writes what the login left queued at once (the client's tagged OK is usually in there); a
// failure shows up as an error on the writable event.
void Relay::queue(Flow& flow, evbuffer* data) {
  size_t size = evbuffer_get_length(data);
  if (size == 0) return;
  const char* bytes = reinterpret_cast<const char*>(evbuffer_pullup(data, -1));
  if (encrypts(flow)) {
    encrypt(bytes, size);
    emit_tls();
  } else {
    send_or_keep(flow, bytes, size);
  }
  evbuffer_drain(data, size);
}

void Relay::send_or_keep(Flow& flow, const char* data, size_t size) {
  ssize_t sent = flow.pending ? 0 : send(flow.to, data, size, MSG_NOSIGNAL);
  size_t done = sent > 0 ? static_cast<size_t>(sent) : 0;
  if (done < size) keep(flow, data + done, size - done);
}

void Relay::take_client_pending(evbuffer* out) {
  if (!down_.pending) return;
  evbuffer_add(out, down_.pending.get() + down_.pending_begin, down_.pending_end - down_.pending_begin);
  down_.pending.reset();
  down_.pending_begin = down_.pending_end = 0;
  event_del(&down_.writable);
}

void Relay::on_readable(evutil_socket_t, short, void* arg) {
  auto* flow = static_cast<Flow*>(arg);
  flow->relay->read_some(*flow);
}

void Relay::on_writable(evutil_socket_t, short, void* arg) {
  auto* flow = static_cast<Flow*>(arg);
  flow->relay->flush_pending(*flow);
}

void Relay::on_tail(evutil_socket_t, short, void* arg) {
  auto* relay = static_cast<Relay*>(arg);
  for (Flow* flow : {&relay->up_, &relay->down_}) {
    if (!flow->bulk) continue;
    relay->set_bulk(*flow, false);
    if (!flow->pending && !flow->eof && !relay->read_some(*flow)) return;
  }
}

// Returns false once the owner has been told the relay is over (it may be gone).
bool Relay::read_some(Flow& flow) {
  if (tls_ && &flow == &up_) return read_tls(flow);
  for (int i = 0; i < kReadsPerWakeup; ++i) {
    ssize_t n = recv(flow.from, scratch_.data(), max_read_, 0);
    if (n == 0) return source_ended(flow);
    if (n < 0) return would_block(errno) || closed(flow.source, evutil_socket_error_to_string(errno));
    auto size = static_cast<size_t>(n);
    owner_.on_relayed(flow.source, size);
    note_burst(flow, size);
    if (!forward(flow, scratch_.data(), size)) return false;
    if (flow.pending || size < max_read_) return true;  // the reader is full, or we drained the socket
  }
  return true;
}

bool Relay::forward(Flow& flow, const char* data, size_t size) {
  if (encrypts(flow)) {
    if (!encrypt(data, size)) return closed(Side::kClient, tls_error(SSL_ERROR_SSL));
    emit_tls();
    return true;
  }
  ssize_t sent = send(flow.to, data, size, MSG_NOSIGNAL);
  if (sent < 0 && !would_block(errno)) return closed(other(flow.source), evutil_socket_error_to_string(errno));
  size_t done = sent > 0 ? static_cast<size_t>(sent) : 0;
  if (done < size) keep(flow, data + done, size - done);
  return true;
}

// Fills the scratch buffer with what the client's SSL can decrypt now (several records), then
// forwards it in one send.
bool Relay::read_tls(Flow& flow) {
  if (flow.pending || flow.eof) return true;  // a timer from before (tls_more_) finds it blocked or ended
  if (down_.pending_end - down_.pending_begin > kTlsAnswerBacklog) {
    // Reading may make the SSL answer (alerts) into what waits for a client that is not
    // reading: stop until that has gone.
    event_del(&flow.readable);
    return true;
  }
  size_t filled = 0;
  int failure = SSL_ERROR_NONE;
  int read_errno = 0;
  ERR_clear_error();  // SSL_get_error reads the thread's queue: nothing of anyone else's in it
  while (filled < max_read_) {
    size_t n = 0;
    errno = 0;
    int rc = SSL_read_ex(tls_, scratch_.data() + filled, max_read_ - filled, &n);
    if (rc == 1) {
      filled += n;
      continue;
    }
    read_errno = errno;
    failure = SSL_get_error(tls_, rc);
    break;
  }
  emit_tls();  // what reading made the SSL say (a KeyUpdate answer, an alert)
  if (filled > 0) {
    owner_.on_relayed(flow.source, filled);
    if (!forward(flow, scratch_.data(), filled)) return false;
  }
  switch (failure) {
    case SSL_ERROR_NONE:  // scratch full: what the SSL still holds is read next iteration
      read_decrypted_later();
      return true;
    case SSL_ERROR_WANT_READ:
      return true;
    case SSL_ERROR_ZERO_RETURN:  // close_notify
      return source_ended(flow);
    default: {
      unsigned long e = ERR_peek_error();
      bool dirty_eof = (failure == SSL_ERROR_SYSCALL && e == 0 && read_errno == 0) ||
                       (failure == SSL_ERROR_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING);
      if (dirty_eof) {  // the client closed without close_notify: an end like any other
        ERR_clear_error();
        return source_ended(flow);
      }
      errno = read_errno;
      return closed(flow.source, tls_error(failure));
    }
  }
}

bool Relay::encrypt(const char* data, size_t size) {
  ERR_clear_error();
  while (size > 0) {
    size_t n = 0;
    if (SSL_write_ex(tls_, data, size, &n) != 1) {  // the sink takes everything: a fatal error
      sink_->clear();  // no half-written records for the next relay on this loop
      return false;
    }
    data += n;
    size -= n;
  }
  return true;
}

// Sends the records the sink collected to the client, behind whatever still waits for it.
void Relay::emit_tls() {
  if (sink_->empty()) return;
  send_or_keep(down_, sink_->data(), sink_->size());
  sink_->clear();
}

// Back-pressure: what the reader did not take waits here, and its source is not read meanwhile.
// More can join it (records the client's SSL writes while the client is slow).
void Relay::keep(Flow& flow, const char* data, size_t size) {
  size_t waiting = flow.pending_end - flow.pending_begin;
  auto block = std::make_unique_for_overwrite<char[]>(waiting + size);
  if (waiting > 0) std::memcpy(block.get(), flow.pending.get() + flow.pending_begin, waiting);
  std::memcpy(block.get() + waiting, data, size);
  bool was_waiting = flow.pending != nullptr;
  flow.pending = std::move(block);
  flow.pending_begin = 0;
  flow.pending_end = waiting + size;
  if (was_waiting) return;
  event_del(&flow.readable);
  event_add(&flow.writable, nullptr);
}

bool Relay::flush_pending(Flow& flow) {
  if (!flow.pending) return true;
  ssize_t sent = send(flow.to, flow.pending.get() + flow.pending_begin, flow.pending_end - flow.pending_begin,
                      MSG_NOSIGNAL);
  if (sent < 0 && would_block(errno)) return true;
  if (sent < 0) {
    event_del(&flow.writable);  // a broken socket stays writable: report it once
    return closed(other(flow.source), evutil_socket_error_to_string(errno));
  }
  flow.pending_begin += static_cast<size_t>(sent);
  if (flow.pending_begin < flow.pending_end) return true;
  flow.pending.reset();  // an idle session holds no buffer
  flow.pending_begin = flow.pending_end = 0;
  event_del(&flow.writable);
  if (quiet_) {
    if (&flow == &down_) owner_.on_relay_client_flushed();
    return true;
  }
  if (flow.eof) {
    shutdown(flow.to, SHUT_WR);  // the client half-closed and everything it sent is delivered
  } else {
    resume_reading(flow);
  }
  if (tls_ && &flow == &down_ && !up_.pending && !up_.eof) resume_reading(up_);  // see read_tls
  return true;
}

// The client may half-close after its last commands: they go to the shard, then we half-close
// towards it and keep relaying its answers. The shard closing ends the session.
bool Relay::source_ended(Flow& flow) {
  if (flow.source == Side::kBackend) return closed(Side::kBackend, "connection closed");
  flow.eof = true;
  event_del(&flow.readable);
  if (!flow.pending) shutdown(flow.to, SHUT_WR);
  owner_.on_relay_client_eof();
  return true;
}

void Relay::note_burst(Flow& flow, size_t bytes) {
  if (flow.bulk) {
    evtimer_add(&tail_, &kTail);  // pushed back by every read: fires once the burst pauses
    return;
  }
  auto now = steady_clock::now();
  if (now - flow.window_start > kBulkWindow) {
    flow.window_start = now;
    flow.window_bytes = 0;
  }
  flow.window_bytes += bytes;
  if (flow.window_bytes < static_cast<size_t>(kBulkBytes)) return;
  set_bulk(flow, true);
  evtimer_add(&tail_, &kTail);
}

void Relay::set_bulk(Flow& flow, bool bulk) {
  int lowat = bulk ? kBulkBytes : 1;
  bool set = setsockopt(flow.from, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat) == 0;
  if (set || !bulk) flow.bulk = bulk;
  flow.window_bytes = 0;
}

bool Relay::closed(Side side, const std::string& why) {
  owner_.on_relay_closed(side, why);
  return false;
}

}  // namespace basalt::proxy
