#include "proxy/shard_pool.h"

#include <event2/buffer.h>
#include <event2/listener.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace basalt::proxy {
namespace {

using namespace std::chrono_literals;

// A shard on loopback that greets every connection with `greeting` (nothing if empty).
class FakeShard {
 public:
  explicit FakeShard(event_base* base) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    listener_ = evconnlistener_new_bind(base, on_accept, this, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                        reinterpret_cast<sockaddr*>(&sin), sizeof sin);
    address.length = sizeof address.storage;
    getsockname(evconnlistener_get_fd(listener_), reinterpret_cast<sockaddr*>(&address.storage), &address.length);
  }
  ~FakeShard() {
    close_all();
    evconnlistener_free(listener_);
  }
  void close_all() {
    for (int fd : open_) ::close(fd);
    open_.clear();
  }

  SocketAddress address;
  std::string greeting = "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n";
  size_t accepted = 0;

 private:
  static void on_accept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
    auto* self = static_cast<FakeShard*>(arg);
    ++self->accepted;
    self->open_.push_back(fd);
    if (!self->greeting.empty()) (void)!::send(fd, self->greeting.data(), self->greeting.size(), MSG_NOSIGNAL);
  }
  evconnlistener* listener_ = nullptr;
  std::vector<int> open_;
};

class ShardPoolTest : public ::testing::Test {
 protected:
  ShardPoolTest() : base_(event_base_new()), shard_(base_) {}
  ~ShardPoolTest() override {
    pool_.reset();
    event_base_free(base_);
  }

  // A pool over one plaintext shard (the fake) with `warm` connections that live `max_age`.
  void make_pool(size_t warm = 2, std::chrono::seconds max_age = 20s) {
    auto config = std::make_shared<ProxyConfig>();
    config->warm_shard_connections = warm;
    config->warm_shard_max_age = max_age;
    ShardConfig s;
    s.name = "a";
    s.imap = shard_.address;
    s.has_imap = true;
    s.connect_timeout = 100ms;
    s.login_timeout = 100ms;
    config->shards.push_back(s);
    config_ = config;
    pool_ = std::make_unique<ShardPool>(base_, stats_);
    pool_->configure(config_, nullptr);
  }
  const ShardConfig& shard() const { return config_->shards.front(); }

  // Runs the loop until `done` or `limit`; returns done().
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 3000ms) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      event_base_loop(base_, EVLOOP_NONBLOCK);
      std::this_thread::sleep_for(1ms);
    }
    return done();
  }
  void run_for(std::chrono::milliseconds time) {
    run_until([] { return false; }, time);
  }
  // The first take misses and starts the fill; wait until it is complete.
  void fill() {
    EXPECT_EQ(pool_->take(shard(), true), nullptr);
    ASSERT_TRUE(run_until([&] { return pool_->ready(shard(), true) == 2; }));
  }

  event_base* base_;
  FakeShard shard_;
  Stats stats_;
  std::shared_ptr<const ProxyConfig> config_;
  std::unique_ptr<ShardPool> pool_;
};

std::string contents(bufferevent* bev) {
  evbuffer* input = bufferevent_get_input(bev);
  std::string text(evbuffer_get_length(input), '\0');
  evbuffer_copyout(input, text.data(), text.size());
  return text;
}

TEST_F(ShardPoolTest, AColdTakeMissesThenGreetedConnectionsAreHandedOut) {
  make_pool();
  fill();
  EXPECT_EQ(stats_.warm_missed.load(), 1u);
  EXPECT_EQ(shard_.accepted, 2u);
  bufferevent* bev = pool_->take(shard(), true);
  ASSERT_NE(bev, nullptr);
  EXPECT_EQ(contents(bev), shard_.greeting);  // still unread: the session reads it as if just arrived
  EXPECT_EQ(stats_.warm_used.load(), 1u);
  EXPECT_EQ(pool_->ready(shard(), true), 1u);
  // The taken one is replaced.
  EXPECT_TRUE(run_until([&] { return pool_->ready(shard(), true) == 2; }));
  EXPECT_EQ(shard_.accepted, 3u);
  bufferevent_free(bev);
}

TEST_F(ShardPoolTest, PoolsAreKeptPerProtocol) {
  make_pool();
  fill();
  EXPECT_EQ(pool_->take(shard(), false), nullptr);  // the shard has no pop3 address: nothing to warm
  run_for(50ms);
  EXPECT_EQ(pool_->ready(shard(), false), 0u);
  EXPECT_EQ(shard_.accepted, 2u);
}

