// One asynchronous LDAP connection on a libevent loop.
//
// libldap is only used as a protocol codec: we connect the TCP socket ourselves (non-blocking,
// with a timer), hand it to ldap_init_fd(), watch it with an EV_READ event and drain replies
// with a zero-timeout ldap_result(). No call here ever blocks the loop.
//
// Callbacks (reply handlers and the Listener) only ever run from this connection's own loop
// events, never from inside a public method, so callers may call any method from a callback.
#pragma once

#include <event2/event.h>
#include <ldap.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/handles.h"
#include "common/result.h"
#include "directory/directory_config.h"

namespace basalt::directory {

inline void ldap_close(LDAP* ld) { ldap_unbind_ext(ld, nullptr, nullptr); }
using LdapHandle = CHandle<LDAP, ldap_close>;
using LdapMessageHandle = CHandle<LDAPMessage, ldap_msgfree>;
using Timestamp = std::chrono::steady_clock::time_point;

// Failover state shared by the connections of one directory: after every server failed, nobody
// reconnects before `retry_interval` has passed (operations fail fast meanwhile).
class ServerList {
 public:
  ServerList(std::vector<LdapServer> servers, std::chrono::milliseconds retry_interval)
      : servers_(std::move(servers)), retry_interval_(retry_interval) {}
  const std::vector<LdapServer>& servers() const { return servers_; }
  bool backing_off(Timestamp now) const { return now < retry_after_; }
  std::chrono::milliseconds retry_in(Timestamp now) const;
  void mark_all_failed(Timestamp now) { retry_after_ = now + retry_interval_; }
  void mark_success() { retry_after_ = {}; }

 private:
  std::vector<LdapServer> servers_;
  std::chrono::milliseconds retry_interval_;
  Timestamp retry_after_{};
};

struct LdapEntry {
  std::string dn;
  std::unordered_map<std::string, std::vector<std::string>> attributes;  // lower-cased names
  // First value of `attribute` (case-insensitive), or nullptr.
  const std::string* first(std::string_view attribute) const;
};

// The answer to one request, already decoded (so that callers never need the LDAP handle).
struct LdapReply {
  std::string error;        // non-empty: no answer (connection lost or dropped)
  int code = LDAP_OTHER;    // LDAP result code, when error is empty
  std::string diagnostic;   // the server's diagnostic message, if any
  size_t entry_count = 0;   // search entries received
  std::vector<LdapEntry> entries;  // the first few of them (kMaxDecodedEntries)
};
using ReplyHandler = std::function<void(LdapReply)>;

class LdapConnection {
 public:
  static constexpr size_t kMaxDecodedEntries = 2;

  // kSearch binds as the service account on connect and must succeed; kBind sends an
  // anonymous bind on connect, only to prove the server answers before it is used.
  enum class Role { kSearch, kBind };
  enum class State { kDown, kConnecting, kReady };

  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void on_connection_ready(LdapConnection& connection) = 0;
    // all_failed: a connect attempt went through every server without success.
    virtual void on_connection_down(LdapConnection& connection, const std::string& reason, bool all_failed) = 0;
  };

  LdapConnection(event_base* base, const LdapConfig& config, ServerList& servers, Role role, Listener& listener,
                 std::string name);
  ~LdapConnection();
  LdapConnection(const LdapConnection&) = delete;
  LdapConnection& operator=(const LdapConnection&) = delete;

  State state() const { return state_; }
  bool idle() const { return state_ == State::kReady && handlers_.empty(); }
  size_t outstanding() const { return handlers_.size(); }
  const std::string& name() const { return name_; }
  // When data last arrived from the server: tells a hung server from a slow request.
  Timestamp last_reply() const { return last_reply_; }

  // Starts connecting when down (servers tried in order); the outcome arrives via Listener.
  void connect();
  // Send a request; `handler` gets the reply. Errors mean nothing was sent (the connection
  // is then dropped, its other requests fail through their handlers).
  Result<int> search(const std::string& base_dn, int scope, const std::string& filter,
                     const std::vector<std::string>& attributes, int size_limit, ReplyHandler handler);
  Result<int> bind(const std::string& dn, std::string_view secret, ReplyHandler handler);
  // Forgets the handler and asks the server to stop working on the request.
  void abandon(int msgid);
  // Forgets the handler; a late reply is discarded.
  void forget(int msgid) { handlers_.erase(msgid); }
  // Closes now. Outstanding handlers get `reason` from the loop, then on_connection_down.
  void drop(const std::string& reason);

 private:
  static void on_kick(evutil_socket_t, short, void* arg);
  static void on_connect_event(evutil_socket_t, short what, void* arg);
  static void on_read_event(evutil_socket_t, short, void* arg);
  static void on_handshake_timeout(evutil_socket_t, short, void* arg);

  void run_kick();
  void try_next_server();
  void fail_attempt(const std::string& why);
  void on_tcp_connected();
  Result<void> start_handshake();
  void finish_handshake(const LdapReply& reply);
  void read_replies();
  void dispatch(LdapMessageHandle message);
  void lost(const std::string& reason);
  void close_handles();
  Result<int> after_send(int rc, int msgid, ReplyHandler handler, const char* what);
  const std::string& current_uri() const;

  event_base* base_;
  const LdapConfig& config_;
  ServerList& servers_;
  Role role_;
  Listener& listener_;
  std::string name_;

  State state_ = State::kDown;
  bool attempt_pending_ = false;  // connect() was called; the kick event starts the attempt
  size_t server_index_ = 0;
  std::string last_error_;
  int fd_ = -1;  // owned by ld_ once ldap_init_fd succeeded
  LdapHandle ld_;
  Sockbuf* sockbuf_ = nullptr;  // ld_'s, with the read-ahead layer
  int handshake_msgid_ = -1;
  uint64_t generation_ = 0;  // bumped on every close: lets loops notice a drop by a callback
  Timestamp last_reply_{};
  std::unordered_map<int, ReplyHandler> handlers_;
  std::vector<std::pair<ReplyHandler, std::string>> orphans_;  // to fail from the loop
  std::vector<std::string> down_notices_;                      // to report from the loop

  CHandle<event, event_free> io_event_;  // EV_WRITE while connecting, then EV_READ|EV_PERSIST
  CHandle<event, event_free> handshake_timer_;
  CHandle<event, event_free> kick_;  // deferred work: connect attempts and drop notices
};

const char* to_string(LdapConnection::State state);

}  // namespace basalt::directory
