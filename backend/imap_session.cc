#include "backend/imap_session.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "backend/imap_args.h"
#include "common/log.h"
#include "common/sasl.h"

namespace basalt::store {

namespace {

auto log() { return logger("store"); }

constexpr size_t kMaxPendingOutput = 256 * 1024;  // stop parsing commands above this
constexpr size_t kWriteLowWatermark = 64 * 1024;  // on_write fires at or below this
constexpr size_t kMaxPendingInput = 256 * 1024;   // stop reading the socket above this
constexpr unsigned kMaxBadCommands = 5;         // before authentication
constexpr unsigned kMaxBadCommandsAuthed = 20;  // after (clients probe extensions)
constexpr size_t kPreAuthLine = 8192;

// States a command is valid in (bits of 1 << State).
constexpr uint8_t kPreAuth = 1u << static_cast<int>(ImapSession::State::kNotAuthenticated);
constexpr uint8_t kAuthOnly = 1u << static_cast<int>(ImapSession::State::kAuthenticated);
constexpr uint8_t kSelected = 1u << static_cast<int>(ImapSession::State::kSelected);
constexpr uint8_t kAuthed = kAuthOnly | kSelected;
constexpr uint8_t kAny = kPreAuth | kAuthed;

imap::Limits session_limits(bool authenticated, size_t max_append) {
  basalt::imap::Limits l;
  l.server_grammar = true;
  l.max_list_depth = 8;
  if (!authenticated) {
    l.max_line = kPreAuthLine;
    l.max_literal = kPreAuthLine;
    l.max_command = 4 * kPreAuthLine;
    return l;
  }
  l.max_line = 65536;  // long UID sets
  l.max_args = 256;    // SEARCH keys are top-level arguments
  l.max_list_items = 1024;
  l.max_literal = max_append;
  l.max_nonsync_literal = max_append;  // LITERAL+ (RFC 7888) has no smaller limit
  l.max_command = max_append + 2 * l.max_line;
  return l;
}

}  // namespace

struct ImapSession::CommandSpec {
  std::string_view name;
  Handler handler;
  uint8_t states;
  bool uid;  // may follow UID
};

namespace {
using S = ImapSession;
}  // namespace

ImapSession::ImapSession(ImapServer& server, Listener& listener, uint64_t id, bufferevent* bev,
                         const SocketAddress& peer)
    : Connection(listener, id, bev, peer), server_(server), client_(peer.to_string()),
      trusted_(is_trusted_peer(server.config(), peer)),
      parser_(session_limits(false, 0)), line_(kPreAuthLine) {
  delay_ = evtimer_new(server.base(), on_delay, this);
}

ImapSession::~ImapSession() {
  watch_.reset();
  if (delay_) event_free(delay_);
}

std::string ImapSession::capabilities() const {
  std::string caps = "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UIDPLUS MOVE UNSELECT";
  if (state_ != State::kNotAuthenticated) return caps;
  if (server_.tls() && !tls_active()) caps += " STARTTLS";
  caps += plaintext_allowed() ? " AUTH=PLAIN" : " LOGINDISABLED";
  return caps;
}

// Callbacks, watermarks and timeouts of the current bufferevent (again after STARTTLS).
void ImapSession::install() {
  bufferevent_setcb(bev_, on_read, on_write, on_event, this);
  bufferevent_setwatermark(bev_, EV_READ, 0, kMaxPendingInput);
  bufferevent_setwatermark(bev_, EV_WRITE, kWriteLowWatermark, 0);
  set_timeout();
  bufferevent_enable(bev_, EV_READ | EV_WRITE);
}

void ImapSession::start() {
  install();
  log()->info("[I{}] ip={} action=connect", id_, client_);
  send("* OK [CAPABILITY " + capabilities() + "] basalt-store ready\r\n");
}

void ImapSession::set_timeout() {
  const ServiceConfig& c = server_.config().imap;
  set_timeouts(state_ == State::kNotAuthenticated ? c.login_timeout_s : c.idle_timeout_s);
}

void ImapSession::set_state(State next) {
  log()->debug("[I{}] state {} -> {}", id_, static_cast<int>(state_), static_cast<int>(next));
  bool authenticating = state_ == State::kNotAuthenticated && next != State::kNotAuthenticated;
  state_ = next;
  if (authenticating) {
    parser_.set_limits(session_limits(true, server_.config().max_append_size));
    set_timeout();
  }
}

void ImapSession::send(std::string_view text) {
  if (released_) return;
  bytes_out_ += text.size();
  bufferevent_write(bev_, text.data(), text.size());
}

bool ImapSession::output_full() const {
  return evbuffer_get_length(bufferevent_get_output(bev_)) > kMaxPendingOutput;
}

void ImapSession::wait_for_drain(std::function<void()> fn) {
  busy_ = true;
  on_drain_ = std::move(fn);
}

void ImapSession::on_write(bufferevent* bev, void* arg) {
  auto* self = static_cast<ImapSession*>(arg);
  bool empty = evbuffer_get_length(bufferevent_get_output(bev)) == 0;
  if (self->closing()) {
    if (empty) self->close(self->close_reason_);
    return;
  }
  if (self->tls_starting_) {
    if (empty) self->switch_to_tls();
    return;
  }
  if (self->output_full_) {
    self->output_full_ = false;
    bufferevent_enable(bev, EV_READ);
    self->process();
  }
  if (self->on_drain_) {
    auto fn = std::move(self->on_drain_);
    self->on_drain_ = nullptr;
    self->busy_ = false;
    fn();
    self->resume();
  }
}

void ImapSession::on_event(bufferevent*, short what, void* arg) {
  auto* self = static_cast<ImapSession*>(arg);
  if (what & BEV_EVENT_CONNECTED) return;  // the TLS handshake after STARTTLS is done
  if (self->closing()) return self->close(self->close_reason_);
  // A client that stopped reading: libevent has stopped writing, so a BYE would never leave.
  if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_WRITING)) return self->close("write timeout");
  if (what & BEV_EVENT_TIMEOUT) {
    self->send("* BYE Autologout; idle for too long\r\n");
    return self->close_after_flush("timeout");
  }
  self->close((what & BEV_EVENT_EOF) ? "eof" : "connection error");
}

