// Who may log in to basalt-store, shared by the IMAP and POP3 servers.
//
// A user logs in with their own password (users file), or a master user (config [auth]) logs
// in on behalf of a user with SASL PLAIN authzid = the user; master logins are accepted only
// from [auth] trusted_networks (the proxies). Plaintext credentials without TLS are accepted
// from trusted networks, or from anywhere when [auth] plaintext_auth = true.
#pragma once

#include <string>
#include <string_view>

#include "backend/store_config.h"
#include "common/net.h"

namespace basalt::store {

struct LoginRequest {
  std::string_view authzid;   // empty: log in as authcid
  std::string_view authcid;
  std::string_view password;
  SocketAddress peer;         // the connection's peer (the proxy's address when proxied)
  bool tls = false;           // the connection is encrypted
};

enum class LoginVerdict {
  kOk,
  kBadCredentials,   // unknown user, wrong password, master login from an untrusted peer
  kDisabled,         // the user's status says disabled
  kMoving,           // being moved: try again later
  kNotHere,          // the user lives on another shard
  kPrivacyRequired,  // plaintext credentials refused without TLS
};

struct LoginOutcome {
  LoginVerdict verdict = LoginVerdict::kBadCredentials;
  std::string user;        // the user logged in as (authzid or authcid), when kOk
  bool as_master = false;  // authenticated by a master user's password
};

// Blocking: crypt(3) schemes cost milliseconds by design, so call it on the ThreadPool.
LoginOutcome check_login(const StoreConfig& config, const LoginRequest& request);

// True when `peer` may send ID x-originating-ip / XCLIENT (it is a trusted proxy).
bool is_trusted_peer(const StoreConfig& config, const SocketAddress& peer);

}  // namespace basalt::store
