#include "proxy/imap_session.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <strings.h>

#include <charconv>
#include <optional>

#include "common/log.h"
#include "common/sasl.h"

namespace basalt::proxy {
namespace {

imap::Limits preauth_limits(const LimitsConfig& limits) {
  imap::Limits l;
  l.max_line = limits.max_line;
  l.max_literal = limits.max_literal;
  l.max_command = limits.max_line + 2 * limits.max_literal;
  return l;
}

bool is_string(const imap::Arg& arg) {
  return arg.kind == imap::ArgKind::kAtom || arg.kind == imap::ArgKind::kQuoted ||
         arg.kind == imap::ArgKind::kLiteral;
}

constexpr long kMaxProxyTtl = 20;

std::optional<long> parse_number(std::string_view text, long min, long max) {
  long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) return std::nullopt;
  return value;
}

bool is_ip_literal(const std::string& text) {
  unsigned char buf[16];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

ImapSession::ImapSession(Worker& worker, uint64_t id, Protocol protocol, evutil_socket_t fd,
                         const SocketAddress& peer, const SocketAddress& local)
    : Session(worker, id, protocol, fd, peer, local),
      parser_(preauth_limits(config_.limits)),
      sasl_reader_(config_.limits.max_line, 4 * config_.limits.max_line) {}

std::string ImapSession::capabilities() const {
  std::string caps = "IMAP4rev1 SASL-IR ID LITERAL+";
  if (!tls_active() && tls_available()) caps += " STARTTLS";
  caps += plaintext_allowed() ? " AUTH=PLAIN AUTH=LOGIN" : " LOGINDISABLED";
  return caps;
}

void ImapSession::send_greeting() { send("* OK [CAPABILITY " + capabilities() + "] " + config_.greeting + "\r\n"); }

void ImapSession::send_bye(const std::string& text) { send("* BYE " + text + "\r\n"); }

void ImapSession::on_client_input(evbuffer* input) {
  while (state() == State::kPreAuth && evbuffer_get_length(input) > 0) {
    evbuffer_iovec chunk;
    evbuffer_peek(input, -1, nullptr, &chunk, 1);
    std::string_view bytes(static_cast<const char*>(chunk.iov_base), chunk.iov_len);
    size_t consumed = 0;
    bool in_sasl = sasl_.active();
    imap::Status status = in_sasl ? sasl_reader_.feed(bytes, consumed) : parser_.feed(bytes, consumed);
    evbuffer_drain(input, consumed);
    switch (status) {
      case imap::Status::kNeedMore:
        break;
      case imap::Status::kNeedContinuation:
        send("+ OK\r\n");
        break;
      case imap::Status::kCommand:
        if (in_sasl) {
          std::string line = sasl_reader_.take_line();
          sasl_reader_.wipe();
          on_sasl_step(sasl_.respond(line));
        } else {
          handle_command(parser_.take_command(), input);
        }
        break;
      case imap::Status::kError:
        handle_parse_error(in_sasl ? sasl_reader_.error() : parser_.error());
        break;
    }
  }
}

void ImapSession::handle_parse_error(const imap::ParseError& error) {
  if (sasl_.active()) {
    sasl_.cancel();
    bad_command(tag_, "SASL response too long.");
    return;
  }
  if (error.fatal) {
    send_bye(error.message);
    close_after_flush("protocol error: " + error.message);
    return;
  }
  bad_command(error.tag, error.message);
}

void ImapSession::bad_command(const std::string& tag, const std::string& text) {
  send((tag.empty() ? std::string("*") : tag) + " BAD " + text + "\r\n");
  if (count_bad_command()) {
    send_bye("Too many invalid commands.");
    close_after_flush("too many invalid commands");
  }
}

void ImapSession::handle_command(imap::Command command, evbuffer* input) {
  const std::string& name = command.name;
  const std::string& tag = command.tag;
  if (name == "CAPABILITY" || name == "NOOP" || name == "LOGOUT" || name == "STARTTLS") {
    if (!command.args.empty()) return bad_command(tag, "Unexpected arguments.");
  }
  if (name == "CAPABILITY") {
    send("* CAPABILITY " + capabilities() + "\r\n" + tag +
         " OK Pre-login capabilities listed, post-login capabilities have more.\r\n");
  } else if (name == "NOOP") {
    send(tag + " OK NOOP completed.\r\n");
  } else if (name == "LOGOUT") {
    send("* BYE Logging out\r\n" + tag + " OK Logout completed.\r\n");
    close_after_flush("logout");
  } else if (name == "ID") {
    cmd_id(command);
  } else if (name == "STARTTLS") {
    cmd_starttls(command, input);
  } else if (name == "LOGIN") {
    cmd_login(command);
  } else if (name == "AUTHENTICATE") {
    cmd_authenticate(command);
  } else {
    bad_command(tag, "Command not permitted before authentication.");
  }
}

void ImapSession::cmd_id(const imap::Command& command) {
  if (command.args.size() != 1 ||
      (command.args[0].kind != imap::ArgKind::kList && command.args[0].kind != imap::ArgKind::kNil)) {
    return bad_command(command.tag, "ID expects a parenthesized list or NIL.");
  }
  const auto& items = command.args[0].items;
  // Another proxy in front of us (a trusted network) tells us who the real client is.
  for (size_t i = 0; client_trusted() && i + 1 < items.size(); i += 2) {
    const std::string& key = items[i].text;
    const std::string& value = items[i + 1].text;
    if (iequals(key, "x-originating-ip") && is_ip_literal(value)) {
      origin_.ip = value;
    } else if (iequals(key, "x-originating-port")) {
      if (auto port = parse_number(value, 0, 65535)) origin_.port = static_cast<uint16_t>(*port);
    } else if (iequals(key, "x-proxy-ttl")) {
      if (auto ttl = parse_number(value, 0, kMaxProxyTtl)) origin_.proxy_ttl = static_cast<int>(*ttl) - 1;
    }
  }
  send("* ID (\"name\" \"Basalt\")\r\n" + command.tag + " OK ID completed.\r\n");
}

void ImapSession::cmd_starttls(const imap::Command& command, evbuffer* input) {
  if (tls_active()) return bad_command(command.tag, "TLS is already active.");
  if (!tls_available()) return bad_command(command.tag, "TLS support isn't enabled.");
  send(command.tag + " OK Begin TLS negotiation now.\r\n");
  if (start_tls(input)) parser_.reset();
}

void ImapSession::cmd_login(imap::Command& command) {
  if (command.args.size() != 2 || !is_string(command.args[0]) || !is_string(command.args[1])) {
    return bad_command(command.tag, "LOGIN expects a user name and a password.");
  }
  tag_ = command.tag;
  parser_.wipe();
  if (!plaintext_allowed()) {
    sasl::wipe(command.args[1].text);
    fail_login(LoginFailure::kPrivacyRequired, "plaintext LOGIN before TLS");
    return;
  }
  authenticate(std::move(command.args[0].text), command.args[1].text);
}

void ImapSession::cmd_authenticate(imap::Command& command) {
  if (command.args.empty() || command.args.size() > 2 || command.args[0].kind != imap::ArgKind::kAtom) {
    return bad_command(command.tag, "AUTHENTICATE expects a mechanism name.");
  }
  tag_ = command.tag;
  if (!SaslExchange::supports(command.args[0].text)) {
    send(tag_ + " NO Unsupported authentication mechanism.\r\n");
    return;
  }
  parser_.wipe();
  if (!plaintext_allowed()) {
    if (command.args.size() == 2) sasl::wipe(command.args[1].text);
    fail_login(LoginFailure::kPrivacyRequired, "plaintext AUTHENTICATE before TLS");
    return;
  }
  sasl_reader_.reset();
  on_sasl_step(sasl_.start(command.args[0].text, command.args.size() == 2 ? &command.args[1].text : nullptr));
}

void ImapSession::on_sasl_step(SaslExchange::Step step) {
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
      return bad_command(tag_, SaslExchange::error_text(step));
    case SaslExchange::Step::kAuthzRefused:
      return fail_login(LoginFailure::kAuthzRefused, "PLAIN authzid names another user");
  }
}

void ImapSession::send_login_failure(LoginFailure failure, const std::string&) {
  FailureReply reply = failure_reply(failure);
  send(tag_ + " NO [" + reply.imap_code + "] " + reply.text + "\r\n");
}

}  // namespace basalt::proxy
