#include "directory/ldap_directory.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cassert>

#include "common/log.h"
#include "directory/ldap_escape.h"

namespace basalt::directory {
namespace {

// More than one entry means the filter is ambiguous; asking for two is enough to tell.
constexpr int kSearchSizeLimit = 2;
// Cache bound per directory instance: ~a few hundred bytes per entry.
constexpr size_t kMaxCachedRoutes = 100000;

int ldap_scope(LdapScope scope) {
  switch (scope) {
    case LdapScope::kBase: return LDAP_SCOPE_BASE;
    case LdapScope::kOne: return LDAP_SCOPE_ONELEVEL;
    case LdapScope::kSub: return LDAP_SCOPE_SUBTREE;
  }
  return LDAP_SCOPE_SUBTREE;
}

std::string describe(const LdapReply& reply) {
  std::string text = ldap_err2string(reply.code);
  if (!reply.diagnostic.empty()) text += " (" + reply.diagnostic + ")";
  return text;
}

}  // namespace

struct LdapDirectory::Op {
  LdapDirectory* owner = nullptr;
  uint64_t id = 0;
  std::string user;
  std::string secret;  // zeroed when the operation ends
  AuthCallback done;
  RouteHint route_known;  // told once, when the bind starts
  Stage stage = Stage::kSearchQueued;
  UserRoute route;
  bool cached = false;  // route came from the cache, not from a search
  LdapConnection* connection = nullptr;
  int msgid = -1;
  int retries = 0;
  Timestamp started{};
  Timestamp sent_at{};
  CHandle<event, event_free> timer;

