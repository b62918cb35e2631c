// One client connection: transport (TLS, timers, back-pressure), authentication through the
// Directory, backend connection and the byte relay. Protocol subclasses (IMAP, POP3) implement
// the pre-auth dialogue and the backend login.
#pragma once

#include <event2/bufferevent.h>
#include <event2/event.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "common/net.h"
#include "common/result.h"
#include "directory/directory.h"
#include "proxy/proxy_config.h"
#include "proxy/relay.h"
#include "proxy/tls_contexts.h"

namespace basalt::proxy {

class Worker;

enum class State {
  kTlsHandshake,    // implicit TLS listener, before the greeting reaches the client
  kPreAuth,         // reading pre-auth commands
  kAuthenticating,  // waiting for the Directory; client reads paused
  kFailureDelay,    // answering a failed login after the penalty delay
  kBackendLogin,    // connected (or connecting) to the shard, logging in
  kProxying,        // relaying bytes both ways
  kClosing,         // flushing the last reply, then gone
};

const char* to_string(State state);

// Why a login did not succeed: picks the client's reply and the log reason.
enum class LoginFailure {
  kBadCredentials,       // wrong secret or unknown user: AUTHENTICATIONFAILED after the delay
  kDirectoryDown,        // LDAP unreachable, slow or overloaded: UNAVAILABLE
  kAccountUnavailable,   // moving or disabled: temporary failure
  kNoShard,              // routing attribute names no configured shard
  kBackendDown,          // shard not reachable or login timed out
  kBackendRejected,      // shard refused our login (master or passthrough)
  kPrivacyRequired,      // plaintext authentication before TLS
  kAuthzRefused,         // SASL authzid for someone else
  kProxyLoop,            // TTL exhausted
  kTooManySessions,      // the user has max_sessions_per_user sessions already
};

// What the admin endpoint shows about one session.
struct SessionInfo {
  uint64_t id = 0;
  std::string protocol, user, client, shard, state;
  bool tls = false;
  int64_t age_ms = 0;
  uint64_t bytes_in = 0, bytes_out = 0;
};

// What a client is told about a failed login: IMAP response code, POP3 response code, text.
struct FailureReply {
  const char* imap_code;
  const char* pop3_code;
  const char* text;
};
FailureReply failure_reply(LoginFailure failure);

struct ClientIdentity {
  std::string ip;       // the real client address (forwarded to the shard)
  uint16_t port = 0;
  int proxy_ttl = 5;    // decremented per proxy hop
};

class Session : private Relay::Owner {
 public:
  Session(Worker& worker, uint64_t id, Protocol protocol, evutil_socket_t fd, const SocketAddress& peer,
          const SocketAddress& local);
  virtual ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start();
  uint64_t id() const { return id_; }
  State state() const { return state_; }
  const std::string& user() const { return user_; }

  // Ends the session at once (no more replies); `reason` goes to the session log line.
  void close(const std::string& reason);
  // Says goodbye (IMAP "* BYE", POP3 "-ERR") with `text`, then closes once that is flushed.
  // Used by the admin kick (user moves) and at the end of a drain.
  void kick(const std::string& text, const std::string& reason);
  SessionInfo info() const;

 protected:
  // ---- protocol hooks
  virtual void send_greeting() = 0;
  virtual void on_client_input(evbuffer* input) = 0;             // kPreAuth only
  virtual void send_login_failure(LoginFailure failure, const std::string& detail) = 0;
  virtual void send_bye(const std::string& text) = 0;  // untagged goodbye before we hang up
  virtual void on_backend_connected() = 0;
  virtual void on_backend_input(evbuffer* input) = 0;            // while logging_in_to_backend()
  virtual void send_login_ok() = 0;                              // the client's "logged in" reply
  virtual const char* protocol_name() const = 0;

  // ---- services for subclasses
  void send(std::string_view text);
  void set_state(State next);
  bool tls_active() const { return tls_active_; }
  bool tls_available() const;
  bool plaintext_allowed() const;  // TLS active or a trusted client network
  bool client_trusted() const { return trusted_; }
  // Switches the client connection to TLS. Returns false (and closes) if plaintext arrived
  // after the STARTTLS/STLS command: that would be answered inside TLS (command injection).
  bool start_tls(evbuffer* input);
  // Counts a bad command; true if the limit is reached (the caller says BYE and closes).
  bool count_bad_command();
  // Asks the Directory; on success connects to the user's shard, otherwise calls
  // send_login_failure (after the penalty delay for bad credentials).
  // `secret` is copied and then wiped in the caller's buffer.
  void authenticate(std::string user, std::string& secret);
  // Records the failure (stats, log) and answers it, after the penalty delay when it applies.
  void fail_login(LoginFailure failure, const std::string& detail);
  // Whether backend input is the shard login's: after the verdict (kBackendLogin), or before
  // it when logging in early (see ProxyConfig::early_shard_login).
  bool logging_in_to_backend() const { return state_ == State::kBackendLogin || (early_login_ && !backend_ready_); }
  // ... from `input`, still the current backend connection's (a failed login on a warm
  // connection is repeated on a new one: the old one's input is not read any further).
  bool logging_in_from(evbuffer* input) const {
    return logging_in_to_backend() && backend_ && bufferevent_get_input(backend_) == input;
  }
  // The user the shard login is for: the directory's canonical name (known early from its hint).
  const std::string& login_user() const { return early_login_ ? early_user_ : user_; }
  // Protocol subclass reports the backend login outcome. Before the directory's verdict the
  // success is only remembered (the client is answered when the verdict is in) and a failure
  // drops the early connection (a fresh one is tried, and reported, after the verdict).
  void backend_login_succeeded();
  void backend_login_failed(LoginFailure failure, const std::string& detail);
  void send_to_backend(std::string_view text);
  // Closes after the pending output reached the client.
  void close_after_flush(const std::string& reason);

