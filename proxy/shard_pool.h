// Warm shard connections: opened ahead of logins, so that a login takes one that is already
// connected (TLS included) and greeted, and its critical path skips TCP and TLS set-up and the
// shard's greeting. One pool per worker loop, with a few connections per shard and protocol.
// A shard's pool fills once it has had a login and empties again after max_age without one,
// so idle shards hold no connections of ours.
#pragma once

#include <event2/bufferevent.h>
#include <event2/event.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <memory>
#include <utility>
#include <vector>

#include "common/result.h"
#include "proxy/proxy_config.h"
#include "proxy/stats.h"
#include "proxy/tls_contexts.h"

namespace basalt::proxy {

// A new, unconnected bufferevent for a connection to `shard` at `address`: TLS when `tls` is
// set (the handshake is reported as BEV_EVENT_CONNECTED once the certificate is verified).
Result<bufferevent*> new_shard_bufferevent(event_base* base, const ShardConfig& shard, SSL_CTX* tls,
                                           const SocketAddress& address);
// Small protocol replies must not wait for Nagle.
void set_tcp_nodelay(bufferevent* bev);

class ShardPool {
 public:
  ShardPool(event_base* base, Stats& stats);
  ~ShardPool();
  ShardPool(const ShardPool&) = delete;
  ShardPool& operator=(const ShardPool&) = delete;

  // The shards and TLS contexts connections are made with; drops every connection (after a
  // reload a shard's address or TLS may have changed).
  void configure(std::shared_ptr<const ProxyConfig> config, std::shared_ptr<const TlsContexts> tls);
  // Drops every connection and opens no more (drain, shutdown).
  void stop();

  // A connected, greeted connection to `shard` (the greeting still unread in its input, no
  // callbacks set), or nullptr. Either way the pool then tops up this shard's connections.
  // `shard` must come from the configured ProxyConfig; a session still on an older config
  // (before a reload) gets nullptr.
  bufferevent* take(const ShardConfig& shard, bool imap);

  size_t ready(const ShardConfig& shard, bool imap) const;  // for tests

 private:
  using Key = std::pair<size_t, bool>;  // shard index, imap (else pop3)
  using Clock = std::chrono::steady_clock;
  struct Entry {
    Entry() = default;
    ~Entry();
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;
    ShardPool* pool = nullptr;
    Key key;
    bufferevent* bev = nullptr;
    event* timer = nullptr;
    bool ready = false;
  };
  struct Slot {
    std::vector<std::unique_ptr<Entry>> entries;  // oldest first
    Clock::time_point last_take{};
    Clock::time_point quiet_until{};  // after a failure: no refills before this
  };

  static void on_read(bufferevent* bev, void* arg);
  static void on_event(bufferevent* bev, short what, void* arg);
  static void on_timer(evutil_socket_t, short, void* arg);
  static void on_refill_timer(evutil_socket_t, short, void* arg);
  const ShardConfig* shard_of(const Key& key) const;
  std::optional<size_t> index_of(const ShardConfig& shard) const;
  void refill(const Key& key);
  void open(const Key& key);
  void on_greeting(Entry& entry);
  void expire(Entry& entry);
  void fail(Entry& entry);
  void remove(Entry& entry);
  void arm(Entry& entry, std::chrono::milliseconds delay);

  event_base* base_;
  std::shared_ptr<const ProxyConfig> config_;
  std::shared_ptr<const TlsContexts> tls_;
  Stats& stats_;
  std::map<Key, Slot> slots_;
  std::vector<Key> refill_queue_;  // taken from since the last refill
  event* refill_timer_ = nullptr;
  bool stopped_ = false;
};

}  // namespace basalt::proxy
