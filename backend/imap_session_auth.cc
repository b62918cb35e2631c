// LOGIN, AUTHENTICATE PLAIN (SASL-IR and the "+" continuation) and ID. Passwords are checked on
// the pool (crypt(3) costs milliseconds by design), held in one buffer that is wiped after use,
// and never logged.
#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include <memory>

#include "backend/imap_args.h"
#include "backend/imap_session.h"
#include "backend/store_auth.h"
#include "common/log.h"
#include "common/sasl.h"

namespace basalt::store {

namespace {

auto log() { return logger("store"); }

// A failed login is answered after this delay (a timer, never a sleep), which slows guessing.
constexpr std::chrono::milliseconds kFailureDelay{1000};

struct Credentials {
  std::string authzid;
  std::string authcid;
  std::string password;
  ~Credentials() { sasl::wipe(password); }
};

std::string login_failure(LoginVerdict verdict) {
  switch (verdict) {
    case LoginVerdict::kOk:
    case LoginVerdict::kBadCredentials:
    case LoginVerdict::kDisabled:
      return "NO [AUTHENTICATIONFAILED] Authentication failed.";
    case LoginVerdict::kMoving:
      return "NO [UNAVAILABLE] Account is being moved, try again later.";
    case LoginVerdict::kNotHere:
      return "NO [UNAVAILABLE] Account is not on this server.";
    case LoginVerdict::kPrivacyRequired:
      return "NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure connections.";
  }
  return "NO [AUTHENTICATIONFAILED] Authentication failed.";
}

}  // namespace

bool ImapSession::plaintext_allowed() const { return trusted_ || tls_active() || server_.config().plaintext_auth; }

// STARTTLS (RFC 3501 6.2.1): the switch happens once the OK has left.
void ImapSession::cmd_starttls(Command& cmd) {
  if (!cmd.args.empty()) return bad(cmd.tag, "STARTTLS takes no arguments.");
  if (!server_.tls()) return bad(cmd.tag, "TLS is not configured.");
  if (tls_active()) return bad(cmd.tag, "TLS is already active.");
  send(cmd.tag + " OK Begin TLS negotiation now.\r\n");
  tls_starting_ = true;
  bufferevent_disable(bev_, EV_READ);  // the ClientHello stays in the socket for the TLS bufferevent
}

void ImapSession::after_starttls() {
  // Bytes behind STARTTLS were sent in plaintext to be read as if protected (command injection).
  if (evbuffer_get_length(bufferevent_get_input(bev_)) > 0) {
    tls_starting_ = false;
    return close_after_flush("plaintext pipelined after STARTTLS");
  }
  if (evbuffer_get_length(bufferevent_get_output(bev_)) == 0) switch_to_tls();
}

void ImapSession::switch_to_tls() {
  tls_starting_ = false;
  if (!start_tls(server_.tls())) return close("cannot start TLS");
  install();
  parser_.reset();
  log()->debug("[I{}] ip={} action=starttls", id_, client_);
}

void ImapSession::cmd_login(Command& cmd) {
  const std::string* user = cmd.args.size() == 2 ? astring(cmd.args[0]) : nullptr;
  const std::string* password = cmd.args.size() == 2 ? astring(cmd.args[1]) : nullptr;
  if (!user || !password) {
    for (basalt::imap::Arg& a : cmd.args) sasl::wipe(a.text);
    parser_.wipe();
    return bad(cmd.tag, "LOGIN needs a user name and a password.");
  }
  std::string pw = *password;
  sasl::wipe(cmd.args[1].text);
  parser_.wipe();
  if (!plaintext_allowed()) {
    sasl::wipe(pw);
    return no(cmd.tag, "[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure connections.");
  }
  verify_login(cmd.tag, "", *user, std::move(pw));
}

void ImapSession::cmd_authenticate(Command& cmd) {
  if (cmd.args.empty() || cmd.args.size() > 2 || cmd.args[0].kind != basalt::imap::ArgKind::kAtom) {
    return bad(cmd.tag, "AUTHENTICATE needs a mechanism.");
  }
  if (!iequals(cmd.args[0].text, "PLAIN")) return no(cmd.tag, "Unsupported authentication mechanism.");
  if (cmd.args.size() == 1) {
    pending_tag_ = cmd.tag;
    input_ = Input::kSaslResponse;
    return send("+ \r\n");
  }
  std::string initial = std::move(cmd.args[1].text);
  parser_.wipe();
  pending_tag_ = cmd.tag;
  sasl_response(initial == "=" ? std::string() : std::move(initial));
}

void ImapSession::sasl_response(std::string line) {
  input_ = Input::kCommand;
  std::string tag = std::exchange(pending_tag_, {});
  if (line == "*") return bad(tag, "Authentication canceled.");
  auto decoded = line.empty() ? std::optional<std::string>("") : sasl::base64_decode(line);
  sasl::wipe(line);
  if (!decoded) return bad(tag, "Invalid base64 data.");
  auto plain = sasl::decode_plain(*decoded);
  sasl::wipe(*decoded);
  if (!plain) return bad(tag, "Malformed PLAIN credentials.");
  verify_login(tag, std::move(plain->authzid), std::move(plain->authcid), std::move(plain->password));
  sasl::wipe(plain->password);
}

void ImapSession::verify_login(const std::string& tag, std::string authzid, std::string authcid,
                               std::string password) {
  auto creds = std::make_shared<Credentials>();
  creds->authzid = std::move(authzid);
  creds->authcid = std::move(authcid);
  creds->password = std::move(password);
  const StoreConfig* config = &server_.config();
  SocketAddress peer = peer_;
  bool tls = tls_active();
  run([config, creds, peer, tls] {
        LoginOutcome out = check_login(*config, LoginRequest{creds->authzid, creds->authcid, creds->password, peer, tls});
        sasl::wipe(creds->password);
        return out;
      },
      [tag, creds](ImapSession& s, LoginOutcome out) { s.login_done(tag, creds->authzid.empty() ? creds->authcid : creds->authzid, out); });
}

void ImapSession::login_done(const std::string& tag, const std::string& name, const LoginOutcome& out) {
  if (out.verdict == LoginVerdict::kOk) {
    user_ = out.user;
    set_state(State::kAuthenticated);
    log()->info("[I{}] ip={} user={} action=login master={}", id_, client_, log_safe(user_), out.as_master);
    return send(tag + " OK [CAPABILITY " + capabilities() + "] Logged in\r\n");
  }
  log()->info("[I{}] ip={} user={} action=login result=fail verdict={}", id_, client_, log_safe(name),
              static_cast<int>(out.verdict));
  std::string reply = tag + " " + login_failure(out.verdict) + "\r\n";
  if (out.verdict != LoginVerdict::kBadCredentials) return send(reply);
  after(kFailureDelay, [this, reply] { send(reply); });
}

// ID (RFC 2971). From a trusted proxy, x-originating-ip/-port name the real client for logs.
void ImapSession::cmd_id(Command& cmd) {
  if (cmd.args.size() != 1 || (cmd.args[0].kind != basalt::imap::ArgKind::kList && cmd.args[0].kind != basalt::imap::ArgKind::kNil)) {
    return bad(cmd.tag, "ID needs a parameter list or NIL.");
  }
  const auto& items = cmd.args[0].items;
  if (items.size() % 2 != 0) return bad(cmd.tag, "ID parameters come in pairs.");
  std::string ip, port;
  for (size_t i = 0; i + 1 < items.size(); i += 2) {
    const std::string* key = astring(items[i]);
    const std::string* value = astring(items[i + 1]);
    if (!key) return bad(cmd.tag, "ID field names must be strings.");
    if (value && iequals(*key, "x-originating-ip")) ip = *value;
    if (value && iequals(*key, "x-originating-port")) port = *value;
  }
  if (trusted_ && !ip.empty()) {
    client_ = log_safe(ip) + (port.empty() ? "" : ":" + log_safe(port, 8));
    log()->info("[I{}] ip={} action=id proxy={}", id_, client_, peer_.to_string());
  }
  send("* ID (\"name\" \"basalt-store\")\r\n");
  finish(cmd.tag, "OK ID completed.", Sync::kNone);
}

}  // namespace basalt::store
