// One IMAP connection of basalt-store. Split by concern over several files:
//   imap_session.cc           I/O, parsing, dispatch, timers, the pool helper, stateless commands
//   imap_session_auth.cc      LOGIN, AUTHENTICATE PLAIN, ID
//   imap_session_mailbox.cc   SELECT/EXAMINE, CLOSE/UNSELECT, mailbox management, STATUS, APPEND
//   imap_session_sync.cc      the selected mailbox's view: change reports, IDLE
//   imap_session_messages.cc  FETCH, STORE, EXPUNGE, COPY, MOVE, SEARCH
//
// Threads: the session lives on the loop. Anything that may touch the disk runs on the pool
// through run(), one call at a time: while it is in flight (busy_) no further command is
// parsed, so pipelined commands are answered in order. Results come back through
// ImapServer::post, keyed by the session id, and are dropped if the session is gone.
//
// Output: a command's responses are written as they are produced; a long FETCH renders a
// batch of messages on the pool, writes it, and asks for the next batch only once the output
// buffer has drained below the low watermark, so a 1 GB mailbox never sits in memory.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "backend/imap_server.h"
#include "backend/imap_view.h"
#include "backend/mailbox_hub.h"
#include "backend/store_auth.h"
#include "common/imap_parser.h"
#include "common/line_reader.h"
#include "common/net.h"

struct bufferevent;
struct event;

namespace basalt::store {

struct CopyOutcome;

// The tagged "NO [code] text" for a hub error (see HubErrc; imap_session_mailbox.cc).
std::string imap_hub_error(const Error& e);

class ImapSession : public Connection {
 public:
  enum class State { kNotAuthenticated, kAuthenticated, kSelected, kLogout };

  ImapSession(ImapServer& server, Listener& listener, uint64_t id, bufferevent* bev, const SocketAddress& peer);
  ~ImapSession() override;

  void start() override;

 private:
  enum class Input { kCommand, kSaslResponse, kIdle };
  // Which untagged updates a command may be followed by (RFC 3501 7.4.1).
  enum class Sync { kNone, kNoExpunge, kFull };
  using Command = basalt::imap::Command;
  using Handler = void (ImapSession::*)(Command&);
  struct CommandSpec;
  struct FetchJob;

  // --- core (imap_session.cc)
  static void on_read(bufferevent*, void* arg);
  static void on_write(bufferevent*, void* arg);
  static void on_event(bufferevent*, short what, void* arg);
  static void on_delay(evutil_socket_t, short, void* arg);
  void process();
  void resume();
  void feed(std::string_view chunk, size_t& used);
  void parse_error(const basalt::imap::ParseError& error);
  void dispatch(Command& cmd);
  bool state_allows(const CommandSpec& spec, const std::string& tag);
  void send(std::string_view text);
  void bad(const std::string& tag, std::string_view text);
  void no(const std::string& tag, std::string_view text) { finish(tag, "NO " + std::string(text), Sync::kNone); }
  // Sends the tagged completion, first reporting mailbox changes when `sync` allows it and
  // something changed (or `force`).
  void finish(const std::string& tag, std::string text, Sync sync, bool force = false);
  void close_after_flush(std::string reason);
  void close(std::string_view reason);
  void set_state(State next);
  void set_timeout();
  void install();
  void after(std::chrono::milliseconds delay, std::function<void()> fn);
  void wait_for_drain(std::function<void()> fn);
  bool output_full() const;
  void overloaded();
  // Runs `work()` on the pool, then `done(session, result)` on the loop.
  template <class Work, class Done>
  void run(Work work, Done done);

  void cmd_capability(Command& cmd);
  void cmd_noop(Command& cmd);
  void cmd_logout(Command& cmd);
  void cmd_enable(Command& cmd);
  void cmd_namespace(Command& cmd);
  void cmd_uid(Command& cmd);
  std::string capabilities() const;

  // --- authentication (imap_session_auth.cc)
  void cmd_login(Command& cmd);
  void cmd_authenticate(Command& cmd);
  void cmd_id(Command& cmd);
  void sasl_response(std::string line);
  void verify_login(const std::string& tag, std::string authzid, std::string authcid, std::string password);
  void login_done(const std::string& tag, const std::string& name, const LoginOutcome& out);
  bool plaintext_allowed() const;
  void cmd_starttls(Command& cmd);
  void after_starttls();
  void switch_to_tls();

  // --- mailboxes (imap_session_mailbox.cc)
  void cmd_select(Command& cmd);
  void cmd_close(Command& cmd);
  void cmd_unselect(Command& cmd);
  void cmd_create(Command& cmd);
  void cmd_delete(Command& cmd);
  void cmd_rename(Command& cmd);
  void cmd_subscribe(Command& cmd);
  void cmd_list(Command& cmd);
  void cmd_status(Command& cmd);
  void cmd_append(Command& cmd);
  void deselect();
  void hub_reply(const std::string& tag, const Result<void>& r, std::string_view ok_text);

  // --- the selected mailbox's changes (imap_session_sync.cc)
  void cmd_check(Command& cmd);
  void cmd_idle(Command& cmd);
  void idle_line(std::string_view line);
  void on_mailbox_changed();
  void sync(Sync sync, std::function<void()> then);
  void watch_mailbox();

  // --- messages (imap_session_messages.cc)
  void cmd_fetch(Command& cmd);
  void cmd_store(Command& cmd);
  void cmd_expunge(Command& cmd);
  void cmd_copy(Command& cmd);
  void cmd_search(Command& cmd);
  void fetch_batch(std::shared_ptr<FetchJob> job);
  void fetch_done(std::shared_ptr<FetchJob> job);
  void copy_done(const std::string& tag, bool move, const CopyOutcome& out);
  void expunge_uids(const std::string& tag, std::vector<uint32_t> only, std::string text);

  ImapServer& server_;
  std::string client_;    // the client's address for logs (ID x-originating-ip from a proxy)
  const bool trusted_;    // the peer is in [auth] trusted_networks
  State state_ = State::kNotAuthenticated;
  Input input_ = Input::kCommand;
  basalt::imap::CommandParser parser_;
  basalt::imap::LineReader line_;
  std::string pending_tag_;  // AUTHENTICATE / IDLE waiting for a continuation line
  bool busy_ = false;        // a pool call, a delay or a drain wait is pending
  bool released_ = false;     // closed: freed at the end of this loop iteration
  bool output_full_ = false;
  bool tls_starting_ = false;  // STARTTLS answered: TLS starts once the answer has left  // reading stopped until the client reads its responses
  bool uid_command_ = false;  // the command being dispatched came through UID
  std::string close_reason_;
  std::function<void()> on_drain_;
  event* delay_ = nullptr;
  std::function<void()> delayed_;
  unsigned bad_commands_ = 0;
  std::string user_;

  // Selected state.
  std::shared_ptr<Mailbox> mailbox_;
  std::string mailbox_name_;
  bool read_only_ = false;
  MailboxView view_;
  std::unique_ptr<Mailbox::Watch> watch_;
  bool dirty_ = false;      // the mailbox changed since the view was last brought up to date
  bool idling_ = false;

  // Accounting for the session-end log line.
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  uint64_t spool_bytes_ = 0;  // message bytes this session read from the spool
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

template <class Work, class Done>
void ImapSession::run(Work work, Done done) {
  busy_ = true;
  bool queued = server_.listener().offload<ImapSession>(
      server_.pool(), id_, std::move(work), [done = std::move(done)](ImapSession& s, auto result) mutable {
        s.busy_ = false;
        done(s, std::move(result));
        s.resume();
      });
  if (!queued) overloaded();
}

}  // namespace basalt::store
