#include "proxy/client_limits.h"

#include <arpa/inet.h>

#include <algorithm>

namespace basalt::proxy {
namespace {

bool acquire(std::unordered_map<std::string, size_t>& counts, const std::string& key, size_t limit) {
  size_t& n = counts[key];
  if (limit != 0 && n >= limit) {
    if (n == 0) counts.erase(key);
    return false;
  }
  ++n;
  return true;
}

void release(std::unordered_map<std::string, size_t>& counts, const std::string& key) {
  auto it = counts.find(key);
  if (it == counts.end()) return;
  if (--it->second == 0) counts.erase(it);
}

}  // namespace

void ClientLimits::update(const Settings& settings) {
  std::lock_guard lock(mu_);
  settings_ = settings;
}

std::string ClientLimits::network_key(const std::string& ip) {
  in6_addr v6;
  if (ip.find(':') == std::string::npos || inet_pton(AF_INET6, ip.c_str(), &v6) != 1) return ip;
  if (IN6_IS_ADDR_V4MAPPED(&v6)) return ip.substr(ip.rfind(':') + 1);
  std::fill(v6.s6_addr + 6, v6.s6_addr + 16, 0);  // one site (/48) is one client network
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, &v6, buf, sizeof buf);
  return std::string(buf) + "/48";
}

bool ClientLimits::acquire_connection(const std::string& ip) {
  std::lock_guard lock(mu_);
  return acquire(connections_, network_key(ip), settings_.max_connections_per_ip);
}

void ClientLimits::release_connection(const std::string& ip) {
  std::lock_guard lock(mu_);
  release(connections_, network_key(ip));
}

bool ClientLimits::acquire_session(const std::string& user) {
  std::lock_guard lock(mu_);
  return acquire(sessions_, user, settings_.max_sessions_per_user);
}

void ClientLimits::release_session(const std::string& user) {
  std::lock_guard lock(mu_);
  release(sessions_, user);
}

unsigned ClientLimits::decayed(const Penalty& p, std::chrono::steady_clock::time_point now) const {
  auto periods = settings_.penalty_decay.count() > 0 ? (now - p.last) / settings_.penalty_decay : 64;
  return periods >= 32 ? 0 : p.failures >> periods;
}

std::chrono::milliseconds ClientLimits::bump(std::unordered_map<std::string, Penalty>& table, const std::string& key,
                                             std::chrono::steady_clock::time_point now) {
  if (table.size() >= settings_.max_tracked) prune(table, now);
  Penalty& p = table[key];
  p.failures = std::min(decayed(p, now) + 1, 16u);
  p.last = now;
  auto delay = settings_.penalty_base * (1LL << (p.failures - 1));
  return std::min<std::chrono::milliseconds>(delay, settings_.penalty_max);
}

void ClientLimits::prune(std::unordered_map<std::string, Penalty>& table, std::chrono::steady_clock::time_point now) {
  std::erase_if(table, [&](const auto& entry) { return decayed(entry.second, now) == 0; });
  if (table.size() >= settings_.max_tracked) table.clear();  // under attack from everywhere: start over
}

std::chrono::milliseconds ClientLimits::record_failure(const std::string& ip, const std::string& user) {
  std::lock_guard lock(mu_);
  auto now = clock_();
  auto delay = bump(by_network_, network_key(ip), now);
  if (!user.empty()) delay = std::max(delay, bump(by_user_, user, now));
  return delay;
}

void ClientLimits::record_success(const std::string& user) {
  std::lock_guard lock(mu_);
  by_user_.erase(user);
}

}  // namespace basalt::proxy