  Worker& worker_;
  std::shared_ptr<const ProxyConfig> config_snapshot_;  // what this session started with (reloads)
  std::shared_ptr<const TlsContexts> tls_;
  const ProxyConfig& config_;
  const Protocol protocol_;
  ClientIdentity origin_;
  SocketAddress local_;
  std::string user_;            // as typed, then canonical after directory lookup
  std::string secret_;          // kept only for passthrough backend login; wiped after
  std::string typed_user_;      // the login name as the client gave it (auth cache key)
  const ShardConfig* shard_ = nullptr;
  bufferevent* client_ = nullptr;
  bufferevent* backend_ = nullptr;
  std::unique_ptr<Relay> relay_;  // proxying with plain sockets on both sides: replaces both

 private:
  static void on_client_read(bufferevent* bev, void* self);
  static void on_client_write(bufferevent* bev, void* self);
  static void on_client_event(bufferevent* bev, short what, void* self);
  static void on_backend_read(bufferevent* bev, void* self);
  static void on_backend_write(bufferevent* bev, void* self);
  static void on_backend_event(bufferevent* bev, short what, void* self);
  static void on_timer(evutil_socket_t, short, void* self);
  static void free_bufferevent(bufferevent*& bev);
  static constexpr std::chrono::milliseconds kFlushTimeout{10000};

  void install_client_callbacks();
  bufferevent* new_tls_client(evutil_socket_t fd);
  void release_client();
  void finish_starttls();
  void process_input();
  void resume_input();
  void on_client_eof();
  void shut_backend_writes();
  void greet();
  void on_auth_result(directory::AuthResult result);
  void route_to_shard(const directory::UserRoute& route);
  bool try_auth_cache(const directory::AuthResult& unavailable);
  void on_auth_cache_result(std::optional<directory::UserRoute> route, const std::string& why_unavailable);
  void connect_backend();
  std::string open_backend(bool warm = true);
  void adopt_backend(bufferevent* bev);
  void backend_established();
  void retry_backend_cold(const std::string& why);
  void on_route_hint(const directory::UserRoute& route);
  void drop_early_backend();
  void start_relay();
  void start_raw_relay();
  void rewrap_client();
  void count_relayed(bool from_client, size_t bytes);
  void expect_shard_finish();
  void on_relayed(Relay::Side from, size_t bytes) override;
  void on_relay_client_eof() override;
  void on_relay_closed(Relay::Side side, const std::string& why) override;
  void on_relay_client_flushed() override;
  void end_relay(const std::string& bye, const std::string& reason);
  void relay(bufferevent* from, bufferevent* to);
  void on_relay_drained(bufferevent* drained);
  bool is_tls(bufferevent* bev) const;
  void on_side_closed(bufferevent* side, const std::string& reason);
  void arm_timer(std::chrono::milliseconds delay);
  void on_timeout();
  void log_end(const std::string& reason);

  const uint64_t id_;
  State state_ = State::kPreAuth;
  SocketAddress peer_;
  bool trusted_ = false;
  bool tls_active_ = false;
  bool greeted_ = false;
  bool starttls_pending_ = false;   // "OK Begin TLS" is still on its way out
  bool processing_input_ = false;
  bool client_eof_ = false;          // proxying: the client is gone, the shard still answers
  bool client_eof_pending_ = false;
  bool backend_connected_ = false;   // TCP (and TLS) to the shard is up
  bool backend_warm_ = false;        // ... taken from the worker's ShardPool (a failure is retried cold once)
  bool early_login_ = false;         // logging in to the shard before the directory's verdict
  bool backend_ready_ = false;       // ... and the shard has accepted it
  std::string early_user_;           // the route hint's user, whom the early login is for  // the client half-closed while its login was in progress
  bool holds_connection_slot_ = false;  // counted against max_connections_per_ip
  bool over_connection_limit_ = false;
  bool holds_session_slot_ = false;     // counted against max_sessions_per_user         // proxying: client is gone, shard still answering
  evutil_socket_t client_fd_ = -1;  // the client socket (owned: no bufferevent of ours closes it)
  SslPtr client_ssl_;               // TLS to the client (owned: the bufferevent or the relay uses it)
  struct RelayEnd {
    std::string bye, reason;
  };
  std::optional<RelayEnd> relay_end_;  // waiting for the relay to flush before the last words
  size_t bad_commands_ = 0;
  event* timer_ = nullptr;
  std::function<void()> timer_action_;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point last_activity_;
  uint64_t bytes_in_ = 0;   // client → backend
  uint64_t bytes_out_ = 0;  // backend → client
  std::string close_reason_;
};

}  // namespace basalt::proxy
