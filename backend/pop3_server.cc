#include "backend/pop3_server.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include <optional>

#include "backend/pop3_maildrop.h"
#include "backend/store_auth.h"
#include "common/line_reader.h"
#include "common/log.h"
#include "common/pop3_parser.h"
#include "common/pop3_writer.h"
#include "common/sasl.h"

namespace basalt::store {
namespace {

auto log() { return logger("pop3"); }

constexpr size_t kMaxInput = 64 * 1024;           // input buffered while a command runs
constexpr size_t kMaxPendingOutput = 64 * 1024;   // replies a pipelining client has not read yet
constexpr size_t kStreamHighWater = 256 * 1024;   // RETR refills the output up to this...
constexpr size_t kStreamLowWater = 64 * 1024;     // ...whenever it drains below this
constexpr size_t kStreamChunk = 64 * 1024;
constexpr size_t kMaxSaslLine = 8192;
constexpr const char* kBusy = "-ERR [SYS/TEMP] Server busy, try again later.";

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if ((a[i] | 0x20) != (b[i] | 0x20)) return false;
  }
  return true;
}

// What a login job brings back to the loop.
struct LoginResult {
  LoginOutcome outcome;
  std::shared_ptr<Mailbox> box;  // INBOX, when the login succeeded and it could be opened
  Maildrop maildrop;
};

// Pool side of a login: the password check, then INBOX and its snapshot.
LoginResult run_login(const StoreConfig& config, MailboxHub& hub, const LoginRequest& request) {
  LoginResult r;
  r.outcome = check_login(config, request);
  if (r.outcome.verdict != LoginVerdict::kOk) return r;
  auto box = hub.open(r.outcome.user, "INBOX");
  if (!box) {
    log()->error("user={} action=open-inbox error={}", log_safe(r.outcome.user), box.error().message);
    return r;
  }
  auto snapshot = (*box)->snapshot();
  if (!snapshot) {
    log()->error("user={} action=snapshot error={}", log_safe(r.outcome.user), snapshot.error().message);
    return r;
  }
  r.maildrop = Maildrop(snapshot->uidvalidity, snapshot->messages);
  r.box = std::move(*box);
  return r;
}

}  // namespace

class Pop3Server::Session : public Connection {
 public:
  enum class State { kAuthorization, kSaslResponse, kTlsStarting, kTransaction, kUpdate, kClosing };

  Session(Pop3Server& server, Listener& listener, uint64_t id, bufferevent* bev, const SocketAddress& peer)
      : Connection(listener, id, bev, peer), server_(server),
        parser_(pop3::Limits{server.options_.max_line, 4}),  // XCLIENT carries 4 arguments
        sasl_reader_(kMaxSaslLine, 4 * kMaxSaslLine), client_(peer.to_string()),
        started_(std::chrono::steady_clock::now()) {}
  ~Session() override;

  void start() override;

 private:
  struct Stream {  // a RETR / TOP body being written out as the client reads
    std::string message;
    size_t offset = 0;
    size_t end = 0;
    pop3::DotStuffer stuffer;
  };

  static void on_read(bufferevent*, void* arg) { static_cast<Session*>(arg)->process(); }
  static void on_write(bufferevent*, void* arg) { static_cast<Session*>(arg)->writable(); }
  static void on_event(bufferevent*, short what, void* arg);
  static void on_delay(evutil_socket_t, short, void* arg);
  static void on_login_deadline(evutil_socket_t, short, void* arg);

  void install();  // callbacks, watermarks and timeouts of the current bufferevent

  // Input. process() runs only from loop callbacks, never from a command handler.
  void process();
  size_t feed(std::string_view chunk);
  void command(pop3::Command& cmd);
  void authorization_command(pop3::Command& cmd);
  void transaction_command(pop3::Command& cmd);
  bool check_args(const pop3::Command& cmd, size_t min, size_t max, const char* usage);

  // Authorization state.
  void capa();
  void user(pop3::Command& cmd);
  void pass(pop3::Command& cmd);
  void auth(pop3::Command& cmd);
  void sasl_response();
  void sasl_plain(std::string& response);
  void xclient(const pop3::Command& cmd);
  void stls(const pop3::Command& cmd);
  void switch_to_tls();
  void login(std::string authzid, std::string authcid, std::string& password);
  void logged_in(LoginResult r);
  void login_failed(const char* text);

