// HAProxy PROXY protocol v1 (text) and v2 (binary) header parser, no I/O.
// https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/net.h"

namespace basalt::proxy_protocol {

enum class Status { kNeedMore, kDone, kError };

struct Header {
  size_t length = 0;                   // bytes the header occupies (consume exactly these)
  bool local = false;                  // v2 LOCAL / v1 UNKNOWN: no address (health check)
  std::optional<SocketAddress> source;  // the real client
  std::optional<SocketAddress> destination;
};

constexpr size_t kMaxV1Length = 107;     // "PROXY TCP6 <39> <39> <5> <5>\r\n"
constexpr size_t kMaxV2Length = 16 + 2048;  // we accept TLVs up to this much

// Parses the header at the start of `data`. kNeedMore: not enough bytes yet (and no error so far).
Status parse(std::string_view data, Header& header, std::string& error);

}  // namespace basalt::proxy_protocol
