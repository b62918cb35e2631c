// LdapDirectory without a real server: input checks, refused and hung servers, timeouts,
// back-off, queue limits and lifetime. The integration tests cover a real slapd.
#include "directory/ldap_directory.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>

#include "test_util.h"

namespace basalt::directory {
namespace {

using namespace std::chrono_literals;
using testing::EventBase;
using testing::run_for;
using testing::run_until;
using Clock = std::chrono::steady_clock;

// A loopback socket: listening (accepts TCP handshakes, never answers: a hung server) or
// closed again at once (its port refuses connections).
class Listener {
 public:
  explicit Listener(bool keep_listening) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sin;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&sin), len), 0);
    EXPECT_EQ(::getsockname(fd_, reinterpret_cast<sockaddr*>(&sin), &len), 0);
    port_ = ntohs(sin.sin_port);
    if (keep_listening) {
      EXPECT_EQ(::listen(fd_, 64), 0);
    } else {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~Listener() {
    if (fd_ >= 0) ::close(fd_);
  }
  LdapServer server() const {
    std::string uri = "ldap://127.0.0.1:" + std::to_string(port_);
    return LdapServer{uri, *parse_socket_address("127.0.0.1:" + std::to_string(port_))};
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

class LdapDirectoryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { std::signal(SIGPIPE, SIG_IGN); }

  void make(std::vector<LdapServer> servers) {
    config_.ldap.servers = std::move(servers);
    directory_ = std::make_unique<LdapDirectory>(base_.get(), config_);
  }

  AuthResult auth(std::string_view user, std::string_view secret, std::chrono::milliseconds* elapsed = nullptr) {
    std::optional<AuthResult> result;
    auto start = Clock::now();
    directory_->authenticate(user, secret, [&](AuthResult r) { result = std::move(r); });
    EXPECT_FALSE(result) << "callback ran synchronously";
    run_until(base_.get(), result);
    if (elapsed) *elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    EXPECT_TRUE(result) << "no result";
    return result.value_or(AuthResult{});
  }

  static bool contains(const std::string& text, const std::string& needle) {
    return text.find(needle) != std::string::npos;
  }

  EventBase base_{event_base_new()};
  DirectoryConfig config_;
  std::unique_ptr<LdapDirectory> directory_;
};

TEST_F(LdapDirectoryTest, RefusesBadInputWithoutTouchingTheNetwork) {
  Listener hung(true);
  config_.ldap.connect_timeout = 5000ms;
  make({hung.server()});
  for (auto [user, secret] : std::vector<std::pair<std::string, std::string>>{
           {"alice", ""},
           {"", "pw"},
           {std::string("al\0ice", 6), "pw"},
           {"alice\r\n", "pw"},
           {"alice\n(uid=*)", "pw"},
           {std::string(10 * 1024, 'a'), "pw"},
           {"\xff\xfe", "pw"}}) {
    std::chrono::milliseconds elapsed{};
    AuthResult r = auth(user, secret, &elapsed);
    EXPECT_EQ(r.outcome, AuthOutcome::kBadCredentials) << r.detail;
    EXPECT_LT(elapsed, 500ms) << "must not wait for the (hung) server";
  }
  EXPECT_EQ(directory_->pending(), 0u);
}

TEST_F(LdapDirectoryTest, RefusedConnectionIsUnavailableAtOnce) {
  Listener refused(false);
  make({refused.server()});
  std::chrono::milliseconds elapsed{};
  AuthResult r = auth("alice", "pw", &elapsed);
  EXPECT_EQ(r.outcome, AuthOutcome::kUnavailable);
  EXPECT_TRUE(contains(r.detail, "all LDAP servers failed")) << r.detail;
  EXPECT_TRUE(contains(r.detail, "Connection refused")) << r.detail;
  EXPECT_LT(elapsed, 1000ms);
  EXPECT_EQ(directory_->pending(), 0u);
}

TEST_F(LdapDirectoryTest, RetryIntervalFailsFastAfterAllServersFailed) {
  Listener refused(false);
  config_.ldap.retry_interval = 60000ms;
  make({refused.server()});
  EXPECT_TRUE(contains(auth("alice", "pw").detail, "all LDAP servers failed"));
  AuthResult second = auth("alice", "pw");
  EXPECT_EQ(second.outcome, AuthOutcome::kUnavailable);
  EXPECT_TRUE(contains(second.detail, "next attempt in")) << second.detail;
}

TEST_F(LdapDirectoryTest, ZeroRetryIntervalReconnectsEveryTime) {
  Listener refused(false);
  config_.ldap.retry_interval = 0ms;
  make({refused.server()});
  for (int i = 0; i < 3; ++i) {
    AuthResult r = auth("alice", "pw");
    EXPECT_TRUE(contains(r.detail, "all LDAP servers failed")) << r.detail;
  }
}

TEST_F(LdapDirectoryTest, HungServerFailsAfterConnectTimeout) {
  Listener hung(true);
  config_.ldap.connect_timeout = 100ms;
  config_.ldap.operation_timeout = 5000ms;
  make({hung.server()});
  std::chrono::milliseconds elapsed{};
  AuthResult r = auth("alice", "pw", &elapsed);
  EXPECT_EQ(r.outcome, AuthOutcome::kUnavailable);
  EXPECT_TRUE(contains(r.detail, "no answer to the initial bind")) << r.detail;
  EXPECT_GE(elapsed, 90ms);
  EXPECT_LT(elapsed, 1000ms);
}

TEST_F(LdapDirectoryTest, OperationTimeoutBoundsTheWaitForAConnection) {
  Listener hung(true);
  config_.ldap.connect_timeout = 10000ms;
  config_.ldap.operation_timeout = 150ms;
  make({hung.server()});
  std::chrono::milliseconds elapsed{};
  AuthResult r = auth("alice", "pw", &elapsed);
  EXPECT_EQ(r.outcome, AuthOutcome::kUnavailable);
  EXPECT_TRUE(contains(r.detail, "timed out after 150 ms waiting for the search connection")) << r.detail;
  EXPECT_GE(elapsed, 140ms);
  EXPECT_LT(elapsed, 1000ms);
}

TEST_F(LdapDirectoryTest, EveryServerIsTriedInOrder) {
  Listener refused(false);
  Listener hung(true);
  config_.ldap.connect_timeout = 100ms;
  make({refused.server(), hung.server()});
  AuthResult r = auth("alice", "pw");
  EXPECT_EQ(r.outcome, AuthOutcome::kUnavailable);
  // The last error is the second server's: the first one was tried and skipped.
  EXPECT_TRUE(contains(r.detail, hung.server().uri + ": no answer")) << r.detail;
}

TEST_F(LdapDirectoryTest, QueueLimitAnswersUnavailableAtOnce) {
  Listener hung(true);
  config_.ldap.max_pending = 2;
  config_.ldap.connect_timeout = 10000ms;
  make({hung.server()});
  int called = 0;
  directory_->authenticate("a", "pw", [&](AuthResult) { ++called; });
  directory_->authenticate("b", "pw", [&](AuthResult) { ++called; });
  AuthResult third = auth("c", "pw");
  EXPECT_EQ(third.outcome, AuthOutcome::kUnavailable);
  EXPECT_EQ(third.detail, "directory queue full");
  EXPECT_EQ(called, 0);
  EXPECT_EQ(directory_->pending(), 2u);
}

TEST_F(LdapDirectoryTest, DestructionCancelsEverything) {
  Listener hung(true);
  config_.ldap.connect_timeout = 10000ms;
  config_.ldap.operation_timeout = 100ms;
  make({hung.server()});
  int called = 0;
  for (int i = 0; i < 10; ++i) directory_->authenticate("user" + std::to_string(i), "pw", [&](AuthResult) { ++called; });
  run_for(base_.get(), 20ms);  // connection attempt under way
  EXPECT_EQ(directory_->pending(), 10u);
  directory_.reset();
  run_for(base_.get(), 300ms);  // past the operation timeout
  EXPECT_EQ(called, 0);
}

TEST_F(LdapDirectoryTest, DestructionRightAfterAuthenticate) {
  Listener refused(false);
  make({refused.server()});
  bool called = false;
  directory_->authenticate("alice", "", [&](AuthResult) { called = true; });
  directory_->authenticate("alice", "pw", [&](AuthResult) { called = true; });
  directory_.reset();
  run_for(base_.get(), 50ms);
  EXPECT_FALSE(called);
}

TEST_F(LdapDirectoryTest, CallbackMayDestroyTheDirectory) {
  Listener refused(false);
  make({refused.server()});
  int calls = 0;
  for (int i = 0; i < 5; ++i) {
    directory_->authenticate("alice", "pw", [&](AuthResult) {
      ++calls;
      directory_.reset();
    });
  }
  run_for(base_.get(), 100ms);
  EXPECT_EQ(calls, 1);
}

TEST_F(LdapDirectoryTest, ManyConcurrentFailuresAllAnswered) {
  Listener refused(false);
  config_.ldap.retry_interval = 0ms;
  make({refused.server()});
  int answered = 0;
  for (int i = 0; i < 500; ++i) {
    directory_->authenticate("user" + std::to_string(i), "pw", [&](AuthResult r) {
      EXPECT_EQ(r.outcome, AuthOutcome::kUnavailable);
      ++answered;
    });
  }
  for (int i = 0; i < 100 && answered < 500; ++i) run_for(base_.get(), 10ms);
  EXPECT_EQ(answered, 500);
  EXPECT_EQ(directory_->pending(), 0u);
}

TEST(MakeDirectory, BuildsTheConfiguredBackend) {
  EventBase base(event_base_new());
  DirectoryConfig config;
  EXPECT_NE(dynamic_cast<LdapDirectory*>(make_directory(config, base.get()).get()), nullptr);
  config.backend = DirectoryBackend::kFile;
  auto file = make_directory(config, base.get());
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(dynamic_cast<LdapDirectory*>(file.get()), nullptr);
  // No users table: every login is refused, nothing crashes.
  std::optional<AuthResult> result;
  file->authenticate("alice", "pw", [&](AuthResult r) { result = std::move(r); });
  run_until(base.get(), result);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->outcome, AuthOutcome::kBadCredentials);
}

}  // namespace
}  // namespace basalt::directory