  // Transaction state.
  void listing(const pop3::Command& cmd, bool uidl);
  void retr(const pop3::Command& cmd);
  void top(const pop3::Command& cmd);
  void dele(const pop3::Command& cmd);
  std::optional<size_t> message_arg(const std::string& arg);
  void read_message(size_t index, std::optional<uint64_t> top_lines);
  void message_read(size_t index, std::optional<uint64_t> top_lines, Result<std::string> raw);
  void start_stream(std::string message, size_t end);
  void pump();
  void quit();
  void expunged(Result<std::vector<uint32_t>> r);

  // Output and lifetime.
  void reply(std::string_view line);
  void send(std::string_view bytes);
  void bad(std::string_view text);
  void writable();
  void set_state(State next);
  void close_after_flush(const char* reason);
  void close(const char* reason);
  // A result that finds the session closing is dropped by the listener (see Connection::closing).
  template <class Work, class Done>
  bool offload(Work work, Done done) {
    return listener_.offload<Session>(server_.pool_, id_, std::move(work), std::move(done));
  }

  Pop3Server& server_;
  State state_ = State::kAuthorization;
  pop3::CommandParser parser_;
  imap::LineReader sasl_reader_;
  std::string client_;        // the peer, or the address a trusted proxy gave with XCLIENT
  bool trusted_ = false;      // the peer is a proxy ([auth] trusted_networks)
  bool busy_ = false;         // a pool job, the failed-login delay or a stream is running
  bool output_full_ = false;  // reading paused until the client reads its replies
  std::string pending_user_;  // USER before PASS
  std::string user_;
  std::shared_ptr<Mailbox> box_;
  Maildrop maildrop_;
  std::optional<Stream> stream_;
  event* delay_ = nullptr;
  event* login_deadline_ = nullptr;
  unsigned bad_commands_ = 0;
  unsigned auth_failures_ = 0;
  const char* close_reason_ = "";
  // For the session-end log line.
  unsigned retrieved_ = 0;
  size_t expunged_ = 0;
  uint64_t bytes_out_ = 0;
  uint64_t blob_reads_ = 0;
  uint64_t blob_bytes_ = 0;
  std::chrono::steady_clock::time_point started_;
};

Pop3Server::Session::~Session() {
  if (delay_) event_free(delay_);
  if (login_deadline_) event_free(login_deadline_);
}

void Pop3Server::Session::start() {
  delay_ = evtimer_new(listener_.base(), on_delay, this);
  login_deadline_ = evtimer_new(listener_.base(), on_login_deadline, this);
  trusted_ = is_trusted_peer(server_.config_, peer_);
  timeval tv{static_cast<time_t>(server_.config_.pop3.login_timeout_s), 0};
  evtimer_add(login_deadline_, &tv);
  install();
  log()->info("[P{}] ip={} action=connect trusted={}", id_, client_, trusted_);
  // basalt-proxy and Dovecot's proxies send XCLIENT when the greeting offers it.
  reply(trusted_ ? "+OK [XCLIENT] basalt-store ready." : "+OK basalt-store ready.");
}

void Pop3Server::Session::install() {
  bufferevent_setcb(bev_, on_read, on_write, on_event, this);
  bufferevent_setwatermark(bev_, EV_READ, 0, kMaxInput);
  bufferevent_setwatermark(bev_, EV_WRITE, 0, 0);
  set_timeouts(server_.config_.pop3.login_timeout_s);
  bufferevent_enable(bev_, EV_READ | EV_WRITE);
}

void Pop3Server::Session::set_state(State next) {
  log()->debug("[P{}] state {} -> {}", id_, static_cast<int>(state_), static_cast<int>(next));
  state_ = next;
  if (next == State::kClosing) begin_closing();
}

// ---- input

