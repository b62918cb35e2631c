// The LMTP listener of basalt-store (RFC 2033): one libevent loop, sessions parsed with
// lmtp::CommandReader / lmtp::DataReader, deliveries done on a ThreadPool and their replies
// posted back to the loop (the loop never touches the disk).
//
// Replies: RCPT gets one reply per recipient (250, 550 5.1.1 unknown, 550 5.2.1 disabled,
// 451 4.3.0 not on this shard, 450 4.2.1 being moved, 452 4.5.3 too many, 552 5.2.2 over
// quota: checked on the pool for users with a quota); after the final dot, one reply per
// accepted recipient (250 2.0.0 delivered, 451 4.3.0 failure, 552 5.3.4 too big, 552 5.2.2
// over quota). Sequencing errors are 503 5.5.1, syntax errors 501 5.5.4, unknown commands 500.
#pragma once

#include <event2/util.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backend/delivery.h"
#include "backend/listener.h"
#include "common/result.h"
#include "common/thread_pool.h"

struct event_base;

namespace basalt::store {

enum class RcptVerdict { kAccept, kUnknown, kDisabled, kOtherShard, kMoving };

// Maps a recipient address to a verdict and, when accepted, the spool user name.
using RecipientPolicy = std::function<RcptVerdict(std::string_view address, std::string& user)>;

struct LmtpOptions {
  std::string hostname = "basalt-store";
  size_t max_message = 50u << 20;
  size_t max_recipients = 100;
  unsigned max_connections = 200;
  std::chrono::seconds timeout{300};
  unsigned max_bad_commands = 10;
};

class LmtpServer {
 public:
  // `listen_fd` is bound and listening; the server owns it from here. `deliverer` and `pool`
  // must outlive the server, and the pool must be drained (destroyed) before the server is.
  LmtpServer(event_base* base, Deliverer& deliverer, ThreadPool& pool, RecipientPolicy policy, LmtpOptions options);
  ~LmtpServer();
  LmtpServer(const LmtpServer&) = delete;
  LmtpServer& operator=(const LmtpServer&) = delete;

  Result<void> listen(evutil_socket_t listen_fd) { return listener_.listen(listen_fd); }
  size_t sessions() const { return listener_.sessions(); }

  class Session;

 private:
  friend class Session;
  Deliverer& deliverer_;
  ThreadPool& pool_;
  RecipientPolicy policy_;
  LmtpOptions options_;
  Listener listener_;
};

}  // namespace basalt::store
