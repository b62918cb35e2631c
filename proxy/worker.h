// A worker thread: its own event loop, Directory instance and sessions. Listening sockets are
// shared; every worker accepts from each of them.
#pragma once

#include <event2/listener.h>

#include <memory>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/handles.h"
#include "common/loop_tasks.h"
#include "common/thread_pool.h"
#include "proxy/auth_cache.h"
#include "common/result.h"
#include "directory/directory.h"
#include "proxy/proxy_config.h"
#include "proxy/session.h"
#include "proxy/shard_pool.h"
#include "proxy/stats.h"
#include "proxy/tls_contexts.h"

namespace basalt::proxy {

class Session;

struct ListenSocket {
  evutil_socket_t fd = -1;
  Protocol protocol = Protocol::kImap;
  bool proxy_protocol = false;
};

class Worker {
 public:
  Worker(unsigned index, std::shared_ptr<const ProxyConfig> config, std::shared_ptr<const TlsContexts> tls,
         Stats& stats, ClientLimits& limits, AuthCache& auth_cache, ThreadPool& pool);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  Result<void> init(const std::vector<ListenSocket>& sockets);
  void start();  // runs the loop on a new thread
  void stop();   // thread-safe: ends the loop; open sessions are closed
  void join();
  // Thread-safe: runs `task` on this worker's loop.
  void post(std::function<void()> task) { tasks_->post(std::move(task)); }

  // Loop thread only (post() them):
  std::vector<SessionInfo> sessions(const std::string& user) const;  // "" = all
  size_t kick_user(const std::string& user, const std::string& text);
  // Stops accepting; sessions not yet logged in are told goodbye, logged-in ones go on.
  void begin_drain();
  void kick_all(const std::string& text);
  // SIGHUP: new sessions use `config` and `tls`; a new Directory takes new logins while the old
  // one finishes what it has started.
  void reload(std::shared_ptr<const ProxyConfig> config, std::shared_ptr<const TlsContexts> tls);

  event_base* base() { return base_.get(); }
  directory::Directory& directory() { return *directory_; }
  // The current configuration and TLS contexts; a session keeps the ones it started with.
  std::shared_ptr<const ProxyConfig> config() const { return config_; }
  std::shared_ptr<const TlsContexts> tls() const { return tls_; }
  Stats& stats() { return stats_; }
  ClientLimits& limits() { return limits_; }
  AuthCache& auth_cache() { return auth_cache_; }
  ThreadPool& pool() { return pool_; }
  ShardPool& shard_pool() { return *shard_pool_; }
  unsigned index() const { return index_; }
  // Where raw relays read before writing through; one per loop, allocated on first use.
  std::span<char> relay_scratch();
  // Where relays of TLS clients collect the records of one write before sending them.
  std::string& relay_tls_sink() { return relay_tls_sink_; }

  Session* find(uint64_t id);
  // Removes a closed session; it is destroyed at the end of this loop iteration so that the
  // callback that closed it can still return through it.
  void retire(uint64_t id);

 private:
  struct Acceptor {
    Worker* worker = nullptr;
    Protocol protocol = Protocol::kImap;
    bool proxy_protocol = false;
    evconnlistener* listener = nullptr;
    SocketAddress address;  // where it listens
    bool wildcard = false;  // 0.0.0.0 or [::]: each connection's local address is asked for
  };
  // A connection whose PROXY protocol header has not fully arrived yet.
  struct HeaderWait {
    Worker* worker;
    evutil_socket_t fd;
    Protocol protocol;
    SocketAddress peer, local;
    event* readable = nullptr;
    event* timeout = nullptr;
  };
  static void on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int len, void* arg);
  static void on_header_event(evutil_socket_t fd, short what, void* arg);
  void start_session(evutil_socket_t fd, Protocol protocol, const SocketAddress& peer, const SocketAddress& local);
  void wait_for_header(evutil_socket_t fd, Protocol protocol, const SocketAddress& peer, const SocketAddress& local);
  void drop_header_wait(HeaderWait* wait, bool close_fd);
  static void on_reap(evutil_socket_t, short, void* arg);
  directory::Offload offload() {
    return {pool_, [this](std::function<void()> task) { post(std::move(task)); }};
  }

  const unsigned index_;
  std::shared_ptr<const ProxyConfig> config_;
  std::shared_ptr<const TlsContexts> tls_;
  Stats& stats_;
  ClientLimits& limits_;
  AuthCache& auth_cache_;
  ThreadPool& pool_;
  CHandle<event_base, event_base_free> base_;
  std::unique_ptr<directory::Directory> directory_;
  std::unique_ptr<ShardPool> shard_pool_;
  std::vector<std::unique_ptr<directory::Directory>> retired_directories_;
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  std::unordered_map<uint64_t, std::unique_ptr<Session>> sessions_;
  std::vector<std::unique_ptr<Session>> graveyard_;
  std::unordered_map<HeaderWait*, std::unique_ptr<HeaderWait>> header_waits_;
  event* reaper_ = nullptr;
  std::unique_ptr<LoopTasks> tasks_;
  uint64_t next_id_ = 1;
  std::unique_ptr<char[]> relay_scratch_;
  std::string relay_tls_sink_;
  std::thread thread_;
};

}  // namespace basalt::proxy
