#include "proxy/pop3_session.h"

#include <event2/buffer.h>

#include "common/sasl.h"
#include "proxy/reply_reader.h"
#include "proxy/worker.h"

namespace basalt::proxy {
namespace {

constexpr size_t kMaxBackendLine = 8192;

pop3::Limits preauth_limits(const LimitsConfig& limits) {
  pop3::Limits l;
  l.max_line = std::min<size_t>(limits.max_line, 8192);  // AUTH PLAIN initial responses can exceed 255
  return l;
}

}  // namespace

Pop3Session::Pop3Session(Worker& worker, uint64_t id, Protocol protocol, evutil_socket_t fd,
                         const SocketAddress& peer, const SocketAddress& local)
    : Session(worker, id, protocol, fd, peer, local),
      parser_(preauth_limits(config_.limits)),
      sasl_reader_(config_.limits.max_line, 4 * config_.limits.max_line) {}

void Pop3Session::send_greeting() { send("+OK " + config_.greeting + "\r\n"); }

void Pop3Session::send_bye(const std::string& text) { send("-ERR " + text + "\r\n"); }

void Pop3Session::on_client_input(evbuffer* input) {
  while (state() == State::kPreAuth && evbuffer_get_length(input) > 0) {
    evbuffer_iovec chunk;
    evbuffer_peek(input, -1, nullptr, &chunk, 1);
    std::string_view bytes(static_cast<const char*>(chunk.iov_base), chunk.iov_len);
    size_t consumed = 0;
    bool in_sasl = sasl_.active();
    auto status = in_sasl ? sasl_reader_.feed(bytes, consumed) : parser_.feed(bytes, consumed);
    evbuffer_drain(input, consumed);
    if (status == pop3::Status::kCommand) {
      if (in_sasl) {
        std::string line = sasl_reader_.take_line();
        sasl_reader_.wipe();
        on_sasl_step(sasl_.respond(line));
      } else {
        handle_command(parser_.take_command(), input);
      }
    } else if (status == pop3::Status::kError) {
      sasl_.cancel();
      const auto& error = in_sasl ? sasl_reader_.error() : parser_.error();
      if (error.fatal) {
        send_bye(error.message);
        close_after_flush("protocol error: " + error.message);
      } else {
        bad_command(error.message);
      }
    }
  }
}

void Pop3Session::bad_command(const std::string& text) {
  send("-ERR " + text + "\r\n");
  if (count_bad_command()) {
    send_bye("Too many invalid commands.");
    close_after_flush("too many invalid commands");
  }
}

void Pop3Session::handle_command(pop3::Command command, evbuffer* input) {
  const std::string& name = command.name;
  if (name == "CAPA") {
    cmd_capa();
  } else if (name == "STLS") {
    cmd_stls(input);
  } else if (name == "USER") {
    cmd_user(command);
  } else if (name == "PASS") {
    cmd_pass(command);
  } else if (name == "AUTH") {
    cmd_auth(command);
  } else if (name == "QUIT") {
    send("+OK Logging out.\r\n");
    close_after_flush("quit");
  } else {
    bad_command("Unknown command or not valid before login.");
  }
}

void Pop3Session::cmd_capa() {
  std::string lines = "+OK Capability list follows\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n";
  if (plaintext_allowed()) lines += "USER\r\nSASL PLAIN LOGIN\r\n";
  if (!tls_active() && tls_available()) lines += "STLS\r\n";
  send(lines + ".\r\n");
}

void Pop3Session::cmd_stls(evbuffer* input) {
  if (tls_active()) return bad_command("TLS is already active.");
  if (!tls_available()) return bad_command("TLS support isn't enabled.");
  send("+OK Begin TLS negotiation now.\r\n");
  pending_user_.clear();  // RFC 2595 section 4: forget what was said before TLS
  if (start_tls(input)) parser_.reset();
}

void Pop3Session::cmd_user(pop3::Command& command) {
  if (command.args.size() != 1 || command.args[0].empty()) return bad_command("USER expects one user name.");
  if (!plaintext_allowed()) return send_login_failure(LoginFailure::kPrivacyRequired, "");
  pending_user_ = std::move(command.args[0]);
  send("+OK\r\n");
}

void Pop3Session::cmd_pass(pop3::Command& command) {
  parser_.wipe();
  if (pending_user_.empty() || command.args.size() != 1) {
    for (auto& arg : command.args) sasl::wipe(arg);
    return bad_command(pending_user_.empty() ? "No user name given (USER first)." : "PASS expects a password.");
  }
  if (!plaintext_allowed()) {
    sasl::wipe(command.args[0]);
    return fail_login(LoginFailure::kPrivacyRequired, "plaintext PASS before TLS");
  }
  std::string user = std::move(pending_user_);
  pending_user_.clear();
  authenticate(std::move(user), command.args[0]);
}

void Pop3Session::cmd_auth(pop3::Command& command) {
  if (command.args.empty()) {
    send("+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n");
    return;
  }
  if (!SaslExchange::supports(command.args[0])) return bad_command("Unsupported authentication mechanism.");
  if (command.args.size() > 2) return bad_command("AUTH expects a mechanism and an optional initial response.");
  parser_.wipe();
  if (!plaintext_allowed()) {
    if (command.args.size() == 2) sasl::wipe(command.args[1]);
    return fail_login(LoginFailure::kPrivacyRequired, "plaintext AUTH before TLS");
  }
  sasl_reader_.reset();
  on_sasl_step(sasl_.start(command.args[0], command.args.size() == 2 ? &command.args[1] : nullptr));
}

void Pop3Session::on_sasl_step(SaslExchange::Step step) {
  switch (step) {
    case SaslExchange::Step::kChallenge:
      send(std::string("+ ") + sasl_.challenge() + "\r\n");
      return;
    case SaslExchange::Step::kDone:
      authenticate(sasl_.take_user(), sasl_.secret());
      return;
    case SaslExchange::Step::kCanceled:
    case SaslExchange::Step::kBadBase64:
    case SaslExchange::Step::kMalformed:
      return bad_command(SaslExchange::error_text(step));
    case SaslExchange::Step::kAuthzRefused:
      return fail_login(LoginFailure::kAuthzRefused, "PLAIN authzid names another user");
  }
}

void Pop3Session::send_login_failure(LoginFailure failure, const std::string&) {
  FailureReply reply = failure_reply(failure);
  send(std::string("-ERR [") + reply.pop3_code + "] " + reply.text + "\r\n");
}

// ---- backend login: greeting, XCLIENT (when offered), AUTH PLAIN.

void Pop3Session::on_backend_connected() { step_ = BackendStep::kGreeting; }

void Pop3Session::on_backend_input(evbuffer* input) {
  std::string line;
  while (logging_in_from(input)) {
    ReadStatus status = read_line(input, kMaxBackendLine, line);
    if (status == ReadStatus::kNeedMore) return;
    if (status == ReadStatus::kTooLong) {
      backend_login_failed(LoginFailure::kBackendRejected, "shard " + shard_->name + " sent an overlong line");
      return;
    }
    if (!on_backend_line(line)) return;
  }
}

bool Pop3Session::on_backend_line(const std::string& line) {
  bool ok = line.starts_with("+OK");
  switch (step_) {
    case BackendStep::kGreeting: {
      if (!ok) break;
      // Dovecot announces XCLIENT in its greeting, to trusted clients only.
      std::string commands;
      if (line.find("[XCLIENT]") != std::string::npos) {
        step_ = BackendStep::kXclient;
        commands = "XCLIENT ADDR=" + origin_.ip + " PORT=" + std::to_string(origin_.port) + " SESSION=basalt-" +
                   std::to_string(worker_.index()) + "-" + std::to_string(id()) +
                   " TTL=" + std::to_string(origin_.proxy_ttl) + "\r\n";
      } else {
        step_ = BackendStep::kAuth;
      }
      send_backend_auth(commands);  // pipelined behind XCLIENT: one write, one round trip
      return true;
    }
    case BackendStep::kXclient:
      step_ = BackendStep::kAuth;  // a refused XCLIENT only costs the forwarded address
      return true;
    case BackendStep::kAuth:
      if (!ok) break;
      backend_login_succeeded();
      return false;
  }
  backend_login_failed(LoginFailure::kBackendRejected, "shard " + shard_->name + ": " + line.substr(0, 200));
  return false;
}

void Pop3Session::send_login_ok() { send("+OK Logged in.\r\n"); }

void Pop3Session::send_backend_auth(std::string commands) {
  bool master = shard_->login == ShardLogin::kMaster;
  std::string payload = master ? sasl::encode_plain(login_user(), shard_->master_user, shard_->master_password)
                               : sasl::encode_plain("", user_, secret_);
  commands += "AUTH PLAIN " + payload + "\r\n";
  send_to_backend(commands);
  sasl::wipe(commands);
  sasl::wipe(payload);
}

}  // namespace basalt::proxy