void ImapSession::after(std::chrono::milliseconds delay, std::function<void()> fn) {
  busy_ = true;
  delayed_ = std::move(fn);
  timeval tv{static_cast<time_t>(delay.count() / 1000), static_cast<suseconds_t>(delay.count() % 1000 * 1000)};
  evtimer_add(delay_, &tv);
}

void ImapSession::on_delay(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<ImapSession*>(arg);
  auto fn = std::move(self->delayed_);
  self->delayed_ = nullptr;
  self->busy_ = false;
  if (fn) fn();
  self->resume();
}

void ImapSession::close_after_flush(std::string reason) {
  begin_closing();
  close_reason_ = std::move(reason);
  bufferevent_disable(bev_, EV_READ);
  if (evbuffer_get_length(bufferevent_get_output(bev_)) == 0) close(close_reason_);
}

void ImapSession::close(std::string_view reason) {
  if (released_) return;
  released_ = true;  // nothing more is read, parsed or sent
  begin_closing();
  evtimer_del(delay_);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_);
  // spool_bytes: what this session read; spool_total: the whole store since it started.
  log()->info("[I{}] ip={} user={} action=close reason=\"{}\" in={} out={} spool_bytes={} spool_total={} duration_ms={}",
              id_, client_, log_safe(user_), reason, bytes_in_, bytes_out_, spool_bytes_,
              server_.hub().spool().bytes_read(), ms.count());
  watch_.reset();
  release();  // `this` is freed at the end of the loop iteration
}

// The pool's queue is full: the store is overloaded, so this client goes (it may retry).
void ImapSession::overloaded() {
  busy_ = false;
  send("* BYE [UNAVAILABLE] Server overloaded, try again later\r\n");
  close_after_flush("server overloaded");
}