void Pop3Server::Session::process() {
  auto ready = [this] { return !busy_ && state_ != State::kClosing && state_ != State::kTlsStarting; };
  if (drain_input(kMaxPendingOutput, ready, [this](std::string_view chunk) { return feed(chunk); })) {
    output_full_ = true;  // until the client reads its replies
  }
  if (state_ != State::kTlsStarting) return;
  // RFC 2595 / STYLE: bytes behind STLS were sent in plaintext to be read as if protected.
  if (evbuffer_get_length(bufferevent_get_input(bev_)) > 0) return close_after_flush("plaintext pipelined after STLS");
  if (evbuffer_get_length(bufferevent_get_output(bev_)) == 0) switch_to_tls();
}

size_t Pop3Server::Session::feed(std::string_view chunk) {
  size_t used = 0;
  bool sasl = state_ == State::kSaslResponse;
  switch (sasl ? sasl_reader_.feed(chunk, used) : parser_.feed(chunk, used)) {
    case pop3::Status::kNeedMore:
    case pop3::Status::kNeedContinuation:
      break;
    case pop3::Status::kCommand:
      if (sasl) {
        sasl_response();
      } else {
        pop3::Command cmd = parser_.take_command();
        command(cmd);
      }
      break;
    case pop3::Status::kError: {
      const imap::ParseError& error = sasl ? sasl_reader_.error() : parser_.error();
      if (sasl) set_state(State::kAuthorization);
      if (!error.fatal) {
        bad(error.message);
        break;
      }
      reply("-ERR " + error.message);
      close_after_flush("protocol error");
      break;
    }
  }
  return used;
}

bool Pop3Server::Session::check_args(const pop3::Command& cmd, size_t min, size_t max, const char* usage) {
  if (cmd.args.size() >= min && cmd.args.size() <= max) return true;
  bad(usage);
  return false;
}

void Pop3Server::Session::command(pop3::Command& cmd) {
  const std::string& name = cmd.name;
  if (name == "CAPA") {
    if (check_args(cmd, 0, 0, "CAPA takes no arguments.")) capa();
  } else if (name == "QUIT") {
    if (check_args(cmd, 0, 0, "QUIT takes no arguments.")) quit();
  } else if (state_ == State::kAuthorization) {
    authorization_command(cmd);
  } else {
    transaction_command(cmd);
  }
}

