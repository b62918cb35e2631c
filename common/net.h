// Socket addresses and networks: parsing "host:port" / "[v6]:port", CIDR matching, formatting.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace basalt {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
  std::string host() const;   // numeric host, no brackets
  uint16_t port() const;
  std::string to_string() const;  // "1.2.3.4:5" or "[::1]:5"

  static SocketAddress from(const sockaddr* sa, socklen_t len);
};

// Parses a numeric "host:port" or "[v6]:port"; `default_port` applies when no port is given.
Result<SocketAddress> parse_socket_address(std::string_view text, int default_port = -1);

// An IPv4 or IPv6 network in CIDR form. IPv4-mapped IPv6 addresses match IPv4 networks.
// A bound, listening, non-blocking TCP socket (IPv6 sockets are v6-only); `name` is how
// errors name the address (the config text, so operators recognize it).
Result<int> listen_tcp(const SocketAddress& address, std::string_view name, int backlog);

class Network {
 public:
  static Result<Network> parse(std::string_view cidr);  // "10.0.0.0/8", "::1/128", "127.0.0.1"
  bool contains(const SocketAddress& address) const;
  std::string to_string() const;

 private:
  int family_ = AF_INET;
  uint8_t bytes_[16]{};
  int prefix_ = 0;
};

class NetworkList {
 public:
  static Result<NetworkList> parse(const std::vector<std::string>& cidrs);
  bool contains(const SocketAddress& address) const;
  bool empty() const { return networks_.empty(); }

 private:
  std::vector<Network> networks_;
};

}  // namespace basalt
