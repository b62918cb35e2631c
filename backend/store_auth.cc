#include "backend/store_auth.h"

#include <algorithm>

#include "directory/file_directory.h"

namespace basalt::store {
namespace {

// Login names as the proxy passes them may carry a domain the users file does not (the LMTP
// recipient rule): exact name first, then the local part.
const directory::FileUser* find_user(const StoreConfig& c, std::string_view name) {
  const directory::FileUser* u = c.users->find(name);
  size_t at = name.rfind('@');
  if (!u && at != std::string_view::npos && at > 0) u = c.users->find(name.substr(0, at));
  return u;
}

bool master_password_ok(const StoreConfig& c, std::string_view name, std::string_view password) {
  auto m = std::find_if(c.masters.begin(), c.masters.end(), [&](const MasterUser& x) { return x.name == name; });
  return m != c.masters.end() && directory::verify_password(m->password, password);
}

LoginOutcome verdict_for(const StoreConfig& c, const directory::FileUser& u, bool as_master) {
  LoginOutcome out;
  switch (c.status.classify(u.status)) {
    case directory::AuthOutcome::kDisabled:
      out.verdict = LoginVerdict::kDisabled;
      return out;
    case directory::AuthOutcome::kMoving:
      out.verdict = LoginVerdict::kMoving;
      return out;
    case directory::AuthOutcome::kOk:
    case directory::AuthOutcome::kBadCredentials:
    case directory::AuthOutcome::kUnavailable:
      break;
  }
  out.verdict = u.shard == c.shard_name ? LoginVerdict::kOk : LoginVerdict::kNotHere;
  out.user = u.name;
  out.as_master = as_master;
  return out;
}

}  // namespace

bool is_trusted_peer(const StoreConfig& config, const SocketAddress& peer) {
  return config.trusted_networks.contains(peer);
}

LoginOutcome check_login(const StoreConfig& c, const LoginRequest& r) {
  const bool trusted = is_trusted_peer(c, r.peer);
  if (!r.tls && !trusted && !c.plaintext_auth) return {LoginVerdict::kPrivacyRequired, {}, false};
  const bool master = !r.authzid.empty() && r.authzid != r.authcid;
  if (master) {
    // Only proxies may act for other users; anyone else gets the same answer as a bad password.
    if (!trusted || !master_password_ok(c, r.authcid, r.password)) return {};
    const directory::FileUser* target = find_user(c, r.authzid);
    if (!target) return {};
    return verdict_for(c, *target, true);
  }
  const directory::FileUser* u = find_user(c, r.authcid);
  if (!u || !directory::verify_password(u->password, r.password)) return {};
  return verdict_for(c, *u, false);
}

}  // namespace basalt::store
