// Final delivery of one message into a user's INBOX (the LMTP path), through the MailboxHub so
// that open IMAP/POP3 sessions see it and writers of one mailbox are serialised.
//
// Order (docs/storage.md, "Ordering rules"): summarize; uid = state.uidnext(); spool
// store_message (durable); state.append (durable); header cache put. A failure before the
// state record leaves at most an orphan blob at UID >= UIDNEXT (invisible, overwritten by the
// next delivery), so the recipient gets a temporary failure and nothing is visible. Once the
// state record is written the message is delivered: a header cache failure after that is
// logged and counted (the cache is derived and rebuilt from the spool by the indexer), never
// reported as a failure, which would make the MTA deliver a duplicate.
//
// The INBOX (list entry, directory, state) is created on first delivery.
//
// Thread-safety: deliver() may be called from any number of threads. Blocking disk I/O: call
// it from a thread pool, never from an event loop.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "backend/mailbox_hub.h"
#include "common/result.h"

namespace basalt::store {

struct Delivered {
  MailboxId mailbox{};
  uint32_t uidvalidity = 0;
  uint32_t uid = 0;
  bool cached = false;  // the header cache entry was written
};

using DeliveryStep = AppendStep;

class Deliverer {
 public:
  explicit Deliverer(MailboxHub& hub) : hub_(hub) {}

  // Over the user's quota: kHubOverQuota, nothing stored.
  Result<Delivered> deliver(std::string_view user, std::string_view message, int64_t internal_date);
  // Loop-safe: whether the user has a quota (RCPT then asks admit() on the pool).
  bool has_quota(std::string_view user) const { return !hub_.quota_limits(user).unlimited(); }
  // Blocking: whether one message of `bytes` (as stored) fits in the user's quota now;
  // kHubOverQuota if not.
  Result<void> admit(std::string_view user, uint64_t bytes) { return hub_.check_quota(user, bytes, 1); }

  uint64_t cache_failures() const { return cache_failures_.load(); }

 private:
  MailboxHub& hub_;
  std::atomic<uint64_t> cache_failures_{0};
};

// "Return-Path: <sender>\r\n" + message: what final delivery stores (RFC 5321 4.4).
std::string with_return_path(std::string_view sender, std::string_view message);
// The bytes with_return_path() adds.
inline size_t return_path_bytes(std::string_view sender) { return sender.size() + 17; }

}  // namespace basalt::store
