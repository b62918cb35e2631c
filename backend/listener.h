// The client-protocol listener shared by basalt-store's POP3 and IMAP servers: accepts on one
// event loop, refuses connections over max_connections with the protocol's own line, owns the
// sessions (freed at the end of the loop iteration they close in), and brings results of
// ThreadPool work back to a session only if it is still open (ids are never reused, so a
// result for a closed session is dropped).
//
// A protocol derives its session from Connection and hands the Listener a factory.
#pragma once

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "common/handles.h"
#include "common/loop_tasks.h"
#include "common/net.h"
#include "common/result.h"
#include "common/thread_pool.h"

struct ssl_ctx_st;

namespace basalt::store {

class Listener;

// One accepted client connection; owns its socket and bufferevent.
class Connection {
 public:
  Connection(Listener& listener, uint64_t id, bufferevent* bev, const SocketAddress& peer);
  virtual ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  virtual void start() = 0;  // set callbacks, greet
  uint64_t id() const { return id_; }
  // Saying goodbye (or gone): Listener::post() and offload() results no longer reach it, so no
  // reply can follow the goodbye and no finished job revives the session.
  bool closing() const { return closing_; }

 protected:
  void begin_closing() { closing_ = true; }
  // Inactivity limit for reads and for writes (a client that stops reading); 0 = none.
  void set_timeouts(unsigned seconds);
  // Stops all callbacks; the session is deleted at the end of this loop iteration.
  void release();
  // STARTTLS / STLS, once the "go ahead" reply has been flushed: replaces the plaintext
  // bufferevent with a server-side TLS one on the same socket. The session then sets its
  // callbacks, timeouts and watermarks again. False when TLS cannot start: the session must
  // then close at once and touch bev_ no more (it may be null; release() accepts that).
  bool start_tls(ssl_ctx_st* ctx);
  bool tls_active() const { return tls_; }
  // Hands buffered input to `feed(chunk) -> bytes used` while `ready()` holds. Returns true
  // when it stopped reading because the client has more than `max_output` bytes of replies
  // unread (a pipelining client that does not read): re-enable EV_READ from the write callback.
  template <class Ready, class Feed>
  bool drain_input(size_t max_output, Ready ready, Feed feed);

  Listener& listener_;
  const uint64_t id_;
  const evutil_socket_t fd_;
  bufferevent* bev_;  // plaintext (does not close fd_), then the TLS one (closes it); null after a failed start_tls
  const SocketAddress peer_;
  bool tls_ = false;
  bool closing_ = false;
};

struct ListenerOptions {
  std::string name;          // logger and log prefix ("pop3", "imap")
  unsigned max_connections = 1000;
  std::string refusal;       // sent to a connection over the limit, e.g. "-ERR [SYS/TEMP] ...\r\n"
  size_t max_queued_jobs = 4096;  // ThreadPool queue cap for offload()
};

class Listener {
 public:
  using Factory =
      std::function<std::unique_ptr<Connection>(Listener&, uint64_t id, bufferevent* bev, const SocketAddress& peer)>;

  // The ThreadPool used with offload() must be drained (destroyed) before the Listener.
  Listener(event_base* base, ListenerOptions options, Factory factory);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // `listen_fd` is bound and listening; the Listener owns it from here.
  Result<void> listen(evutil_socket_t listen_fd);

  event_base* base() const { return base_; }
  size_t sessions() const { return sessions_.size(); }
  const ListenerOptions& options() const { return options_; }

  // From any thread: runs `fn` on the loop with the connection if it is still open (and not
  // closing) then.
  void post(uint64_t id, std::function<void(Connection&)> fn);

  // Runs `work()` on `pool`, then `done(session, result)` on the loop if the session `id` is
  // still open and not closing (S: the session type). False, and nothing runs, when the pool queue is full.
  template <class S, class Work, class Done>
  bool offload(ThreadPool& pool, uint64_t id, Work work, Done done);

 private:
  friend class Connection;
  static void on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int len, void* arg);
  static void on_reap(evutil_socket_t, short, void* arg);
  void release(uint64_t id);

  event_base* base_;
  ListenerOptions options_;
  Factory factory_;
  LoopTasks tasks_;
  CHandle<evconnlistener, evconnlistener_free> listener_;
  CHandle<event, event_free> reap_;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> sessions_;
  std::vector<std::unique_ptr<Connection>> closed_;  // freed at the end of the loop iteration
};

template <class Ready, class Feed>
bool Connection::drain_input(size_t max_output, Ready ready, Feed feed) {
  evbuffer* in = bufferevent_get_input(bev_);
  while (ready() && evbuffer_get_length(in) > 0) {
    if (evbuffer_get_length(bufferevent_get_output(bev_)) > max_output) {
      bufferevent_disable(bev_, EV_READ);
      return true;
    }
    evbuffer_iovec v;
    if (evbuffer_peek(in, -1, nullptr, &v, 1) < 1) break;
    size_t used = feed(std::string_view(static_cast<const char*>(v.iov_base), v.iov_len));
    evbuffer_drain(in, used);
  }
  return false;
}

template <class S, class Work, class Done>
bool Listener::offload(ThreadPool& pool, uint64_t id, Work work, Done done) {
  static_assert(std::is_base_of_v<Connection, S>);
  auto job = [this, id, work = std::move(work), done = std::move(done)]() mutable {
    // Shared so that a large result (a message body) is moved, never copied, on its way back.
    auto result = std::make_shared<std::invoke_result_t<Work&>>(work());
    post(id, [result, done](Connection& c) mutable { done(static_cast<S&>(c), std::move(*result)); });
  };
  return pool.post(std::move(job), options_.max_queued_jobs);
}

}  // namespace basalt::store
