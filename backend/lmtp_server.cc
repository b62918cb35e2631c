#include "backend/lmtp_server.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include <charconv>
#include <ctime>
#include <optional>

#include "common/lmtp_parser.h"
#include "common/log.h"
#include "common/net.h"

namespace basalt::store {

class LmtpServer::Session : public Connection {
 public:
  // kChecking: a RCPT's quota check runs on the pool; kDelivering: the deliveries after DATA.
  // Reading stops in both until the result is answered, so pipelined replies stay in order.
  enum class State { kGreeted, kReady, kMail, kChecking, kData, kDelivering, kClosing };

  Session(LmtpServer& server, Listener& listener, uint64_t id, bufferevent* bev, const SocketAddress& peer)
      : Connection(listener, id, bev, peer), server_(server), peer_text_(peer.to_string()),
        commands_(lmtp::Limits{1000, server.options_.max_message}) {}

  void start() override;
  void on_delivered(std::vector<std::string> replies);
  void process();
  bool waiting() const { return state_ == State::kChecking || state_ == State::kDelivering; }

 private:
  struct Recipient {
    std::string address;
    std::string user;
  };
  static void on_read(bufferevent*, void* arg) { static_cast<Session*>(arg)->process(); }
  static void on_write(bufferevent*, void* arg);
  static void on_event(bufferevent*, short what, void* arg);

  size_t feed(std::string_view chunk);
  void command(const lmtp::Command& cmd);
  void lhlo(const std::string& args);
  void mail(const std::string& args);
  void rcpt(const std::string& args);
  void check_quota(std::string address, std::string user);
  void quota_checked(const std::string& address, std::string user, const Result<void>& admitted);
  void resume();
  void data(const std::string& args);
  void data_done();
  void bad(const char* reply);
  void reset() {
    sender_.reset();
    declared_size_ = 0;
    recipients_.clear();
  }
  void send(std::string_view text) { bufferevent_write(bev_, text.data(), text.size()); }
  void set_state(State next);
  void close(const char* reason);

