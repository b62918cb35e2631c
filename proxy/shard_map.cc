#include "proxy/shard_map.h"

#include <strings.h>

namespace basalt::proxy {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// "host:port" or "[v6]:port" → host; a bare host stays as it is.
std::string_view host_part(std::string_view route) {
  if (!route.empty() && route.front() == '[') {
    auto close = route.find(']');
    return close == std::string_view::npos ? route : route.substr(1, close - 1);
  }
  auto colon = route.find(':');
  if (colon != std::string_view::npos && route.find(':', colon + 1) == std::string_view::npos) {
    return route.substr(0, colon);
  }
  return route;
}

bool matches(const ShardConfig& s, std::string_view route) {
  if (iequals(s.name, route)) return true;
  for (const auto& alias : s.hosts) {
    if (iequals(alias, route)) return true;
  }
  for (const auto* text : {&s.imap_text, &s.pop3_text, &s.lmtp_text}) {
    if (!text->empty() && iequals(*text, route)) return true;
  }
  if (host_part(route) != route) return false;  // host:port must match an address exactly
  return (s.has_imap && s.imap.host() == route) || (s.has_pop3 && s.pop3.host() == route);
}

}  // namespace

const ShardConfig* ShardMap::resolve(std::string_view route) const {
  if (route.empty()) return nullptr;
  for (const auto& s : shards_) {
    if (matches(s, route)) return &s;
  }
  // "alias:port" where alias names a shard
  std::string_view host = host_part(route);
  if (host == route) return nullptr;
  for (const auto& s : shards_) {
    for (const auto& alias : s.hosts) {
      if (iequals(alias, host)) return &s;
    }
  }
  return nullptr;
}

}  // namespace basalt::proxy
