#include "common/net.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>
#include <cerrno>
#include <unistd.h>

namespace basalt {
namespace {

Result<int> parse_port(std::string_view text) {
  int port = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (ec != std::errc() || ptr != text.data() + text.size() || port < 0 || port > 65535) {
    return make_error("invalid port '" + std::string(text) + "'");
  }
  return port;
}

// Returns the 4 or 16 address bytes of `address` (IPv4-mapped IPv6 reduced to IPv4).
int address_bytes(const SocketAddress& address, uint8_t out[16]) {
  if (address.family() == AF_INET) {
    auto* sin = reinterpret_cast<const sockaddr_in*>(&address.storage);
    std::memcpy(out, &sin->sin_addr, 4);
    return AF_INET;
  }
  auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&address.storage);
  if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
    std::memcpy(out, sin6->sin6_addr.s6_addr + 12, 4);
    return AF_INET;
  }
  std::memcpy(out, &sin6->sin6_addr, 16);
  return AF_INET6;
}

}  // namespace

SocketAddress SocketAddress::from(const sockaddr* sa, socklen_t len) {
  SocketAddress a;
  if (len > sizeof(a.storage)) len = sizeof(a.storage);
  std::memcpy(&a.storage, sa, len);
  a.length = len;
  return a;
}

std::string SocketAddress::host() const {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (family() == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, buf, sizeof buf);
  } else if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, buf, sizeof buf);
  } else {
    return "unknown";
  }
  return buf;
}

uint16_t SocketAddress::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  return 0;
}

std::string SocketAddress::to_string() const {
  if (family() == AF_INET6) return "[" + host() + "]:" + std::to_string(port());
  return host() + ":" + std::to_string(port());
}

Result<SocketAddress> parse_socket_address(std::string_view text, int default_port) {
  std::string_view host = text;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return make_error("unbalanced '[' in '" + std::string(text) + "'");
    host = text.substr(1, close - 1);
    auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return make_error("junk after ']' in '" + std::string(text) + "'");
      port_text = rest.substr(1);
    }
  } else if (auto colon = text.rfind(':'); colon != std::string_view::npos && text.find(':') == colon) {
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  int port = default_port;
  if (!port_text.empty()) {
    auto parsed = parse_port(port_text);
    if (!parsed) return parsed.error();
    port = *parsed;
  }
  if (port < 0) return make_error("missing port in '" + std::string(text) + "'");

  SocketAddress a;
  std::string h(host);
  if (h == "localhost") h = "127.0.0.1";
  auto* sin = reinterpret_cast<sockaddr_in*>(&a.storage);
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  if (inet_pton(AF_INET, h.c_str(), &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<uint16_t>(port));
    a.length = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, h.c_str(), &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(static_cast<uint16_t>(port));
    a.length = sizeof(sockaddr_in6);
  } else {
    return make_error("'" + h + "' is not a numeric IP address");
  }
  return a;
}

Result<Network> Network::parse(std::string_view cidr) {
  Network n;
  auto slash = cidr.find('/');
  std::string host(cidr.substr(0, slash));
  if (inet_pton(AF_INET, host.c_str(), n.bytes_) == 1) {
    n.family_ = AF_INET;
    n.prefix_ = 32;
  } else if (inet_pton(AF_INET6, host.c_str(), n.bytes_) == 1) {
    n.family_ = AF_INET6;
    n.prefix_ = 128;
  } else {
    return make_error("invalid network '" + std::string(cidr) + "'");
  }
  if (slash != std::string_view::npos) {
    auto prefix = parse_port(cidr.substr(slash + 1));
    if (!prefix || *prefix > n.prefix_) return make_error("invalid prefix in '" + std::string(cidr) + "'");
    n.prefix_ = *prefix;
  }
  return n;
}

bool Network::contains(const SocketAddress& address) const {
  uint8_t bytes[16];
  if (address_bytes(address, bytes) != family_) return false;
  int full = prefix_ / 8;
  if (std::memcmp(bytes, bytes_, full) != 0) return false;
  int rest = prefix_ % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (bytes[full] & mask) == (bytes_[full] & mask);
}

std::string Network::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {0};
  inet_ntop(family_, bytes_, buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(prefix_);
}

Result<NetworkList> NetworkList::parse(const std::vector<std::string>& cidrs) {
  NetworkList list;
  for (const auto& c : cidrs) {
    auto n = Network::parse(c);
    if (!n) return n.error();
    list.networks_.push_back(*n);
  }
  return list;
}

bool NetworkList::contains(const SocketAddress& address) const {
  for (const auto& n : networks_) {
    if (n.contains(address)) return true;
  }
  return false;
}

Result<int> listen_tcp(const SocketAddress& a, std::string_view name, int backlog) {
  int fd = socket(a.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (a.family() == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, a.get(), a.length) != 0 || listen(fd, backlog) != 0) {
    std::string why = std::strerror(errno);
    close(fd);
    return make_error("cannot listen on " + std::string(name) + ": " + why);
  }
  return fd;
}

}  // namespace basalt