  ~Op() { OPENSSL_cleanse(secret.data(), secret.size()); }
};

LdapDirectory::LdapDirectory(event_base* base, const DirectoryConfig& config, SteadyClock clock)
    : base_(base),
      config_(config),
      attributes_{config.ldap.login_attribute, config.ldap.route_attribute, config.ldap.status_attribute},
      cache_(config.cache_ttl, kMaxCachedRoutes, std::move(clock)),
      servers_(config.ldap.servers, config.ldap.retry_interval),
      completions_(base) {
  // libldap reads ldap.conf once, on first use: make that happen now, not on the loop.
  int version = 0;
  ldap_get_option(nullptr, LDAP_OPT_PROTOCOL_VERSION, &version);
  LdapConnection::Listener& listener = *this;  // a private base: convert here, not in make_unique
  search_connection_ = std::make_unique<LdapConnection>(base, config_.ldap, servers_, LdapConnection::Role::kSearch,
                                                        listener, "search");
  for (int i = 0; i < config_.ldap.bind_connections; ++i) {
    bind_connections_.push_back(std::make_unique<LdapConnection>(base, config_.ldap, servers_,
                                                                 LdapConnection::Role::kBind, listener,
                                                                 "bind" + std::to_string(i)));
  }
}

// Members go in reverse order: pending results, then operations (timers freed, secrets
// zeroed), then connections (unbound). Nothing calls back once destruction has begun.
LdapDirectory::~LdapDirectory() = default;

void LdapDirectory::reply_now(AuthCallback done, AuthOutcome outcome, std::string detail) {
  AuthResult result;
  result.outcome = outcome;
  result.detail = std::move(detail);
  logger("directory")->debug("ldap auth outcome={} detail={}", to_string(outcome), result.detail);
  completions_.post(std::move(done), std::move(result));
}

void LdapDirectory::authenticate(std::string_view user, std::string_view secret, AuthCallback done) {
  authenticate_with_hint(user, secret, std::move(done), nullptr);
}

void LdapDirectory::authenticate_with_hint(std::string_view user, std::string_view secret, AuthCallback done,
                                           RouteHint route_known) {
  if (auto valid = validate_user_name(user); !valid) {
    reply_now(std::move(done), AuthOutcome::kBadCredentials, "invalid user name: " + valid.error().message);
    return;
  }
  // An empty password would be an unauthenticated bind, which LDAP servers accept.
  if (secret.empty()) {
    reply_now(std::move(done), AuthOutcome::kBadCredentials, "empty password");
    return;
  }
  if (ops_.size() >= config_.ldap.max_pending) {
    reply_now(std::move(done), AuthOutcome::kUnavailable, "directory queue full");
    return;
  }
  auto op = std::make_unique<Op>();
  op->owner = this;
  op->id = next_id_++;
  op->user.assign(user);
  op->secret.assign(secret);  // straight into place: a moved temporary would leave a copy
  op->done = std::move(done);
  op->route_known = std::move(route_known);
  op->started = std::chrono::steady_clock::now();
  op->timer.reset(event_new(base_, -1, 0, &LdapDirectory::on_op_timeout, op.get()));
  timeval tv{static_cast<time_t>(config_.ldap.operation_timeout.count() / 1000),
             static_cast<suseconds_t>(config_.ldap.operation_timeout.count() % 1000 * 1000)};
  event_add(op->timer.get(), &tv);
  Op& ref = *op;
  ops_.emplace(ref.id, std::move(op));
  // `ref` may be finished (and gone) once enqueued: nothing may touch it afterwards.
  if (const UserRoute* cached = cache_.find(ref.user)) {
    ref.route = *cached;
    ref.cached = true;
    enqueue_bind(ref);
    return;
  }
  // Open a bind connection while the search runs: a cold login then waits for one
  // connection set-up, not two in a row.
  if (!bind_connection_usable() && !servers_.backing_off(std::chrono::steady_clock::now())) {
    bind_connections_.front()->connect();
  }
  enqueue_search(ref);
}

const char* LdapDirectory::stage_name(Stage stage) {
  switch (stage) {
    case Stage::kSearchQueued: return "waiting for the search connection";
    case Stage::kSearching: return "searching";
    case Stage::kBindQueued: return "waiting for a bind connection";
    case Stage::kBinding: return "binding";
  }
  return "?";
}

LdapDirectory::Op* LdapDirectory::find(uint64_t id) {
  auto it = ops_.find(id);
  return it == ops_.end() ? nullptr : it->second.get();
}

void LdapDirectory::enqueue_search(Op& op) {
  op.stage = Stage::kSearchQueued;
  search_queue_.push_back(op.id);
  pump_search();
}

void LdapDirectory::enqueue_bind(Op& op) {
  // The route is known; only the secret is left to check. Disabled or moving users are not
  // announced: nobody should connect anywhere for them.
  if (op.route_known && config_.status.classify(op.route.status) == AuthOutcome::kOk) {
    auto hint = std::move(op.route_known);
    op.route_known = nullptr;
    hint(op.route);
  }
  op.stage = Stage::kBindQueued;
  bind_queue_.push_back(op.id);
  pump_bind();
}

void LdapDirectory::pump_search() {
  while (!search_queue_.empty()) {
    switch (search_connection_->state()) {
      case LdapConnection::State::kConnecting: return;  // on_connection_ready pumps again
      case LdapConnection::State::kDown: {
        auto now = std::chrono::steady_clock::now();
        if (servers_.backing_off(now)) {
          fail_queue(search_queue_, "directory unavailable (all servers failed; next attempt in " +
                                        std::to_string(servers_.retry_in(now).count()) + " ms)");
        } else {
          search_connection_->connect();
        }
        return;
      }
      case LdapConnection::State::kReady: break;
    }
    uint64_t id = search_queue_.front();
    search_queue_.pop_front();
    if (Op* op = find(id)) send_search(*op);
  }
}

void LdapDirectory::send_search(Op& op) {
  auto filter = render_filter(config_.ldap.user_filter, op.user);
  if (!filter) {  // unreachable: name and template were validated already
    finish(op, AuthOutcome::kBadCredentials, filter.error().message);
    return;
  }
  auto msgid = search_connection_->search(config_.ldap.base_dn, ldap_scope(config_.ldap.scope), *filter, attributes_,
                                          kSearchSizeLimit,
                                          [this, id = op.id](LdapReply reply) { on_search_reply(id, std::move(reply)); });
  if (!msgid) {
    request_failed(op, "search: " + msgid.error().message);
    return;
  }
  op.stage = Stage::kSearching;
  op.connection = search_connection_.get();
  op.msgid = *msgid;
  op.sent_at = std::chrono::steady_clock::now();
}

void LdapDirectory::on_search_reply(uint64_t id, LdapReply reply) {
  Op* op = find(id);
  if (!op) return;
  op->connection = nullptr;
  op->msgid = -1;
  if (!reply.error.empty()) return request_failed(*op, "search: " + reply.error);
  if (reply.entry_count > 1) return finish(*op, AuthOutcome::kBadCredentials, "ambiguous: several entries match");
  if (reply.code != LDAP_SUCCESS) return finish(*op, AuthOutcome::kUnavailable, "search failed: " + describe(reply));
  if (reply.entry_count == 0 || reply.entries.empty()) return finish(*op, AuthOutcome::kBadCredentials, "unknown user");
  const LdapEntry& entry = reply.entries.front();
  if (entry.dn.empty()) return finish(*op, AuthOutcome::kBadCredentials, "entry without a DN");
  const std::string* login = entry.first(config_.ldap.login_attribute);
  const std::string* route = entry.first(config_.ldap.route_attribute);
  const std::string* status = entry.first(config_.ldap.status_attribute);
  op->route = UserRoute{login ? *login : op->user, entry.dn, route ? *route : "", status ? *status : ""};
  cache_.put(op->user, op->route);
  enqueue_bind(*op);
}

bool LdapDirectory::bind_connection_usable() const {
  return std::any_of(bind_connections_.begin(), bind_connections_.end(),
                     [](const auto& c) { return c->state() != LdapConnection::State::kDown; });
}

void LdapDirectory::pump_bind() {
  while (!bind_queue_.empty()) {
    auto idle = std::find_if(bind_connections_.begin(), bind_connections_.end(), [](const auto& c) { return c->idle(); });
    if (idle == bind_connections_.end()) break;
    uint64_t id = bind_queue_.front();
    bind_queue_.pop_front();
    if (Op* op = find(id)) send_bind(**idle, *op);
  }
  if (bind_queue_.empty()) return;
  // Open more connections, up to one per waiting operation.
  auto now = std::chrono::steady_clock::now();
  size_t connecting = std::count_if(bind_connections_.begin(), bind_connections_.end(),
                                    [](const auto& c) { return c->state() == LdapConnection::State::kConnecting; });
  for (auto& c : bind_connections_) {
    if (connecting >= bind_queue_.size() || servers_.backing_off(now)) break;
    if (c->state() != LdapConnection::State::kDown) continue;
    c->connect();
    ++connecting;
  }
  if (!bind_connection_usable() && servers_.backing_off(now)) {
    fail_queue(bind_queue_, "directory unavailable (all servers failed; next attempt in " +
                                std::to_string(servers_.retry_in(now).count()) + " ms)");
  }
}

void LdapDirectory::send_bind(LdapConnection& connection, Op& op) {
  auto msgid = connection.bind(op.route.dn, op.secret,
                               [this, id = op.id](LdapReply reply) { on_bind_reply(id, std::move(reply)); });
  if (!msgid) {
    request_failed(op, "bind: " + msgid.error().message);
    return;
  }
  op.stage = Stage::kBinding;
  op.connection = &connection;
  op.msgid = *msgid;
  op.sent_at = std::chrono::steady_clock::now();
}

void LdapDirectory::on_bind_reply(uint64_t id, LdapReply reply) {
  if (Op* op = find(id)) {
    op->connection = nullptr;
    op->msgid = -1;
    if (!reply.error.empty()) {
      request_failed(*op, "bind: " + reply.error);
    } else if (reply.code == LDAP_SUCCESS) {
      AuthOutcome outcome = config_.status.classify(op->route.status);
      finish(*op, outcome, outcome == AuthOutcome::kOk ? "" : "status '" + op->route.status + "'");
    } else if (reply.code == LDAP_INVALID_CREDENTIALS || reply.code == LDAP_INAPPROPRIATE_AUTH) {
      // A cached DN may be stale (entry renamed): search again next time.
      if (op->cached) cache_.erase(op->user);
      finish(*op, AuthOutcome::kBadCredentials, "wrong password");
    } else {
      finish(*op, AuthOutcome::kUnavailable, "bind failed: " + describe(reply));
    }
  }
  pump_bind();  // this connection is free again
}

// The request could not be sent or its connection died before the answer. One retry on a
// fresh connection covers a server that closed an idle connection just as we used it.
void LdapDirectory::request_failed(Op& op, const std::string& reason) {
  op.connection = nullptr;
  op.msgid = -1;
  if (op.retries++ > 0) {
    finish(op, AuthOutcome::kUnavailable, reason);
    return;
  }
  logger("directory")->debug("ldap auth id={} retrying after: {}", op.id, reason);
  const bool searching = op.stage == Stage::kSearching || op.stage == Stage::kSearchQueued;
  op.stage = searching ? Stage::kSearchQueued : Stage::kBindQueued;
  (searching ? search_queue_ : bind_queue_).push_front(op.id);
  // No pump here: callers are either pumping already or followed by on_connection_down.
}

void LdapDirectory::on_op_timeout(evutil_socket_t, short, void* arg) {
  auto* op = static_cast<Op*>(arg);
  op->owner->on_timeout(*op);
}

void LdapDirectory::on_timeout(Op& op) {
  LdapConnection* connection = std::exchange(op.connection, nullptr);
  const int msgid = std::exchange(op.msgid, -1);
  const std::string stage = stage_name(op.stage);
  if (op.stage == Stage::kSearching && connection) {
    connection->abandon(msgid);
    // Nothing received since we asked: the server is probably hung, do not reuse it.
    if (connection->last_reply() < op.sent_at) connection->drop("no answer within operation_timeout_ms");
  } else if (op.stage == Stage::kBinding && connection) {
    // Binds cannot be abandoned (RFC 4511 4.11) and block their connection until answered.
    connection->forget(msgid);
    connection->drop("bind not answered within operation_timeout_ms");
  }
  finish(op, AuthOutcome::kUnavailable,
         "timed out after " + std::to_string(config_.ldap.operation_timeout.count()) + " ms " + stage);
}

void LdapDirectory::fail_queue(std::deque<uint64_t>& queue, const std::string& reason) {
  auto ids = std::exchange(queue, {});
  for (uint64_t id : ids) {
    if (Op* op = find(id)) finish(*op, AuthOutcome::kUnavailable, reason);
  }
}

void LdapDirectory::finish(Op& op, AuthOutcome outcome, std::string detail) {
  if (op.connection && op.msgid >= 0) op.connection->forget(op.msgid);
  if (op.stage == Stage::kSearchQueued) std::erase(search_queue_, op.id);
  if (op.stage == Stage::kBindQueued) std::erase(bind_queue_, op.id);
  AuthResult result;
  result.outcome = outcome;
  result.detail = std::move(detail);
  // Only a verified secret reveals where the account lives.
  if (outcome == AuthOutcome::kOk || outcome == AuthOutcome::kDisabled || outcome == AuthOutcome::kMoving) {
    result.route = op.route;
  }
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - op.started);
  logger("directory")->debug("ldap auth id={} user={} outcome={} cached={} ms={} detail={}", op.id, op.user,
                             to_string(outcome), op.cached, elapsed.count(), result.detail);
  AuthCallback done = std::move(op.done);
  ops_.erase(op.id);  // `op` is gone from here on
  completions_.post(std::move(done), std::move(result));
}

void LdapDirectory::on_connection_ready(LdapConnection& connection) {
  if (&connection == search_connection_.get()) {
    pump_search();
  } else {
    pump_bind();
  }
}

void LdapDirectory::on_connection_down(LdapConnection& connection, const std::string& reason, bool all_failed) {
  const bool search = &connection == search_connection_.get();
  if (all_failed) {
    // Fail the waiting operations rather than reconnect at once: a tight reconnect loop
    // would burn the CPU (retry_interval_ms may be 0). The next operation reconnects.
    if (search) {
      fail_queue(search_queue_, "directory unavailable: " + reason);
    } else if (!bind_connection_usable()) {
      fail_queue(bind_queue_, "directory unavailable: " + reason);
    }
    return;
  }
  if (search) {
    pump_search();
  } else {
    pump_bind();
  }
}

}  // namespace basalt::directory