void Pop3Server::Session::authorization_command(pop3::Command& cmd) {
  const std::string& name = cmd.name;
  if (name == "USER") return user(cmd);
  if (name == "PASS") return pass(cmd);
  if (name == "AUTH") return auth(cmd);
  if (name == "XCLIENT") return xclient(cmd);
  if (name == "STLS") return stls(cmd);
  for (const char* later : {"STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "RSET", "NOOP"}) {
    if (name == later) return bad("Not logged in.");
  }
  bad("Unknown command.");
}

void Pop3Server::Session::transaction_command(pop3::Command& cmd) {
  const std::string& name = cmd.name;
  if (name == "STAT") {
    if (!check_args(cmd, 0, 0, "STAT takes no arguments.")) return;
    return reply("+OK " + std::to_string(maildrop_.count()) + " " + std::to_string(maildrop_.octets()));
  }
  if (name == "LIST" || name == "UIDL") return listing(cmd, name == "UIDL");
  if (name == "RETR") return retr(cmd);
  if (name == "TOP") return top(cmd);
  if (name == "DELE") return dele(cmd);
  if (name == "RSET" || name == "NOOP") {
    if (!check_args(cmd, 0, 0, "This command takes no arguments.")) return;
    if (name == "RSET") maildrop_.undelete_all();
    return reply("+OK");
  }
  for (const char* earlier : {"USER", "PASS", "AUTH", "XCLIENT", "STLS"}) {
    if (name == earlier) return bad("Already logged in.");
  }
  bad("Unknown command.");
}

// ---- authorization state

void Pop3Server::Session::capa() {
  std::string text =
      "+OK Capability list follows\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n";
  if (state_ == State::kAuthorization) text += "USER\r\nSASL PLAIN\r\n";
  if (state_ == State::kAuthorization && server_.tls_ && !tls_active()) text += "STLS\r\n";
  send(text + "IMPLEMENTATION basalt-store\r\n.\r\n");
}

void Pop3Server::Session::user(pop3::Command& cmd) {
  if (!check_args(cmd, 1, 1, "USER expects one user name.")) return;
  pending_user_ = std::move(cmd.args[0]);
  reply("+OK");
}

void Pop3Server::Session::pass(pop3::Command& cmd) {
  parser_.wipe();  // the line held the password
  if (pending_user_.empty() || cmd.args.size() != 1) {
    for (std::string& arg : cmd.args) sasl::wipe(arg);
    return bad(pending_user_.empty() ? "No user name given (USER first)." : "PASS expects a password.");
  }
  std::string user = std::exchange(pending_user_, {});
  login("", std::move(user), cmd.args[0]);
}

void Pop3Server::Session::auth(pop3::Command& cmd) {
  if (cmd.args.empty()) return send("+OK\r\nPLAIN\r\n.\r\n");
  parser_.wipe();  // an initial response is a credential
  if (!iequals(cmd.args[0], "PLAIN") || cmd.args.size() > 2) {
    for (std::string& arg : cmd.args) sasl::wipe(arg);
    return reply("-ERR Unsupported authentication mechanism.");
  }
  pending_user_.clear();
  if (cmd.args.size() == 2) return sasl_plain(cmd.args[1]);
  sasl_reader_.reset();
  set_state(State::kSaslResponse);
  reply("+ ");
}

void Pop3Server::Session::sasl_response() {
  std::string line = sasl_reader_.take_line();
  sasl_reader_.wipe();
  set_state(State::kAuthorization);
  if (line == "*") return reply("-ERR Authentication canceled.");  // RFC 5034 4
  sasl_plain(line);
}

void Pop3Server::Session::sasl_plain(std::string& response) {
  // "=" is an empty initial response (RFC 5034 4); PLAIN refuses empty anyway.
  std::optional<std::string> decoded = sasl::base64_decode(response == "=" ? "" : response);
  sasl::wipe(response);
  if (!decoded) return bad("Invalid base64 data.");
  auto creds = sasl::decode_plain(*decoded);
  sasl::wipe(*decoded);
  if (!creds) return bad("Malformed PLAIN response.");
  login(std::move(creds->authzid), std::move(creds->authcid), creds->password);
}

// XCLIENT ADDR=<ip> PORT=<port> [SESSION=...] [TTL=...]: the client a trusted proxy serves,
// for our logs (trust decisions keep using the proxy's own address).
void Pop3Server::Session::xclient(const pop3::Command& cmd) {
  if (!trusted_) return bad("XCLIENT is only accepted from trusted proxies.");
  std::string addr, port;
  for (const std::string& arg : cmd.args) {
    if (arg.starts_with("ADDR=")) addr = log_safe(arg.substr(5), 64);
    if (arg.starts_with("PORT=")) port = log_safe(arg.substr(5), 8);
  }
  if (!addr.empty()) client_ = addr.find(':') != std::string::npos ? "[" + addr + "]:" + port : addr + ":" + port;
  reply("+OK");
}

void Pop3Server::Session::stls(const pop3::Command& cmd) {
  if (!check_args(cmd, 0, 0, "STLS takes no arguments.")) return;
  if (tls_active()) return bad("TLS is already active.");
  if (!server_.tls_) return bad("TLS is not configured.");
  reply("+OK Begin TLS negotiation now.");
  set_state(State::kTlsStarting);  // process() switches once the reply has left
  bufferevent_disable(bev_, EV_READ);  // the ClientHello stays in the socket for the TLS bufferevent
}

void Pop3Server::Session::switch_to_tls() {
  if (!start_tls(server_.tls_)) return close("cannot start TLS");
  install();
  parser_.reset();
  pending_user_.clear();  // RFC 2595 4: forget what was said before TLS
  set_state(State::kAuthorization);
}

void Pop3Server::Session::login(std::string authzid, std::string authcid, std::string& password) {
  // One buffer, wiped on the pool right after the check (moves of short strings would copy).
  auto secret = std::make_shared<std::string>(password);
  sasl::wipe(password);
  const StoreConfig* config = &server_.config_;
  MailboxHub* hub = &server_.hub_;
  auto work = [config, hub, secret, authzid = std::move(authzid), authcid = std::move(authcid), peer = peer_,
               tls = tls_active()] {
    LoginResult r = run_login(*config, *hub, LoginRequest{authzid, authcid, *secret, peer, tls});
    sasl::wipe(*secret);
    return r;
  };
  busy_ = true;
  if (!offload(std::move(work), [](Session& s, LoginResult r) { s.logged_in(std::move(r)); })) {
    sasl::wipe(*secret);
    busy_ = false;
    reply(kBusy);
  }
}

void Pop3Server::Session::logged_in(LoginResult r) {
  busy_ = false;
  switch (r.outcome.verdict) {
    case LoginVerdict::kOk:
      if (!r.box) {
        reply("-ERR [SYS/TEMP] The mailbox cannot be opened now, try again later.");
        break;
      }
      user_ = std::move(r.outcome.user);
      box_ = std::move(r.box);
      maildrop_ = std::move(r.maildrop);
      evtimer_del(login_deadline_);
      set_timeouts(server_.config_.pop3.idle_timeout_s);
      set_state(State::kTransaction);
      log()->info("[P{}] ip={} user={} action=login master={} messages={} octets={}", id_, client_,
                  log_safe(user_), r.outcome.as_master, maildrop_.count(), maildrop_.octets());
      reply("+OK Logged in.");
      break;
    case LoginVerdict::kBadCredentials: {
      busy_ = true;  // answered by on_delay: a guesser gets one try per delay
      auto ms = server_.options_.auth_failure_delay.count();
      timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
      evtimer_add(delay_, &tv);
      return;
    }
    case LoginVerdict::kDisabled:
      login_failed("-ERR [AUTH] Account disabled.");
      break;
    case LoginVerdict::kMoving:
      reply("-ERR [SYS/TEMP] Mailbox is being moved, try again later.");
      break;
    case LoginVerdict::kNotHere:
      reply("-ERR [SYS/TEMP] Mailbox is not on this server, try again later.");
      break;
    case LoginVerdict::kPrivacyRequired:
      login_failed("-ERR [AUTH] Plaintext authentication disallowed without TLS.");
      break;
  }
  process();
}

void Pop3Server::Session::on_delay(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Session*>(arg);
  self->busy_ = false;
  self->login_failed("-ERR [AUTH] Authentication failed.");
  self->process();
}

void Pop3Server::Session::login_failed(const char* text) {
  reply(text);
  if (++auth_failures_ < server_.options_.max_auth_failures) return;
  reply("-ERR Too many authentication failures.");
  close_after_flush("too many authentication failures");
}

void Pop3Server::Session::on_login_deadline(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Session*>(arg);
  if (self->state_ == State::kClosing) return;
  self->reply("-ERR Disconnected: no login in time.");
  self->close_after_flush("login timeout");
}

// ---- transaction state

std::optional<size_t> Pop3Server::Session::message_arg(const std::string& arg) {
  auto index = maildrop_.find(arg);
  if (!index) {
    reply("-ERR " + index.error().message);
    return std::nullopt;
  }
  return *index;
}

void Pop3Server::Session::listing(const pop3::Command& cmd, bool uidl) {
  if (!check_args(cmd, 0, 1, "Expected at most one message number.")) return;
  auto value = [&](size_t i) { return uidl ? maildrop_.unique_id(i) : std::to_string(maildrop_.at(i).size); };
  if (cmd.args.size() == 1) {
    auto index = message_arg(cmd.args[0]);
    if (index) reply("+OK " + std::to_string(*index + 1) + " " + value(*index));
    return;
  }
  std::string text = "+OK " + std::to_string(maildrop_.count()) + " messages:\r\n";
  for (size_t i = 0; i < maildrop_.size(); ++i) {
    if (!maildrop_.at(i).deleted) text += std::to_string(i + 1) + " " + value(i) + "\r\n";
  }
  send(text + ".\r\n");
}

void Pop3Server::Session::retr(const pop3::Command& cmd) {
  if (!check_args(cmd, 1, 1, "RETR expects one message number.")) return;
  if (auto index = message_arg(cmd.args[0])) read_message(*index, std::nullopt);
}

void Pop3Server::Session::top(const pop3::Command& cmd) {
  if (!check_args(cmd, 2, 2, "TOP expects a message number and a line count.")) return;
  auto index = message_arg(cmd.args[0]);
  if (!index) return;
  auto lines = parse_pop3_number(cmd.args[1], UINT64_MAX);
  if (!lines) return reply("-ERR Invalid line count.");
  if (*lines == 0) {
    // The header cache answers without touching the spool; a missing entry falls back.
    auto cached = box_->cached(maildrop_.at(*index).uid);
    if (cached.ok() && cached->has_value()) {
      reply("+OK");
      const std::string& header = (**cached).summary.header;
      return start_stream(header, header.size());
    }
  }
  read_message(*index, lines);
}

void Pop3Server::Session::dele(const pop3::Command& cmd) {
  if (!check_args(cmd, 1, 1, "DELE expects one message number.")) return;
  auto index = message_arg(cmd.args[0]);
  if (!index) return;
  maildrop_.mark_deleted(*index);
  reply("+OK Marked to be deleted.");
}

void Pop3Server::Session::read_message(size_t index, std::optional<uint64_t> top_lines) {
  std::shared_ptr<Mailbox> box = box_;
  uint32_t uid = maildrop_.at(index).uid;
  busy_ = true;
  bool posted = offload([box, uid] { return box->read_message(uid); },
                        [index, top_lines](Session& s, Result<std::string> raw) {
                          s.message_read(index, top_lines, std::move(raw));
                        });
  if (!posted) {
    busy_ = false;
    reply(kBusy);
  }
}

void Pop3Server::Session::message_read(size_t index, std::optional<uint64_t> top_lines, Result<std::string> raw) {
  busy_ = false;
  if (!raw) {
    uint32_t uid = maildrop_.at(index).uid;
    log()->warn("[P{}] user={} action=read uid={} error={}", id_, log_safe(user_), uid, raw.error().message);
    reply(raw.error().code == kHubNoSuchMessage ? "-ERR Message " + std::to_string(index + 1) + " was removed."
                                                : std::string("-ERR [SYS/TEMP] The message cannot be read now."));
    return process();
  }
  ++blob_reads_;
  blob_bytes_ += raw->size();
  size_t end = top_lines ? pop3::message_top(*raw, *top_lines).size() : raw->size();
  if (!top_lines) ++retrieved_;
  reply(top_lines ? "+OK" : "+OK " + std::to_string(maildrop_.at(index).size) + " octets");
  start_stream(std::move(*raw), end);
  if (!busy_) process();
}

void Pop3Server::Session::start_stream(std::string message, size_t end) {
  stream_.emplace(Stream{std::move(message), 0, end, {}});
  busy_ = true;
  bufferevent_setwatermark(bev_, EV_WRITE, kStreamLowWater, 0);
  pump();
}

// Adds stuffed chunks until the output holds kStreamHighWater; writable() calls again as the
// client drains it, so at most the message and one window of output are in memory.
void Pop3Server::Session::pump() {
  evbuffer* out = bufferevent_get_output(bev_);
  std::string chunk;
  while (stream_ && evbuffer_get_length(out) < kStreamHighWater) {
    Stream& s = *stream_;
    size_t n = std::min(kStreamChunk, s.end - s.offset);
    chunk.clear();
    s.stuffer.feed(std::string_view(s.message).substr(s.offset, n), chunk);
    s.offset += n;
    bool done = s.offset == s.end;
    if (done) s.stuffer.finish(chunk);
    send(chunk);
    if (done) {
      stream_.reset();
      bufferevent_setwatermark(bev_, EV_WRITE, 0, 0);
      busy_ = false;
    }
  }
}

void Pop3Server::Session::quit() {
  if (state_ != State::kTransaction) {
    reply("+OK Logging out.");
    return close_after_flush("quit");
  }
  set_state(State::kUpdate);
  std::vector<uint32_t> uids = maildrop_.deleted_uids();
  if (uids.empty()) {
    reply("+OK Logging out.");
    return close_after_flush("quit");
  }
  std::shared_ptr<Mailbox> box = box_;
  busy_ = true;
  bool posted = offload([box, uids = std::move(uids)] { return box->expunge(uids); },
                        [](Session& s, Result<std::vector<uint32_t>> r) { s.expunged(std::move(r)); });
  if (!posted) expunged(make_error("thread pool queue full"));
}

void Pop3Server::Session::expunged(Result<std::vector<uint32_t>> r) {
  busy_ = false;
  if (!r) {
    log()->error("[P{}] user={} action=expunge error={}", id_, log_safe(user_), r.error().message);
    reply("-ERR [SYS/TEMP] Deleted messages could not be removed; they are kept.");
    return close_after_flush("quit, expunge failed");
  }
  expunged_ = r->size();
  reply("+OK Logging out, messages deleted.");
  close_after_flush("quit");
}

// ---- output and lifetime

void Pop3Server::Session::send(std::string_view bytes) {
  bytes_out_ += bytes.size();
  bufferevent_write(bev_, bytes.data(), bytes.size());
}

void Pop3Server::Session::reply(std::string_view line) {
  std::string text(line);
  send(text + "\r\n");
}

void Pop3Server::Session::bad(std::string_view text) {
  reply("-ERR " + std::string(text));
  if (++bad_commands_ < server_.options_.max_bad_commands) return;
  reply("-ERR Too many invalid commands.");
  close_after_flush("too many invalid commands");
}

void Pop3Server::Session::writable() {
  bool flushed = evbuffer_get_length(bufferevent_get_output(bev_)) == 0;
  if (state_ == State::kClosing || state_ == State::kTlsStarting) {
    if (!flushed) return;
    if (state_ == State::kClosing) return close(close_reason_);
    return switch_to_tls();
  }
  if (stream_) {
    pump();
    if (!busy_) process();
    return;
  }
  if (output_full_) {
    output_full_ = false;
    bufferevent_enable(bev_, EV_READ);
    process();
  }
}

void Pop3Server::Session::on_event(bufferevent*, short what, void* arg) {
  auto* self = static_cast<Session*>(arg);
  if (what & BEV_EVENT_CONNECTED) return;  // the TLS handshake after STLS is done
  if (self->state_ == State::kClosing) return self->close(self->close_reason_);
  if (what & BEV_EVENT_TIMEOUT) {
    // libevent disabled the direction that timed out: a client that stopped reading gets nothing more.
    if (what & BEV_EVENT_WRITING) return self->close("write timeout");
    self->reply("-ERR Disconnected for inactivity.");
    return self->close_after_flush("idle timeout");
  }
  if ((what & BEV_EVENT_ERROR) && self->tls_active()) {
    unsigned long e = bufferevent_get_openssl_error(self->bev_);
    const char* why = e ? ERR_reason_error_string(e) : nullptr;
    log()->info("[P{}] ip={} action=tls error={}", self->id_, self->client_, why ? why : "connection reset");
  }
  self->close((what & BEV_EVENT_EOF) ? "eof" : "connection error");
}

void Pop3Server::Session::close_after_flush(const char* reason) {
  close_reason_ = reason;
  stream_.reset();
  evtimer_del(delay_);
  set_state(State::kClosing);
  bufferevent_disable(bev_, EV_READ);
  bufferevent_setwatermark(bev_, EV_WRITE, 0, 0);
  if (evbuffer_get_length(bufferevent_get_output(bev_)) == 0) close(reason);
}

void Pop3Server::Session::close(const char* reason) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_);
  log()->info(
      "[P{}] ip={} user={} action=close retrieved={} deleted={} bytes_out={} spool_reads={} spool_bytes={} "
      "spool_total={} duration_ms={} reason={}",
      id_, client_, log_safe(user_), retrieved_, expunged_, bytes_out_, blob_reads_, blob_bytes_,
      server_.hub_.spool().bytes_read(), ms.count(), reason);
  evtimer_del(delay_);
  evtimer_del(login_deadline_);
  release();
}

Pop3Server::Pop3Server(event_base* base, const StoreConfig& config, MailboxHub& hub, ThreadPool& pool,
                       ssl_ctx_st* tls, Pop3Options options)
    : config_(config), hub_(hub), pool_(pool), tls_(tls), options_(options),
      listener_(base, ListenerOptions{"pop3", config.pop3.max_connections,
                                      "-ERR [SYS/TEMP] Too many connections, try again later.\r\n", 4096},
                [this](Listener& l, uint64_t id, bufferevent* bev, const SocketAddress& peer) {
                  return std::make_unique<Session>(*this, l, id, bev, peer);
                }) {}

Pop3Server::~Pop3Server() = default;

}  // namespace basalt::store
