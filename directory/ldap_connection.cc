#include "directory/ldap_connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openldap.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "common/log.h"

namespace basalt::directory {
namespace {

timeval to_timeval(std::chrono::milliseconds ms) {
  return timeval{static_cast<time_t>(ms.count() / 1000), static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

int ld_error(LDAP* ld) {
  int code = LDAP_OTHER;
  if (ld) ldap_get_option(ld, LDAP_OPT_RESULT_CODE, &code);
  return code;
}

LdapEntry decode_entry(LDAP* ld, LDAPMessage* message) {
  LdapEntry entry;
  if (char* dn = ldap_get_dn(ld, message)) {
    entry.dn = dn;
    ldap_memfree(dn);
  }
  BerElement* ber = nullptr;
  for (char* name = ldap_first_attribute(ld, message, &ber); name; name = ldap_next_attribute(ld, message, ber)) {
    auto& values = entry.attributes[lower(name)];
    if (berval** raw = ldap_get_values_len(ld, message, name)) {
      for (berval** v = raw; *v; ++v) values.emplace_back((*v)->bv_val, (*v)->bv_len);
      ldap_value_free_len(raw);
    }
    ldap_memfree(name);
  }
  if (ber) ber_free(ber, 0);
  return entry;
}

LdapReply decode_reply(LDAP* ld, LDAPMessage* chain) {
  LdapReply reply;
  for (LDAPMessage* m = ldap_first_message(ld, chain); m; m = ldap_next_message(ld, m)) {
    const auto type = static_cast<ber_tag_t>(ldap_msgtype(m));
    if (type == LDAP_RES_SEARCH_ENTRY) {
      ++reply.entry_count;
      if (reply.entries.size() < LdapConnection::kMaxDecodedEntries) reply.entries.push_back(decode_entry(ld, m));
    } else if (type == LDAP_RES_SEARCH_REFERENCE || type == LDAP_RES_INTERMEDIATE) {
      continue;  // continuation references are never chased (that would mean blocking connects)
    } else {
      int code = LDAP_OTHER;
      char* diagnostic = nullptr;
      int rc = ldap_parse_result(ld, m, &code, nullptr, &diagnostic, nullptr, nullptr, 0);
      reply.code = rc == LDAP_SUCCESS ? code : rc;
      if (diagnostic) {
        reply.diagnostic = diagnostic;
        ldap_memfree(diagnostic);
      }
    }
  }
  return reply;
}

}  // namespace

std::chrono::milliseconds ServerList::retry_in(Timestamp now) const {
  if (!backing_off(now)) return std::chrono::milliseconds(0);
  return std::chrono::ceil<std::chrono::milliseconds>(retry_after_ - now);
}

const std::string* LdapEntry::first(std::string_view attribute) const {
  auto it = attributes.find(lower(attribute));
  if (it == attributes.end() || it->second.empty()) return nullptr;
  return &it->second.front();
}

const char* to_string(LdapConnection::State state) {
  switch (state) {
    case LdapConnection::State::kDown: return "down";
    case LdapConnection::State::kConnecting: return "connecting";
    case LdapConnection::State::kReady: return "ready";
  }
  return "?";
}

LdapConnection::LdapConnection(event_base* base, const LdapConfig& config, ServerList& servers, Role role,
                               Listener& listener, std::string name)
    : base_(base),
      config_(config),
      servers_(servers),
      role_(role),
      listener_(listener),
      name_(std::move(name)),
      handshake_timer_(event_new(base, -1, 0, &LdapConnection::on_handshake_timeout, this)),
      kick_(event_new(base, -1, 0, &LdapConnection::on_kick, this)) {
  assert(handshake_timer_ && kick_);
}

LdapConnection::~LdapConnection() { close_handles(); }

void LdapConnection::connect() {
  if (state_ != State::kDown) return;
  state_ = State::kConnecting;
  server_index_ = 0;
  last_error_.clear();
  attempt_pending_ = true;
  event_active(kick_.get(), EV_TIMEOUT, 0);
}

void LdapConnection::drop(const std::string& reason) {
  if (state_ == State::kDown) return;
  logger("directory")->warn("ldap {} {}: closing connection: {}", name_, current_uri(), reason);
  for (auto& [msgid, handler] : handlers_) orphans_.emplace_back(std::move(handler), reason);
  handlers_.clear();
  close_handles();
  state_ = State::kDown;
  attempt_pending_ = false;
  down_notices_.push_back(reason);
  event_active(kick_.get(), EV_TIMEOUT, 0);
}

void LdapConnection::on_kick(evutil_socket_t, short, void* arg) { static_cast<LdapConnection*>(arg)->run_kick(); }

void LdapConnection::run_kick() {
  auto orphans = std::exchange(orphans_, {});
  auto notices = std::exchange(down_notices_, {});
  for (auto& [handler, reason] : orphans) {
    LdapReply reply;
    reply.error = reason;
    handler(std::move(reply));
  }
  for (const auto& reason : notices) listener_.on_connection_down(*this, reason, false);
  if (attempt_pending_ && state_ == State::kConnecting) {
    attempt_pending_ = false;
    try_next_server();
  }
}

const std::string& LdapConnection::current_uri() const {
  static const std::string none = "-";
  const auto& list = servers_.servers();
  return server_index_ < list.size() ? list[server_index_].uri : none;
}

void LdapConnection::try_next_server() {
  const auto& list = servers_.servers();
  for (; server_index_ < list.size(); ++server_index_) {
    const LdapServer& server = list[server_index_];
    int fd = ::socket(server.address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last_error_ = server.uri + ": socket: " + std::strerror(errno);
      continue;
    }
    if (::connect(fd, server.address.get(), server.address.length) == 0 || errno == EINPROGRESS) {
      fd_ = fd;
      io_event_.reset(event_new(base_, fd_, EV_WRITE, &LdapConnection::on_connect_event, this));
      timeval tv = to_timeval(config_.connect_timeout);
      event_add(io_event_.get(), &tv);
      return;
    }
    last_error_ = server.uri + ": " + std::strerror(errno);
    ::close(fd);
    logger("directory")->debug("ldap {}: {}", name_, last_error_);
  }
  state_ = State::kDown;
  servers_.mark_all_failed(std::chrono::steady_clock::now());
  std::string reason = "all LDAP servers failed (last: " + last_error_ + ")";
  logger("directory")->warn("ldap {}: {}", name_, reason);
  listener_.on_connection_down(*this, reason, true);
}

void LdapConnection::fail_attempt(const std::string& why) {
  last_error_ = current_uri() + ": " + why;
  logger("directory")->info("ldap {}: {}", name_, last_error_);
  close_handles();
  ++server_index_;
  try_next_server();
}

void LdapConnection::on_connect_event(evutil_socket_t, short what, void* arg) {
  auto* self = static_cast<LdapConnection*>(arg);
  if (what & EV_TIMEOUT) {
    self->fail_attempt("connect timed out after " + std::to_string(self->config_.connect_timeout.count()) + " ms");
    return;
  }
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(self->fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) {
    self->fail_attempt(std::strerror(err));
    return;
  }
  self->on_tcp_connected();
}

void LdapConnection::on_tcp_connected() {
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  LDAP* raw = nullptr;
  int rc = ldap_init_fd(fd_, LDAP_PROTO_TCP, current_uri().c_str(), &raw);
  if (rc != LDAP_SUCCESS) {
    fail_attempt(std::string("ldap_init_fd: ") + ldap_err2string(rc));
    return;
  }
  ld_.reset(raw);
  // Read ahead: one read(2) per burst of replies instead of two per message (header, body).
  ldap_get_option(raw, LDAP_OPT_SOCKBUF, &sockbuf_);
  if (sockbuf_) ber_sockbuf_add_io(sockbuf_, &ber_sockbuf_io_readahead, LBER_SBIOD_LEVEL_PROVIDER, nullptr);
  int version = LDAP_VERSION3;
  ldap_set_option(ld_.get(), LDAP_OPT_PROTOCOL_VERSION, &version);
  // Chasing referrals would make libldap open connections of its own, blocking the loop.
  ldap_set_option(ld_.get(), LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
  io_event_.reset(event_new(base_, fd_, EV_READ | EV_PERSIST, &LdapConnection::on_read_event, this));
  event_add(io_event_.get(), nullptr);
  if (auto started = start_handshake(); !started) fail_attempt(started.error().message);
}

// The first request on a new connection proves that the server answers (a stopped slapd
// still completes TCP handshakes from its listen backlog) and, for the search connection,
// authenticates as the service account.
Result<void> LdapConnection::start_handshake() {
  const bool service = role_ == Role::kSearch && !config_.bind_dn.empty();
  std::string password = service ? config_.bind_password : "";
  berval cred{static_cast<ber_len_t>(password.size()), password.data()};
  int zero = LDAP_SUCCESS;
  ldap_set_option(ld_.get(), LDAP_OPT_RESULT_CODE, &zero);
  int msgid = -1;
  int rc = ldap_sasl_bind(ld_.get(), service ? config_.bind_dn.c_str() : "", LDAP_SASL_SIMPLE, &cred, nullptr,
                          nullptr, &msgid);
  std::fill(password.begin(), password.end(), '\0');
  if (rc != LDAP_SUCCESS) return make_error(std::string("bind request failed: ") + ldap_err2string(rc));
  if (ld_error(ld_.get()) == LDAP_BUSY) return make_error("socket not writable");
  handshake_msgid_ = msgid;
  timeval tv = to_timeval(config_.connect_timeout);
  event_add(handshake_timer_.get(), &tv);
  return {};
}

void LdapConnection::on_handshake_timeout(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<LdapConnection*>(arg);
  self->fail_attempt("no answer to the initial bind within " + std::to_string(self->config_.connect_timeout.count()) +
                     " ms");
}

void LdapConnection::finish_handshake(const LdapReply& reply) {
  event_del(handshake_timer_.get());
  handshake_msgid_ = -1;
  // Anonymous probes may be refused (disallow bind_anon): any answer proves the server is alive.
  if (role_ == Role::kSearch && reply.code != LDAP_SUCCESS) {
    fail_attempt(std::string("service bind failed: ") + ldap_err2string(reply.code) +
                 (reply.diagnostic.empty() ? "" : " (" + reply.diagnostic + ")"));
    return;
  }
  state_ = State::kReady;
  servers_.mark_success();
  logger("directory")->info("ldap {}: connected to {}", name_, current_uri());
  listener_.on_connection_ready(*this);
}

void LdapConnection::on_read_event(evutil_socket_t, short, void* arg) {
  static_cast<LdapConnection*>(arg)->read_replies();
}

void LdapConnection::read_replies() {
  last_reply_ = std::chrono::steady_clock::now();
  const uint64_t generation = generation_;
  for (;;) {
    LDAPMessage* raw = nullptr;
    timeval zero{0, 0};
    int type = ldap_result(ld_.get(), LDAP_RES_ANY, LDAP_MSG_ALL, &zero, &raw);
    if (type == 0) return;  // nothing complete yet; level-triggered EV_READ brings us back
    if (type < 0) {
      lost(std::string("connection lost: ") + ldap_err2string(ld_error(ld_.get())));
      return;
    }
    dispatch(LdapMessageHandle(raw));
    if (generation != generation_) return;  // closed by a handler or by the handshake
    // Nothing read ahead: ldap_result would only poll(2) to find that out. What is still in
    // the socket brings us back (level-triggered).
    if (!sockbuf_ || !ber_sockbuf_ctrl(sockbuf_, LBER_SB_OPT_DATA_READY, nullptr)) return;
  }
}

void LdapConnection::dispatch(LdapMessageHandle message) {
  const int msgid = ldap_msgid(message.get());
  if (msgid == 0) {  // unsolicited notification, e.g. notice of disconnection (RFC 4511 4.4.1)
    lost("unsolicited notification from the server");
    return;
  }
  if (msgid == handshake_msgid_) {
    LdapReply reply = decode_reply(ld_.get(), message.get());
    message.reset();  // before finish_handshake, which may close this LDAP handle
    finish_handshake(reply);
    return;
  }
  auto it = handlers_.find(msgid);
  if (it == handlers_.end()) return;  // forgotten (timed out): drop the late reply
  ReplyHandler handler = std::move(it->second);
  handlers_.erase(it);
  LdapReply reply = decode_reply(ld_.get(), message.get());
  message.reset();
  handler(std::move(reply));
}

void LdapConnection::lost(const std::string& reason) {
  if (state_ == State::kConnecting) {
    fail_attempt(reason);
    return;
  }
  logger("directory")->warn("ldap {} {}: {}", name_, current_uri(), reason);
  auto handlers = std::exchange(handlers_, {});
  close_handles();
  state_ = State::kDown;
  for (auto& [msgid, handler] : handlers) {
    LdapReply reply;
    reply.error = reason;
    handler(std::move(reply));
  }
  listener_.on_connection_down(*this, reason, false);
}

void LdapConnection::close_handles() {
  event_del(handshake_timer_.get());
  io_event_.reset();  // before the descriptor is closed
  if (ld_) {
    sockbuf_ = nullptr;
    ld_.reset();  // sends an unbind (non-blocking socket) and closes the descriptor
  } else if (fd_ >= 0) {
    ::close(fd_);
  }
  fd_ = -1;
  handshake_msgid_ = -1;
  ++generation_;
}

Result<int> LdapConnection::search(const std::string& base_dn, int scope, const std::string& filter,
                                   const std::vector<std::string>& attributes, int size_limit, ReplyHandler handler) {
  if (state_ != State::kReady) return make_error(std::string("connection is ") + to_string(state_));
  std::vector<char*> attrs;
  for (const auto& a : attributes) attrs.push_back(const_cast<char*>(a.c_str()));
  attrs.push_back(nullptr);
  // Also sent as the server-side time limit, so that slapd gives up when we do.
  auto seconds = std::max<long>(1, static_cast<long>((config_.operation_timeout.count() + 999) / 1000));
  timeval limit{seconds, 0};
  int zero = LDAP_SUCCESS;
  ldap_set_option(ld_.get(), LDAP_OPT_RESULT_CODE, &zero);
  int msgid = -1;
  int rc = ldap_search_ext(ld_.get(), base_dn.c_str(), scope, filter.c_str(), attrs.data(), 0, nullptr, nullptr,
                           &limit, size_limit, &msgid);
  return after_send(rc, msgid, std::move(handler), "search");
}

Result<int> LdapConnection::bind(const std::string& dn, std::string_view secret, ReplyHandler handler) {
  if (state_ != State::kReady) return make_error(std::string("connection is ") + to_string(state_));
  // RFC 4511 4.2.1: no other operation may be outstanding while a bind is in progress.
  if (!handlers_.empty()) return make_error("connection busy");
  berval cred{static_cast<ber_len_t>(secret.size()), const_cast<char*>(secret.data())};
  int zero = LDAP_SUCCESS;
  ldap_set_option(ld_.get(), LDAP_OPT_RESULT_CODE, &zero);
  int msgid = -1;
  int rc = ldap_sasl_bind(ld_.get(), dn.c_str(), LDAP_SASL_SIMPLE, &cred, nullptr, nullptr, &msgid);
  return after_send(rc, msgid, std::move(handler), "bind");
}

Result<int> LdapConnection::after_send(int rc, int msgid, ReplyHandler handler, const char* what) {
  if (rc != LDAP_SUCCESS) {
    std::string reason = std::string(what) + " request failed: " + ldap_err2string(rc);
    drop(reason);
    return make_error(reason);
  }
  // libldap reports a request it could only partly write as success with LDAP_BUSY, and would
  // interleave the rest with later requests. A send buffer that full means the server is not
  // reading: treat the connection as dead.
  if (ld_error(ld_.get()) == LDAP_BUSY) {
    std::string reason = std::string(what) + " request: server is not reading (send buffer full)";
    drop(reason);
    return make_error(reason);
  }
  handlers_.emplace(msgid, std::move(handler));
  return msgid;
}

void LdapConnection::abandon(int msgid) {
  if (handlers_.erase(msgid) == 0 || state_ != State::kReady) return;
  int zero = LDAP_SUCCESS;
  ldap_set_option(ld_.get(), LDAP_OPT_RESULT_CODE, &zero);
  int rc = ldap_abandon_ext(ld_.get(), msgid, nullptr, nullptr);
  if (rc != LDAP_SUCCESS || ld_error(ld_.get()) == LDAP_BUSY) drop("abandon request could not be sent");
}

}  // namespace basalt::directory