  LmtpServer& server_;
  std::string peer_text_;
  State state_ = State::kGreeted;
  lmtp::CommandReader commands_;
  std::optional<lmtp::DataReader> data_;
  std::optional<std::string> sender_;
  uint64_t declared_size_ = 0;  // MAIL FROM SIZE=, 0 when not given
  std::vector<Recipient> recipients_;
  unsigned bad_commands_ = 0;
  bool output_full_ = false;  // reading paused until the client reads its replies
};

namespace {
auto log() { return logger("lmtp"); }
constexpr size_t kMaxPendingOutput = 64 * 1024;
}  // namespace

void LmtpServer::Session::start() {
  bufferevent_setcb(bev_, on_read, on_write, on_event, this);
  set_timeouts(static_cast<unsigned>(server_.options_.timeout.count()));
  bufferevent_enable(bev_, EV_READ | EV_WRITE);
  send("220 " + server_.options_.hostname + " LMTP Basalt ready\r\n");
  log()->info("[L{}] ip={} action=connect", id_, peer_text_);
}

void LmtpServer::Session::set_state(State next) {
  log()->debug("[L{}] state {} -> {}", id_, static_cast<int>(state_), static_cast<int>(next));
  state_ = next;
}

void LmtpServer::Session::close(const char* reason) {
  log()->info("[L{}] ip={} action=close reason={}", id_, peer_text_, reason);
  release();  // `this` is freed at the end of the loop iteration
}

void LmtpServer::Session::on_write(bufferevent* bev, void* arg) {
  auto* self = static_cast<Session*>(arg);
  if (self->state_ == State::kClosing && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
    return self->close("quit");
  }
  if (self->output_full_ && !self->waiting()) {
    self->output_full_ = false;
    bufferevent_enable(bev, EV_READ);
    self->process();
  }
}

void LmtpServer::Session::on_event(bufferevent*, short what, void* arg) {
  auto* self = static_cast<Session*>(arg);
  if (self->state_ == State::kClosing) return self->close("quit");
  const char* why = (what & BEV_EVENT_TIMEOUT) ? "timeout" : (what & BEV_EVENT_EOF) ? "eof" : "error";
  if (self->state_ == State::kData) why = (what & BEV_EVENT_EOF) ? "eof in DATA (nothing delivered)" : why;
  if (what & BEV_EVENT_TIMEOUT) self->send("421 4.4.2 timeout\r\n");
  self->close(why);
}

// Feeds buffered input chunk by chunk until a delivery is running, the session closes, or
// the input is used up.
void LmtpServer::Session::process() {
  auto ready = [this] { return !waiting() && state_ != State::kClosing; };
  if (drain_input(kMaxPendingOutput, ready, [this](std::string_view chunk) { return feed(chunk); })) {
    output_full_ = true;  // until the client reads its replies
    return;
  }
  if (state_ == State::kClosing) bufferevent_disable(bev_, EV_READ);
}

size_t LmtpServer::Session::feed(std::string_view chunk) {
  size_t used = 0;
  if (state_ == State::kData) {
    if (data_->feed(chunk, used)) data_done();
    return used;
  }
  switch (commands_.feed(chunk, used)) {
    case lmtp::Status::kNeedMore:
      break;
    case lmtp::Status::kCommand:
      command(commands_.take_command());
      break;
    case lmtp::Status::kError:
      bad("500 5.5.2 Line too long\r\n");
      break;
  }
  return used;
}

void LmtpServer::Session::bad(const char* reply) {
  send(reply);
  if (++bad_commands_ >= server_.options_.max_bad_commands) {
    send("421 4.7.0 Too many errors\r\n");
    set_state(State::kClosing);
  }
}

void LmtpServer::Session::command(const lmtp::Command& cmd) {
  const std::string& v = cmd.verb;
  if (v == "LHLO") return lhlo(cmd.args);
  if (v == "MAIL") return mail(cmd.args);
  if (v == "RCPT") return rcpt(cmd.args);
  if (v == "DATA") return data(cmd.args);
  if (v == "RSET") {
    reset();
    if (state_ == State::kMail) set_state(State::kReady);
    return send("250 2.0.0 OK\r\n");
  }
  if (v == "NOOP") return send("250 2.0.0 OK\r\n");
  if (v == "QUIT") {
    send("221 2.0.0 Bye\r\n");
    return set_state(State::kClosing);
  }
  if (v == "HELO" || v == "EHLO") return bad("500 5.5.1 This is LMTP: use LHLO\r\n");
  bad("500 5.5.2 Unknown command\r\n");
}

void LmtpServer::Session::lhlo(const std::string& args) {
  if (args.empty()) return bad("501 5.5.4 LHLO needs a domain\r\n");
  reset();
  set_state(State::kReady);
  send("250-" + server_.options_.hostname + "\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n" +
       "250 SIZE " + std::to_string(server_.options_.max_message) + "\r\n");
}

void LmtpServer::Session::mail(const std::string& args) {
  if (state_ == State::kGreeted) return bad("503 5.5.1 Send LHLO first\r\n");
  if (state_ == State::kMail) return bad("503 5.5.1 Nested MAIL command\r\n");
  auto path = lmtp::parse_path_argument(args, "FROM:");
  if (!path) return bad("501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
  uint64_t size = 0;
  for (const auto& [key, value] : path->params) {
    if (key == "SIZE") {
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), size);
      if (ec != std::errc() || p != value.data() + value.size()) return bad("501 5.5.4 Bad SIZE\r\n");
      if (size > server_.options_.max_message) return send("552 5.3.4 Message too big\r\n");
    } else if (key == "BODY") {
      if (value != "7BIT" && value != "8BITMIME") return bad("501 5.5.4 Bad BODY\r\n");
    } else {
      return bad("555 5.5.4 Unsupported MAIL parameter\r\n");
    }
  }
  sender_ = path->address;
  declared_size_ = size;
  set_state(State::kMail);
  send("250 2.1.0 OK\r\n");
}

void LmtpServer::Session::rcpt(const std::string& args) {
  if (state_ != State::kMail) return bad("503 5.5.1 Need MAIL first\r\n");
  auto path = lmtp::parse_path_argument(args, "TO:");
  if (!path || path->address.empty() || !path->params.empty()) return bad("501 5.5.4 Syntax: RCPT TO:<address>\r\n");
  if (recipients_.size() >= server_.options_.max_recipients) return send("452 4.5.3 Too many recipients\r\n");
  std::string user;
  switch (server_.policy_(path->address, user)) {
    case RcptVerdict::kAccept:
      if (server_.deliverer_.has_quota(user)) return check_quota(std::move(path->address), std::move(user));
      recipients_.push_back({path->address, std::move(user)});
      return send("250 2.1.5 OK\r\n");
    case RcptVerdict::kUnknown:
      return send("550 5.1.1 No such user\r\n");
    case RcptVerdict::kDisabled:
      return send("550 5.2.1 Mailbox disabled\r\n");
    case RcptVerdict::kOtherShard:
      return send("451 4.3.0 Mailbox not on this shard, try again later\r\n");
    case RcptVerdict::kMoving:
      return send("450 4.2.1 Mailbox is being moved, try again later\r\n");
  }
}

// A user at the quota, or whom the declared SIZE would take over it, is refused now (552 5.2.2)
// rather than after the data; the delivery checks again, exactly.
void LmtpServer::Session::check_quota(std::string address, std::string user) {
  Deliverer* deliverer = &server_.deliverer_;
  uint64_t bytes = return_path_bytes(*sender_) + declared_size_;  // the size as stored
  auto job = [deliverer, user, bytes] { return deliverer->admit(user, bytes); };
  auto done = [address, user](Session& s, Result<void> admitted) { s.quota_checked(address, user, admitted); };
  if (!listener_.offload<Session>(server_.pool_, id_, std::move(job), std::move(done))) {
    return send("451 4.3.0 Server busy, try again later\r\n");
  }
  set_state(State::kChecking);
  bufferevent_disable(bev_, EV_READ);
}

