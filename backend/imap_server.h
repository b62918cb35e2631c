// The IMAP4rev1 listener of basalt-store (RFC 3501 + LITERAL+, SASL-IR, ID, ENABLE, IDLE,
// NAMESPACE, UIDPLUS, MOVE, UNSELECT) for the shard's users. One libevent loop; every
// MailboxHub call and every password check runs on the ThreadPool and its result is posted back
// to the loop (see ImapSession). Accepting, the connection limit and session lifetime live here.
#pragma once

#include <event2/util.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "backend/store_config.h"
#include "common/loop_tasks.h"
#include "common/result.h"
#include "common/thread_pool.h"

struct event_base;
struct event;
struct evconnlistener;

namespace basalt::store {

class MailboxHub;
class ImapSession;

class ImapServer {
 public:
  // `config`, `hub` and `pool` must outlive the server, and the pool must be drained
  // (destroyed) before the server is.
  ImapServer(event_base* base, const StoreConfig& config, MailboxHub& hub, ThreadPool& pool);
  ~ImapServer();
  ImapServer(const ImapServer&) = delete;
  ImapServer& operator=(const ImapServer&) = delete;

  // `listen_fd` is bound and listening; the server owns it from here.
  Result<void> listen(evutil_socket_t listen_fd);
  size_t sessions() const { return sessions_.size(); }

  // Any thread: runs `fn` on the loop with session `id`, if that session still exists.
  void post(uint64_t id, std::function<void(ImapSession&)> fn);

  event_base* base() const { return base_; }
  const StoreConfig& config() const { return config_; }
  MailboxHub& hub() const { return hub_; }
  ThreadPool& pool() const { return pool_; }
  void close_session(uint64_t id);  // freed at the end of the loop iteration

 private:
  static void on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int len, void* arg);
  static void on_reap(evutil_socket_t, short, void* arg);

  event_base* base_;
  const StoreConfig& config_;
  MailboxHub& hub_;
  ThreadPool& pool_;
  LoopTasks tasks_;
  evconnlistener* listener_ = nullptr;
  event* reap_ = nullptr;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<ImapSession>> sessions_;
  std::vector<std::unique_ptr<ImapSession>> closed_;
};

}  // namespace basalt::store
