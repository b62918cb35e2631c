#include "proxy/shard_pool.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>

#include "common/log.h"

namespace basalt::proxy {
namespace {

using std::chrono::milliseconds;

constexpr size_t kMaxGreeting = 64 * 1024;
constexpr std::chrono::seconds kQuietAfterFailure{1};
constexpr std::chrono::microseconds kRefillDelay{1000};

}  // namespace

Result<bufferevent*> new_shard_bufferevent(event_base* base, const ShardConfig& shard, SSL_CTX* tls,
                                           const SocketAddress& address) {
  constexpr int kOptions = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
  if (!tls) {
    bufferevent* bev = bufferevent_socket_new(base, -1, kOptions);
    if (!bev) return make_error("out of memory");
    return bev;
  }
  SslPtr ssl(SSL_new(tls));
  if (!ssl) return make_error("TLS: " + openssl_error_text());
  if (auto named = set_tls_peer_name(ssl.get(), shard.tls_name.empty() ? address.host() : shard.tls_name); !named) {
    return named.error();
  }
  bufferevent* bev = bufferevent_openssl_socket_new(base, -1, ssl.release(), BUFFEREVENT_SSL_CONNECTING, kOptions);
  if (!bev) return make_error("out of memory");
  bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
  return bev;
}

void set_tcp_nodelay(bufferevent* bev) {
  evutil_socket_t fd = bufferevent_getfd(bev);
  int one = 1;
  if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

ShardPool::ShardPool(event_base* base, Stats& stats)
    : base_(base), stats_(stats), refill_timer_(evtimer_new(base, on_refill_timer, this)) {}

ShardPool::~ShardPool() {
  stop();
  if (refill_timer_) event_free(refill_timer_);
}

void ShardPool::configure(std::shared_ptr<const ProxyConfig> config, std::shared_ptr<const TlsContexts> tls) {
  slots_.clear();  // entries free their bufferevents and timers
  refill_queue_.clear();
  config_ = std::move(config);
  tls_ = std::move(tls);
}

void ShardPool::stop() {
  stopped_ = true;
  slots_.clear();
  refill_queue_.clear();
}

const ShardConfig* ShardPool::shard_of(const Key& key) const {
  return config_ && key.first < config_->shards.size() ? &config_->shards[key.first] : nullptr;
}

std::optional<size_t> ShardPool::index_of(const ShardConfig& shard) const {
  if (!config_) return std::nullopt;
  for (size_t i = 0; i < config_->shards.size(); ++i) {
    if (&config_->shards[i] == &shard) return i;
  }
  return std::nullopt;
}

bufferevent* ShardPool::take(const ShardConfig& shard, bool imap) {
  if (stopped_ || !config_ || config_->warm_shard_connections == 0) return nullptr;
  std::optional<size_t> index = index_of(shard);
  if (!index) return nullptr;
  Key key{*index, imap};
  Slot& slot = slots_[key];
  slot.last_take = Clock::now();
  bufferevent* bev = nullptr;
  auto it = std::find_if(slot.entries.begin(), slot.entries.end(), [](const auto& e) { return e->ready; });
  if (it != slot.entries.end()) {
    std::unique_ptr<Entry> entry = std::move(*it);
    slot.entries.erase(it);
    bufferevent_setcb(entry->bev, nullptr, nullptr, nullptr, nullptr);
    bev = std::exchange(entry->bev, nullptr);
    Stats::add(stats_.warm_used);
  } else {
    Stats::add(stats_.warm_missed);
  }
  // Topped up a little later: connecting now would go ahead of the taker's own login (and
  // wake the shard for a greeting while it should be busy with that login); the next loop
  // iteration is not late enough, since a timer runs before the deferred read that sends it.
  if (std::find(refill_queue_.begin(), refill_queue_.end(), key) == refill_queue_.end()) refill_queue_.push_back(key);
  if (refill_timer_ && !evtimer_pending(refill_timer_, nullptr)) {
    timeval delay{0, kRefillDelay.count()};
    evtimer_add(refill_timer_, &delay);
  }
  return bev;
}

void ShardPool::on_refill_timer(evutil_socket_t, short, void* arg) {
  auto* pool = static_cast<ShardPool*>(arg);
  for (const Key& key : std::exchange(pool->refill_queue_, {})) pool->refill(key);
}

size_t ShardPool::ready(const ShardConfig& shard, bool imap) const {
  std::optional<size_t> index = index_of(shard);
  auto it = index ? slots_.find(Key{*index, imap}) : slots_.end();
  if (it == slots_.end()) return 0;
  const auto& entries = it->second.entries;
  return static_cast<size_t>(std::count_if(entries.begin(), entries.end(), [](const auto& e) { return e->ready; }));
}

void ShardPool::refill(const Key& key) {
  Slot& slot = slots_[key];
  if (stopped_ || Clock::now() < slot.quiet_until) return;
  while (slot.entries.size() < config_->warm_shard_connections) {
    size_t before = slot.entries.size();
    open(key);
    if (slot.entries.size() == before) return;  // could not even start: try again on the next login
  }
}

void ShardPool::open(const Key& key) {
  const ShardConfig* shard = shard_of(key);
  bool imap = key.second;
  if (!shard || (imap ? !shard->has_imap : !shard->has_pop3)) return;
  const SocketAddress& address = imap ? shard->imap : shard->pop3;
  auto bev = new_shard_bufferevent(base_, *shard, tls_ ? tls_->shard(key.first) : nullptr, address);
  if (!bev) return;
  auto entry = std::make_unique<Entry>();
  entry->pool = this;
  entry->key = key;
  entry->bev = *bev;
  entry->timer = evtimer_new(base_, on_timer, entry.get());
  bufferevent_setcb(entry->bev, on_read, nullptr, on_event, entry.get());
  bufferevent_enable(entry->bev, EV_READ);
  if (!entry->timer || bufferevent_socket_connect(entry->bev, address.get(), static_cast<int>(address.length)) < 0) {
    logger("proxy")->debug("warm connection to shard {}: connect failed", shard->name);
    slots_[key].quiet_until = Clock::now() + kQuietAfterFailure;
    return;  // ~Entry frees the bufferevent and the timer
  }
  arm(*entry, shard->connect_timeout + shard->login_timeout);
  slots_[key].entries.push_back(std::move(entry));
}

void ShardPool::arm(Entry& entry, milliseconds delay) {
  timeval tv{static_cast<time_t>(delay.count() / 1000), static_cast<suseconds_t>(delay.count() % 1000 * 1000)};
  evtimer_add(entry.timer, &tv);
}

void ShardPool::on_read(bufferevent* bev, void* arg) {
  auto* entry = static_cast<Entry*>(arg);
  evbuffer* input = bufferevent_get_input(bev);
  if (entry->ready) {  // anything after the greeting (a BYE for idleness, say) makes it unusable
    entry->pool->fail(*entry);
    return;
  }
  size_t eol_length = 0;
  evbuffer_ptr eol = evbuffer_search_eol(input, nullptr, &eol_length, EVBUFFER_EOL_CRLF);
  if (eol.pos < 0) {
    if (evbuffer_get_length(input) > kMaxGreeting) entry->pool->fail(*entry);
    return;
  }
  if (evbuffer_get_length(input) > static_cast<size_t>(eol.pos) + eol_length) {
    entry->pool->fail(*entry);  // more than a greeting
    return;
  }
  entry->pool->on_greeting(*entry);
}

void ShardPool::on_greeting(Entry& entry) {
  entry.ready = true;
  arm(entry, std::chrono::duration_cast<milliseconds>(config_->warm_shard_max_age));
}

void ShardPool::on_event(bufferevent* bev, short what, void* arg) {
  auto* entry = static_cast<Entry*>(arg);
  if (what & BEV_EVENT_CONNECTED) {
    set_tcp_nodelay(bev);
    return;
  }
  entry->pool->fail(*entry);
}

void ShardPool::on_timer(evutil_socket_t, short, void* arg) {
  auto* entry = static_cast<Entry*>(arg);
  if (entry->ready) {
    entry->pool->expire(*entry);
  } else {
    entry->pool->fail(*entry);  // no greeting in time
  }
}

// A warm connection reached max_age unused: replace it only while the shard still has logins.
void ShardPool::expire(Entry& entry) {
  Key key = entry.key;
  Stats::add(stats_.warm_expired);
  remove(entry);
  if (Clock::now() - slots_[key].last_take < config_->warm_shard_max_age) refill(key);
}

void ShardPool::fail(Entry& entry) {
  Stats::add(stats_.warm_failed);
  // A shard that refuses or breaks connections is not hammered: the next login after a quiet
  // second tries again.
  slots_[entry.key].quiet_until = Clock::now() + kQuietAfterFailure;
  if (const ShardConfig* shard = shard_of(entry.key)) {
    logger("proxy")->debug("warm connection to shard {} ({}) dropped", shard->name, entry.key.second ? "imap" : "pop3");
  }
  remove(entry);
}

// Frees the entry with its bufferevent and timer (also from inside their own callbacks).
void ShardPool::remove(Entry& entry) {
  auto& entries = slots_[entry.key].entries;
  std::erase_if(entries, [&](const auto& e) { return e.get() == &entry; });
}

ShardPool::Entry::~Entry() {
  if (timer) event_free(timer);
  if (bev) bufferevent_free(bev);
}

}  // namespace basalt::proxy