TEST_F(ShardPoolTest, ConnectionsTheShardClosesAreDroppedAndNotReopenedAtOnce) {
  make_pool();
  fill();
  shard_.close_all();
  ASSERT_TRUE(run_until([&] { return pool_->ready(shard(), true) == 0; }));
  EXPECT_EQ(stats_.warm_failed.load(), 2u);
  run_for(200ms);
  EXPECT_EQ(shard_.accepted, 2u);  // a failing shard is not hammered; the next login retries
  EXPECT_EQ(pool_->take(shard(), true), nullptr);
}

TEST_F(ShardPoolTest, UnusedConnectionsExpireAndAShardWithoutLoginsGetsNoNewOnes) {
  make_pool(2, 1s);
  fill();
  ASSERT_TRUE(run_until([&] { return stats_.warm_expired.load() == 2; }, 4000ms));
  EXPECT_EQ(pool_->ready(shard(), true), 0u);
  run_for(100ms);
  EXPECT_EQ(shard_.accepted, 2u);
  EXPECT_EQ(stats_.warm_failed.load(), 0u);
}

TEST_F(ShardPoolTest, AnythingAfterTheGreetingMakesAConnectionUnusable) {
  shard_.greeting = "* OK ready\r\n* BYE Disconnected for inactivity.\r\n";
  make_pool();
  EXPECT_EQ(pool_->take(shard(), true), nullptr);
  ASSERT_TRUE(run_until([&] { return stats_.warm_failed.load() == 2; }));
  EXPECT_EQ(pool_->ready(shard(), true), 0u);
}

TEST_F(ShardPoolTest, NoGreetingInTimeIsAFailure) {
  shard_.greeting.clear();
  make_pool();
  EXPECT_EQ(pool_->take(shard(), true), nullptr);
  ASSERT_TRUE(run_until([&] { return stats_.warm_failed.load() == 2; }));  // connect + login timeout: 200 ms
  EXPECT_EQ(pool_->ready(shard(), true), 0u);
}

TEST_F(ShardPoolTest, AConnectThatFailsAtOnceLeavesNothingBehind) {
  make_pool();
  auto config = std::make_shared<ProxyConfig>(*config_);
  // connect() to the broadcast address fails at once (EACCES): the entry is dropped right there.
  config->shards.front().imap = *parse_socket_address("255.255.255.255:143");
  config_ = config;
  pool_->configure(config_, nullptr);
  EXPECT_EQ(pool_->take(shard(), true), nullptr);
  run_for(50ms);
  EXPECT_EQ(pool_->ready(shard(), true), 0u);
  EXPECT_EQ(pool_->take(shard(), true), nullptr);  // within the quiet second: no new attempt
  run_for(20ms);
  EXPECT_EQ(pool_->ready(shard(), true), 0u);
}

TEST_F(ShardPoolTest, AShardFromAnotherConfigGetsNothing) {
  make_pool();
  ShardConfig stale = shard();  // a session still on the config before a reload
  EXPECT_EQ(pool_->take(stale, true), nullptr);
  run_for(50ms);
  EXPECT_EQ(shard_.accepted, 0u);
}

TEST_F(ShardPoolTest, ZeroWarmConnectionsNeverConnects) {
  make_pool(0);
  EXPECT_EQ(pool_->take(shard(), true), nullptr);
  run_for(50ms);
  EXPECT_EQ(shard_.accepted, 0u);
  EXPECT_EQ(stats_.warm_missed.load(), 0u);
}

TEST_F(ShardPoolTest, StopClosesEverythingAndOpensNoMore) {
  make_pool();
  fill();
  pool_->stop();
  EXPECT_EQ(pool_->ready(shard(), true), 0u);
  EXPECT_EQ(pool_->take(shard(), true), nullptr);
  run_for(50ms);
  EXPECT_EQ(shard_.accepted, 2u);
}

TEST_F(ShardPoolTest, ReconfiguringDropsTheOldConnections) {
  make_pool();
  fill();
  auto old = config_;
  pool_->configure(std::make_shared<ProxyConfig>(*old), nullptr);
  EXPECT_EQ(pool_->ready(old->shards.front(), true), 0u);
  EXPECT_EQ(pool_->take(old->shards.front(), true), nullptr);  // the old config's shard is not served
}

}  // namespace
}  // namespace basalt::proxy
