#include "common/proxy_protocol.h"

#include <arpa/inet.h>

#include <cstring>

namespace basalt::proxy_protocol {
namespace {

constexpr char kV2Signature[12] = {'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};

Status fail(std::string& error, const char* message) {
  error = message;
  return Status::kError;
}

// "PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n" or "PROXY UNKNOWN ...\r\n"
Status parse_v1(std::string_view data, Header& header, std::string& error) {
  size_t end = data.find("\r\n");
  if (end == std::string_view::npos) {
    return data.size() >= kMaxV1Length ? fail(error, "PROXY v1 line too long") : Status::kNeedMore;
  }
  if (end + 2 > kMaxV1Length) return fail(error, "PROXY v1 line too long");
  std::string line(data.substr(6, end - 6));  // after "PROXY "
  header.length = end + 2;
  if (line.rfind("UNKNOWN", 0) == 0) {
    header.local = true;
    return Status::kDone;
  }
  char proto[8], src[64], dst[64];
  unsigned sport = 0, dport = 0;
  char extra = 0;
  if (std::sscanf(line.c_str(), "%7s %63s %63s %u %u%c", proto, src, dst, &sport, &dport, &extra) != 5) {
    return fail(error, "malformed PROXY v1 line");
  }
  bool v4 = std::strcmp(proto, "TCP4") == 0, v6 = std::strcmp(proto, "TCP6") == 0;
  if ((!v4 && !v6) || sport > 65535 || dport > 65535) return fail(error, "malformed PROXY v1 line");
  unsigned char probe[16];
  for (const char* ip : {src, dst}) {
    if (inet_pton(v4 ? AF_INET : AF_INET6, ip, probe) != 1) return fail(error, "bad address in PROXY v1 line");
  }
  std::string s = v6 ? "[" + std::string(src) + "]" : src, d = v6 ? "[" + std::string(dst) + "]" : dst;
  header.source = *parse_socket_address(s + ":" + std::to_string(sport));
  header.destination = *parse_socket_address(d + ":" + std::to_string(dport));
  return Status::kDone;
}

SocketAddress make_address(int family, const unsigned char* ip, const unsigned char* port) {
  SocketAddress a;
  uint16_t p;
  std::memcpy(&p, port, 2);
  if (family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&a.storage);
    sin->sin_family = AF_INET;
    std::memcpy(&sin->sin_addr, ip, 4);
    sin->sin_port = p;
    a.length = sizeof(sockaddr_in);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    sin6->sin6_family = AF_INET6;
    std::memcpy(&sin6->sin6_addr, ip, 16);
    sin6->sin6_port = p;
    a.length = sizeof(sockaddr_in6);
  }
  return a;
}

Status parse_v2(std::string_view data, Header& header, std::string& error) {
  if (data.size() < 16) return Status::kNeedMore;
  auto* b = reinterpret_cast<const unsigned char*>(data.data());
  if ((b[12] >> 4) != 2) return fail(error, "unsupported PROXY v2 version");
  unsigned command = b[12] & 0x0f;
  size_t length = (static_cast<size_t>(b[14]) << 8) | b[15];
  if (16 + length > kMaxV2Length) return fail(error, "PROXY v2 header too long");
  if (data.size() < 16 + length) return Status::kNeedMore;
  header.length = 16 + length;
  if (command == 0) {  // LOCAL: the balancer's own health check
    header.local = true;
    return Status::kDone;
  }
  if (command != 1) return fail(error, "unknown PROXY v2 command");
  unsigned family = b[13] >> 4, transport = b[13] & 0x0f;
  if (transport != 1 && family != 0) return fail(error, "PROXY v2: only TCP is supported");
  const unsigned char* addr = b + 16;
  if (family == 1) {  // AF_INET: src(4) dst(4) sport(2) dport(2)
    if (length < 12) return fail(error, "PROXY v2 address block too short");
    header.source = make_address(AF_INET, addr, addr + 8);
    header.destination = make_address(AF_INET, addr + 4, addr + 10);
  } else if (family == 2) {  // AF_INET6: src(16) dst(16) sport(2) dport(2)
    if (length < 36) return fail(error, "PROXY v2 address block too short");
    header.source = make_address(AF_INET6, addr, addr + 32);
    header.destination = make_address(AF_INET6, addr + 16, addr + 34);
  } else if (family == 0) {  // AF_UNSPEC
    header.local = true;
  } else {
    return fail(error, "PROXY v2: unsupported address family");
  }
  return Status::kDone;
}

}  // namespace

Status parse(std::string_view data, Header& header, std::string& error) {
  header = Header{};
  size_t n = std::min(data.size(), sizeof kV2Signature);
  if (std::memcmp(data.data(), kV2Signature, n) == 0) {
    return n < sizeof kV2Signature ? Status::kNeedMore : parse_v2(data, header, error);
  }
  constexpr std::string_view kV1 = "PROXY ";
  n = std::min(data.size(), kV1.size());
  if (data.substr(0, n) != kV1.substr(0, n)) return fail(error, "no PROXY protocol header");
  if (data.size() < kV1.size()) return Status::kNeedMore;
  return parse_v1(data, header, error);
}

}  // namespace basalt::proxy_protocol
