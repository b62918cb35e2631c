// The IMAP4rev1 listener of basalt-store (RFC 3501 + LITERAL+, SASL-IR, ID, ENABLE, IDLE,
// NAMESPACE, UIDPLUS, MOVE, UNSELECT) for the shard's users, on the shared client Listener
// (backend/listener.h). Every MailboxHub call and every password check runs on the ThreadPool
// and its result comes back to the loop (see ImapSession).
#pragma once

#include <event2/util.h>

#include <cstdint>
#include <functional>

#include "backend/listener.h"
#include "backend/store_config.h"
#include "common/result.h"
#include "common/thread_pool.h"

struct event_base;
struct ssl_ctx_st;

namespace basalt::store {

class MailboxHub;
class ImapSession;

class ImapServer {
 public:
  // `config`, `hub` and `pool` must outlive the server, and the pool must be drained
  // (destroyed) before the server is.
  // `tls` (may be null): the server context STARTTLS uses; it must outlive the server too.
  ImapServer(event_base* base, const StoreConfig& config, MailboxHub& hub, ThreadPool& pool, ssl_ctx_st* tls);
  ImapServer(const ImapServer&) = delete;
  ImapServer& operator=(const ImapServer&) = delete;

  // `listen_fd` is bound and listening; the server owns it from here.
  Result<void> listen(evutil_socket_t listen_fd) { return listener_.listen(listen_fd); }
  size_t sessions() const { return listener_.sessions(); }

  // Any thread: runs `fn` on the loop with session `id`, if that session still exists.
  void post(uint64_t id, std::function<void(ImapSession&)> fn);

  event_base* base() const { return listener_.base(); }
  const StoreConfig& config() const { return config_; }
  MailboxHub& hub() const { return hub_; }
  ThreadPool& pool() const { return pool_; }
  Listener& listener() { return listener_; }
  ssl_ctx_st* tls() const { return tls_; }

 private:
  const StoreConfig& config_;
  MailboxHub& hub_;
  ThreadPool& pool_;
  ssl_ctx_st* tls_;
  Listener listener_;
};

}  // namespace basalt::store
