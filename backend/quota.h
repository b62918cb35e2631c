// Per-user storage quotas of basalt-store: the limits (config [quota], overridden per user in
// the users file) and the usage they are checked against. Usage counts RFC822.SIZE, the size
// IMAP reports, over all of the user's mailboxes; orphan blobs and state logs are not counted.
#pragma once

#include <cstdint>

namespace basalt::store {

// 0 = no limit on that dimension.
struct QuotaLimits {
  uint64_t bytes = 0;
  uint64_t messages = 0;

  bool unlimited() const { return bytes == 0 && messages == 0; }
  bool operator==(const QuotaLimits&) const = default;
};

struct QuotaUsage {
  uint64_t bytes = 0;
  uint64_t messages = 0;

  bool operator==(const QuotaUsage&) const = default;
};

// Whether adding `bytes` in `messages` messages to `usage` goes over a limit. Reaching a limit
// exactly is allowed.
inline bool exceeds(const QuotaLimits& limits, const QuotaUsage& usage, uint64_t bytes, uint64_t messages) {
  return (limits.bytes != 0 && usage.bytes + bytes > limits.bytes) ||
         (limits.messages != 0 && usage.messages + messages > limits.messages);
}

}  // namespace basalt::store