void LmtpServer::Session::quota_checked(const std::string& address, std::string user, const Result<void>& admitted) {
  set_state(State::kMail);
  if (admitted) {
    recipients_.push_back({address, std::move(user)});
    send("250 2.1.5 OK\r\n");
  } else if (admitted.error().code == kHubOverQuota) {
    log()->info("[L{}] action=rcpt user={} result=over-quota", id_, log_safe(user));
    send("552 5.2.2 <" + address + "> Mailbox is full\r\n");
  } else {
    log()->error("[L{}] action=rcpt user={} result=fail: {}", id_, log_safe(user), admitted.error().message);
    send("451 4.3.0 <" + address + "> local error, try again later\r\n");
  }
  resume();
}

void LmtpServer::Session::data(const std::string& args) {
  if (state_ != State::kMail) return bad("503 5.5.1 Need MAIL first\r\n");
  if (recipients_.empty()) return bad("503 5.5.1 No valid recipients\r\n");
  if (!args.empty()) return bad("501 5.5.4 DATA takes no arguments\r\n");
  data_.emplace(server_.options_.max_message);
  set_state(State::kData);
  send("354 Go ahead, end with <CRLF>.<CRLF>\r\n");
}

void LmtpServer::Session::data_done() {
  if (data_->too_big()) {
    log()->info("[L{}] action=reject reason=too-big size={}", id_, data_->size());
    for (size_t i = 0; i < recipients_.size(); ++i) send("552 5.3.4 Message too big\r\n");
    reset();
    data_.reset();
    return set_state(State::kReady);
  }
  auto message = std::make_shared<const std::string>(with_return_path(*sender_, data_->take_message()));
  data_.reset();
  std::vector<Recipient> rcpts = std::move(recipients_);
  reset();
  set_state(State::kDelivering);
  bufferevent_disable(bev_, EV_READ);
  LmtpServer* server = &server_;
  uint64_t id = id_;
  size_t n = rcpts.size();
  auto job = [server, id, message, rcpts = std::move(rcpts)] {
    std::vector<std::string> replies;
    int64_t now = static_cast<int64_t>(std::time(nullptr));
    for (const auto& r : rcpts) {
      auto done = server->deliverer_.deliver(r.user, *message, now);
      if (done) {
        log()->info("[L{}] action=deliver user={} uid={} size={} result=ok", id, log_safe(r.user), done->uid,
                    message->size());
        replies.push_back("250 2.0.0 <" + r.address + "> delivered as UID " + std::to_string(done->uid) + "\r\n");
      } else if (done.error().code == kHubOverQuota) {
        log()->info("[L{}] action=deliver user={} size={} result=over-quota", id, log_safe(r.user), message->size());
        replies.push_back("552 5.2.2 <" + r.address + "> Mailbox is full\r\n");
      } else {
        log()->error("[L{}] action=deliver user={} result=fail: {}", id, log_safe(r.user), done.error().message);
        replies.push_back("451 4.3.0 <" + r.address + "> local error, try again later\r\n");
      }
    }
    return replies;
  };
  auto done = [](Session& s, std::vector<std::string> replies) { s.on_delivered(std::move(replies)); };
  if (!listener_.offload<Session>(server_.pool_, id, std::move(job), done)) {
    // Answered from the loop (not from inside process(), which is still draining input).
    std::vector<std::string> replies(n, "451 4.3.0 Server busy, try again later\r\n");
    listener_.post(id, [replies = std::move(replies)](Connection& c) mutable {
      static_cast<Session&>(c).on_delivered(std::move(replies));
    });
  }
}

void LmtpServer::Session::on_delivered(std::vector<std::string> replies) {
  for (const auto& r : replies) send(r);
  set_state(State::kReady);
  resume();
}

void LmtpServer::Session::resume() {
  output_full_ = false;
  bufferevent_enable(bev_, EV_READ);
  process();  // pipelined input that arrived meanwhile
}

LmtpServer::LmtpServer(event_base* base, Deliverer& deliverer, ThreadPool& pool, RecipientPolicy policy,
                       LmtpOptions options)
    : deliverer_(deliverer), pool_(pool), policy_(std::move(policy)), options_(std::move(options)),
      listener_(base, ListenerOptions{"lmtp", options_.max_connections, "421 4.3.2 Too many connections\r\n", 1024},
                [this](Listener& l, uint64_t id, bufferevent* bev, const SocketAddress& peer) {
                  return std::make_unique<Session>(*this, l, id, bev, peer);
                }) {}

LmtpServer::~LmtpServer() = default;

}  // namespace basalt::store