void ImapSession::resume() {
  if (!busy_ && !closing()) process();
}

// Feeds buffered input until a command waits for the pool, the output backs up, the session
// closes, or the input is used up.
void ImapSession::process() {
  bool full = drain_input(
      kMaxPendingOutput, [this] { return !busy_ && !closing() && !tls_starting_; },
      [this](std::string_view chunk) {
        size_t used = 0;
        feed(chunk, used);
        bytes_in_ += used;
        return used;
      });
  if (full) output_full_ = true;
  if (tls_starting_) after_starttls();
}

void ImapSession::on_read(bufferevent*, void* arg) { static_cast<ImapSession*>(arg)->process(); }

void ImapSession::feed(std::string_view chunk, size_t& used) {
  if (input_ != Input::kCommand) {
    basalt::imap::Status status = line_.feed(chunk, used);
    if (status == basalt::imap::Status::kError) {
      line_.wipe();
      input_ = Input::kCommand;
      return bad(std::exchange(pending_tag_, {}), "Line too long.");
    }
    if (status != basalt::imap::Status::kCommand) return;
    std::string line = line_.take_line();
    line_.wipe();
    if (input_ == Input::kSaslResponse) return sasl_response(std::move(line));
    return idle_line(line);
  }
  switch (parser_.feed(chunk, used)) {
    case basalt::imap::Status::kNeedMore:
      return;
    case basalt::imap::Status::kNeedContinuation:
      return send("+ Ready for literal data\r\n");
    case basalt::imap::Status::kCommand: {
      Command cmd = parser_.take_command();
      dispatch(cmd);
      return;
    }
    case basalt::imap::Status::kError:
      return parse_error(parser_.error());
  }
}

void ImapSession::parse_error(const basalt::imap::ParseError& error) {
  if (error.fatal) {
    send("* BYE " + error.message + "\r\n");
    return close_after_flush("protocol error: " + error.message);
  }
  bad(error.tag, error.message);
}

void ImapSession::bad(const std::string& tag, std::string_view text) {
  send((tag.empty() ? std::string("*") : tag) + " BAD " + std::string(text) + "\r\n");
  unsigned limit = state_ == State::kNotAuthenticated ? kMaxBadCommands : kMaxBadCommandsAuthed;
  if (++bad_commands_ >= limit) {
    send("* BYE Too many invalid commands.\r\n");
    close_after_flush("too many invalid commands");
  }
}

void ImapSession::dispatch(Command& cmd) {
  static const CommandSpec kCommands[] = {
      {"CAPABILITY", &S::cmd_capability, kAny, false}, {"NOOP", &S::cmd_noop, kAny, false},
      {"LOGOUT", &S::cmd_logout, kAny, false},         {"ID", &S::cmd_id, kAny, false},
      {"LOGIN", &S::cmd_login, kPreAuth, false},       {"STARTTLS", &S::cmd_starttls, kPreAuth, false},       {"AUTHENTICATE", &S::cmd_authenticate, kPreAuth, false},
      {"SELECT", &S::cmd_select, kAuthed, false},      {"EXAMINE", &S::cmd_select, kAuthed, false},
      {"CREATE", &S::cmd_create, kAuthed, false},      {"DELETE", &S::cmd_delete, kAuthed, false},
      {"RENAME", &S::cmd_rename, kAuthed, false},      {"SUBSCRIBE", &S::cmd_subscribe, kAuthed, false},
      {"UNSUBSCRIBE", &S::cmd_subscribe, kAuthed, false}, {"LIST", &S::cmd_list, kAuthed, false},
      {"LSUB", &S::cmd_list, kAuthed, false},          {"STATUS", &S::cmd_status, kAuthed, false},
      {"APPEND", &S::cmd_append, kAuthed, false},      {"NAMESPACE", &S::cmd_namespace, kAuthed, false},
      {"ENABLE", &S::cmd_enable, kAuthed, false},      {"IDLE", &S::cmd_idle, kAuthed, false},
      {"CHECK", &S::cmd_check, kSelected, false},      {"CLOSE", &S::cmd_close, kSelected, false},
      {"UNSELECT", &S::cmd_unselect, kSelected, false}, {"EXPUNGE", &S::cmd_expunge, kSelected, true},
      {"SEARCH", &S::cmd_search, kSelected, true},     {"FETCH", &S::cmd_fetch, kSelected, true},
      {"STORE", &S::cmd_store, kSelected, true},       {"COPY", &S::cmd_copy, kSelected, true},
      {"MOVE", &S::cmd_copy, kSelected, true},         {"UID", &S::cmd_uid, kSelected, false},
  };
  for (const CommandSpec& spec : kCommands) {
    if (spec.name != cmd.name) continue;
    if (uid_command_ && !spec.uid) return bad(cmd.tag, "Unknown UID command.");
    if (!state_allows(spec, cmd.tag)) return;
    return (this->*spec.handler)(cmd);
  }
  bad(cmd.tag, uid_command_ ? "Unknown UID command." : "Unknown command.");
}

