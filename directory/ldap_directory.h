// The LDAP directory: search the user's entry with the service connection, bind as that entry
// with the user's secret on one of the bind connections, then read the route and status.
//
// Per instance (one per event loop): one search connection multiplexing every search, and
// `bind_connections` connections doing one bind at a time (a bind occupies its connection,
// RFC 4511 4.2.1) fed from a FIFO queue. Connections are opened lazily, by the first
// operation that needs them, trying the configured servers in order.
#pragma once

#include <event2/event.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/handles.h"
#include "directory/completion_queue.h"
#include "directory/directory.h"
#include "directory/directory_config.h"
#include "directory/ldap_connection.h"
#include "directory/route_cache.h"

namespace basalt::directory {

class LdapDirectory final : public Directory, private LdapConnection::Listener {
 public:
  // `clock` drives the route cache (tests inject one); operation timers use the loop's clock.
  LdapDirectory(event_base* base, const DirectoryConfig& config, SteadyClock clock = {});
  ~LdapDirectory() override;
  LdapDirectory(const LdapDirectory&) = delete;
  LdapDirectory& operator=(const LdapDirectory&) = delete;

  void authenticate(std::string_view user, std::string_view secret, AuthCallback done) override;
  void authenticate_with_hint(std::string_view user, std::string_view secret, AuthCallback done,
                              RouteHint route_known) override;
  size_t pending() const override { return ops_.size() + completions_.size(); }

  size_t cached_routes() const { return cache_.size(); }

 private:
  enum class Stage { kSearchQueued, kSearching, kBindQueued, kBinding };
  struct Op;

  static void on_op_timeout(evutil_socket_t, short, void* arg);
  static const char* stage_name(Stage stage);

  void reply_now(AuthCallback done, AuthOutcome outcome, std::string detail);
  void enqueue_search(Op& op);
  void enqueue_bind(Op& op);
  void pump_search();
  void pump_bind();
  void send_search(Op& op);
  void send_bind(LdapConnection& connection, Op& op);
  void on_search_reply(uint64_t id, LdapReply reply);
  void on_bind_reply(uint64_t id, LdapReply reply);
  void on_timeout(Op& op);
  void request_failed(Op& op, const std::string& reason);
  void fail_queue(std::deque<uint64_t>& queue, const std::string& reason);
  void finish(Op& op, AuthOutcome outcome, std::string detail);
  bool bind_connection_usable() const;
  Op* find(uint64_t id);

  void on_connection_ready(LdapConnection& connection) override;
  void on_connection_down(LdapConnection& connection, const std::string& reason, bool all_failed) override;

  event_base* base_;
  DirectoryConfig config_;
  std::vector<std::string> attributes_;  // requested in every search
  RouteCache cache_;
  ServerList servers_;
  std::unique_ptr<LdapConnection> search_connection_;
  std::vector<std::unique_ptr<LdapConnection>> bind_connections_;
  std::unordered_map<uint64_t, std::unique_ptr<Op>> ops_;
  std::deque<uint64_t> search_queue_;  // operation ids waiting for the search connection
  std::deque<uint64_t> bind_queue_;    // operation ids waiting for a free bind connection
  uint64_t next_id_ = 1;
  CompletionQueue completions_;
};

}  // namespace basalt::directory
