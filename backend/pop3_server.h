// The POP3 server of basalt-store (RFC 1939, RFC 2449 CAPA and response codes, RFC 5034
// SASL PLAIN) for the users of this shard: one event loop; logins, mailbox reads and the
// expunge run on a ThreadPool with one call in flight per session.
//
// Behaviour worth knowing:
// - The maildrop is the INBOX as it was at login; messages delivered later are not seen by
//   the session (RFC 1939 numbering stays fixed). DELE only marks; QUIT expunges the marked
//   messages (a dropped connection expunges nothing).
// - Several sessions of one user at once are allowed (as Dovecot does, rather than RFC 1939's
//   optional [IN-USE] refusal): each works on its own snapshot, and the expunge of a message
//   another session already removed is a no-op. No mailbox lock is held between commands.
// - UIDL is "<uidvalidity>.<uid>" in hex (see pop3_maildrop.h): stable across restarts.
// - TOP n 0 is served from the header cache and reads no spool bytes; RETR and TOP n k>0
//   read the blob on the pool and stream it out with CRLF line ends and dot-stuffing,
//   refilling the output only as the client drains it.
// - Trusted peers (the proxies) see "[XCLIENT]" in the greeting and may send
//   XCLIENT ADDR=... PORT=... before logging in; the address is then the one logged.
// - STLS (RFC 2595) when [tls] is configured; plaintext pipelined behind STLS closes the
//   session (command injection), and what was said before TLS (USER) is forgotten.
// - A failed login is answered after a delay; 3 failures or 10 bad commands close the session.
#pragma once

#include <event2/util.h>

#include <chrono>
#include <memory>

#include "backend/listener.h"
#include "backend/mailbox_hub.h"
#include "backend/store_config.h"
#include "common/result.h"
#include "common/thread_pool.h"

struct event_base;
struct ssl_ctx_st;

namespace basalt::store {

struct Pop3Options {
  std::chrono::milliseconds auth_failure_delay{1000};
  unsigned max_bad_commands = 10;
  unsigned max_auth_failures = 3;
  size_t max_line = 2048;  // commands; AUTH PLAIN initial responses need more than RFC 2449's 255
};

class Pop3Server {
 public:
  // `config`, `hub`, `pool` and `tls` must outlive the server; the pool must be drained
  // first. `tls` (may be null): the server context that STLS uses.
  Pop3Server(event_base* base, const StoreConfig& config, MailboxHub& hub, ThreadPool& pool, ssl_ctx_st* tls,
             Pop3Options options = {});
  ~Pop3Server();
  Pop3Server(const Pop3Server&) = delete;
  Pop3Server& operator=(const Pop3Server&) = delete;

  Result<void> listen(evutil_socket_t listen_fd) { return listener_.listen(listen_fd); }
  size_t sessions() const { return listener_.sessions(); }

  class Session;

 private:
  friend class Session;
  const StoreConfig& config_;
  MailboxHub& hub_;
  ThreadPool& pool_;
  ssl_ctx_st* tls_;
  Pop3Options options_;
  Listener listener_;
};

}  // namespace basalt::store