bool ImapSession::state_allows(const CommandSpec& spec, const std::string& tag) {
  if (spec.states & (1u << static_cast<int>(state_))) return true;
  if (state_ == State::kNotAuthenticated) {
    bad(tag, "Log in first.");
  } else if (spec.states == kPreAuth) {
    bad(tag, "Already logged in.");
  } else {
    bad(tag, "No mailbox selected.");
  }
  return false;
}

// UID FETCH / SEARCH / STORE / COPY / MOVE / EXPUNGE: the same commands with UIDs for numbers.
void ImapSession::cmd_uid(Command& cmd) {
  if (cmd.args.empty() || cmd.args[0].kind != basalt::imap::ArgKind::kAtom) return bad(cmd.tag, "UID needs a command.");
  cmd.name = ascii_upper(cmd.args[0].text);
  cmd.args.erase(cmd.args.begin());
  uid_command_ = true;
  dispatch(cmd);
  uid_command_ = false;
}

void ImapSession::finish(const std::string& tag, std::string text, Sync mode, bool force) {
  std::string line = tag + " " + text + "\r\n";
  if (state_ != State::kSelected || mode == Sync::kNone || (!dirty_ && !force)) return send(line);
  sync(mode, [this, line] { send(line); });
}

void ImapSession::cmd_capability(Command& cmd) {
  if (!cmd.args.empty()) return bad(cmd.tag, "CAPABILITY takes no arguments.");
  send("* CAPABILITY " + capabilities() + "\r\n");
  finish(cmd.tag, "OK CAPABILITY completed.", Sync::kNone);
}

void ImapSession::cmd_noop(Command& cmd) {
  if (!cmd.args.empty()) return bad(cmd.tag, "NOOP takes no arguments.");
  finish(cmd.tag, "OK NOOP completed.", Sync::kFull, true);
}

void ImapSession::cmd_logout(Command& cmd) {
  if (!cmd.args.empty()) return bad(cmd.tag, "LOGOUT takes no arguments.");
  send("* BYE Logging out\r\n" + cmd.tag + " OK LOGOUT completed.\r\n");
  set_state(State::kLogout);
  close_after_flush("logout");
}

// No extension that ENABLE turns on is implemented: an empty ENABLED (RFC 5161 3.1).
void ImapSession::cmd_enable(Command& cmd) {
  if (cmd.args.empty()) return bad(cmd.tag, "ENABLE needs a capability.");
  send("* ENABLED\r\n");
  finish(cmd.tag, "OK ENABLE completed.", Sync::kNone);
}

void ImapSession::cmd_namespace(Command& cmd) {
  if (!cmd.args.empty()) return bad(cmd.tag, "NAMESPACE takes no arguments.");
  send(std::string("* NAMESPACE ((\"\" \"") + kHierarchyDelimiter + "\")) NIL NIL\r\n");
  finish(cmd.tag, "OK NAMESPACE completed.", Sync::kNone);
}

}  // namespace basalt::store
