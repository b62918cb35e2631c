// Directory: who a user is, whether their secret is right, and which shard holds their mail.
//
// Implementations run on one libevent loop (one instance per worker thread) and never block it.
// Callbacks are always invoked later from that loop, never from inside authenticate().
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

struct event_base;

namespace basalt::directory {

enum class AuthOutcome {
  kOk,              // secret verified; route is filled in
  kBadCredentials,  // unknown user, wrong or empty secret, ambiguous user (never say which)
  kDisabled,        // account disabled by its status attribute
  kMoving,          // account is being moved between shards: a temporary failure
  kUnavailable,     // directory unreachable, slow (timeout), overloaded or answered an error
};

const char* to_string(AuthOutcome outcome);

struct UserRoute {
  std::string user;    // canonical login name, as the directory knows it
  std::string dn;      // LDAP DN (empty for the file directory)
  std::string shard;   // raw routing attribute value: a shard name, "host" or "host:port"
  std::string status;  // raw status attribute value ("" when absent)
};

struct AuthResult {
  AuthOutcome outcome = AuthOutcome::kUnavailable;
  UserRoute route;
  std::string detail;  // why, for the log (never contains the secret)
};

using AuthCallback = std::function<void(AuthResult)>;
using RouteHint = std::function<void(const UserRoute&)>;

class Directory {
 public:
  virtual ~Directory() = default;

  // Verifies `secret` for `user` and looks up the route. `done` is called exactly once, on the
  // loop, unless the Directory is destroyed first. The secret is not retained after the call
  // completes (copies are zeroed).
  virtual void authenticate(std::string_view user, std::string_view secret, AuthCallback done) = 0;

  // authenticate(), and `route_known` is told the route of an active user as soon as the
  // directory has it, before the secret is verified, so that the caller can open the shard
  // connection meanwhile. It may run inside this call and always before `done`; the verdict
  // is `done`'s alone. Implementations without an early route just authenticate().
  virtual void authenticate_with_hint(std::string_view user, std::string_view secret, AuthCallback done,
                                      RouteHint route_known) {
    (void)route_known;
    authenticate(user, secret, std::move(done));
  }

  // Number of operations started but not completed (for tests and metrics).
  virtual size_t pending() const = 0;
};

}  // namespace basalt::directory
