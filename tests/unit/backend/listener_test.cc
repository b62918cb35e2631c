#include "backend/listener.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "common/handles.h"

namespace basalt::store {
namespace {

// Greets, answers "job" with the result of pool work (sleeping first when asked), closes on "bye".
class LineConnection : public Connection {
 public:
  LineConnection(Listener& l, uint64_t id, bufferevent* bev, const SocketAddress& peer, ThreadPool& pool)
      : Connection(l, id, bev, peer), pool_(pool) {}
  void start() override {
    bufferevent_setcb(bev_, on_read, nullptr, nullptr, this);
    bufferevent_enable(bev_, EV_READ | EV_WRITE);
    send("hello\r\n");
  }

 private:
  static void on_read(bufferevent* bev, void* arg) {
    auto* self = static_cast<LineConnection*>(arg);
    size_t n = 0;
    char* line = evbuffer_readln(bufferevent_get_input(bev), &n, EVBUFFER_EOL_CRLF);
    if (!line) return;
    std::string cmd(line, n);
    free(line);
    if (cmd == "bye") return self->release();
    bool slow = cmd == "slow" || cmd == "goodbye";
    self->listener_.offload<LineConnection>(
        self->pool_, self->id_,
        [slow] {
          if (slow) std::this_thread::sleep_for(std::chrono::milliseconds(200));
          return std::string("42");
        },
        [](LineConnection& c, std::string r) { c.send(r + "\r\n"); });
    if (cmd == "slow") self->release();  // the result arrives for a closed session and is dropped
    if (cmd == "goodbye") {  // still open, but saying goodbye: the result must not follow it
      self->begin_closing();
      self->send("goodbye\r\n");
    }
  }
  void send(const std::string& s) { bufferevent_write(bev_, s.data(), s.size()); }
  ThreadPool& pool_;
};

class ListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    evthread_use_pthreads();
    base_.reset(event_base_new());
    auto addr = parse_socket_address("127.0.0.1:0");
    ASSERT_TRUE(addr.ok());
    auto fd = listen_tcp(*addr, "test", 16);
    ASSERT_TRUE(fd.ok());
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    getsockname(*fd, reinterpret_cast<sockaddr*>(&ss), &len);
    port_ = SocketAddress::from(reinterpret_cast<sockaddr*>(&ss), len).port();
    listener_ = std::make_unique<Listener>(
        base_.get(), ListenerOptions{"test", 2, "-ERR busy\r\n", 16},
        [this](Listener& l, uint64_t id, bufferevent* bev, const SocketAddress& peer) {
          return std::make_unique<LineConnection>(l, id, bev, peer, *pool_);
        });
    ASSERT_TRUE(listener_->listen(*fd).ok());
    loop_ = std::thread([this] { event_base_loop(base_.get(), EVLOOP_NO_EXIT_ON_EMPTY); });
  }
  void TearDown() override {
    event_base_loopexit(base_.get(), nullptr);
    loop_.join();
    pool_.reset();  // drained first: a job still running posts to the listener (see listener.h)
    listener_.reset();
  }

  int connect_client() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port_);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)), 0);
    return fd;
  }
  static std::string read_some(int fd) {
    char buf[256];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }
  static void write_all(int fd, const std::string& s) { ASSERT_EQ(::send(fd, s.data(), s.size(), 0), ssize_t(s.size())); }

  std::unique_ptr<ThreadPool> pool_ = std::make_unique<ThreadPool>(2);
  CHandle<event_base, event_base_free> base_;
  std::unique_ptr<Listener> listener_;
  std::thread loop_;
  uint16_t port_ = 0;
};

TEST_F(ListenerTest, RefusesOverTheLimitWithTheProtocolLine) {
  int a = connect_client();
  int b = connect_client();
  EXPECT_EQ(read_some(a), "hello\r\n");
  EXPECT_EQ(read_some(b), "hello\r\n");
  int c = connect_client();
  EXPECT_EQ(read_some(c), "-ERR busy\r\n");
  EXPECT_EQ(read_some(c), "");  // closed
  ::close(c);
  write_all(a, "bye\r\n");
  EXPECT_EQ(read_some(a), "");
  ::close(a);
  int d = connect_client();
  EXPECT_EQ(read_some(d), "hello\r\n");
  ::close(b);
  ::close(d);
}

TEST_F(ListenerTest, OffloadBringsTheResultBackToAnOpenSession) {
  int a = connect_client();
  EXPECT_EQ(read_some(a), "hello\r\n");
  write_all(a, "job\r\n");
  EXPECT_EQ(read_some(a), "42\r\n");
  ::close(a);
}

TEST_F(ListenerTest, OffloadResultForAClosingSessionIsDropped) {
  int a = connect_client();
  EXPECT_EQ(read_some(a), "hello\r\n");
  write_all(a, "goodbye\r\n");
  EXPECT_EQ(read_some(a), "goodbye\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));  // the 200 ms job is long done
  char buf[16];
  EXPECT_EQ(::recv(a, buf, sizeof(buf), MSG_DONTWAIT), -1) << "a result followed the goodbye";
  EXPECT_EQ(errno, EAGAIN);
  ::close(a);
}

TEST_F(ListenerTest, OffloadResultForAClosedSessionIsDropped) {
  int a = connect_client();
  EXPECT_EQ(read_some(a), "hello\r\n");
  write_all(a, "slow\r\n");
  EXPECT_EQ(read_some(a), "");  // released at once; the late "42" goes nowhere
  ::close(a);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  int b = connect_client();
  EXPECT_EQ(read_some(b), "hello\r\n");
  ::close(b);
}

}  // namespace
}  // namespace basalt::store
