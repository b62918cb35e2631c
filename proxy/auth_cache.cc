#include "proxy/auth_cache.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

namespace basalt::proxy {

std::array<unsigned char, 32> AuthCache::derive(const std::string& secret,
                                                const std::array<unsigned char, 16>& salt) const {
  std::array<unsigned char, 32> out{};
  PKCS5_PBKDF2_HMAC(secret.data(), static_cast<int>(secret.size()), salt.data(), static_cast<int>(salt.size()),
                    static_cast<int>(settings_.iterations), EVP_sha256(), static_cast<int>(out.size()), out.data());
  return out;
}

bool AuthCache::has(const std::string& user) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(user);
  return it != entries_.end() && clock_() - it->second.stored <= settings_.ttl;
}

void AuthCache::remember(const std::string& user, const directory::UserRoute& route, const std::string& secret) {
  Entry entry;
  entry.route = route;
  RAND_bytes(entry.salt.data(), static_cast<int>(entry.salt.size()));
  entry.hash = derive(secret, entry.salt);
  std::lock_guard lock(mu_);
  entry.stored = clock_();
  if (entries_.size() >= settings_.max_entries) {
    std::erase_if(entries_, [&](const auto& e) { return entry.stored - e.second.stored > settings_.ttl; });
    if (entries_.size() >= settings_.max_entries) entries_.erase(entries_.begin());
  }
  entries_[user] = std::move(entry);
}

std::optional<directory::UserRoute> AuthCache::check(const std::string& user, const std::string& secret) {
  Entry entry;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(user);
    if (it == entries_.end() || clock_() - it->second.stored > settings_.ttl) return std::nullopt;
    entry = it->second;
  }
  auto hash = derive(secret, entry.salt);
  if (CRYPTO_memcmp(hash.data(), entry.hash.data(), hash.size()) != 0) return std::nullopt;
  return entry.route;
}

void AuthCache::forget(const std::string& user) {
  std::lock_guard lock(mu_);
  entries_.erase(user);
}

}  // namespace basalt::proxy
