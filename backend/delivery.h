// Final delivery of one message into a user's INBOX (the LMTP path; later also APPEND).
//
// Order (docs/storage.md, "Ordering rules"): summarize; uid = state.uidnext(); spool
// store_message (durable); state.append (durable); header_cache.put. A failure before the
// state record leaves at most an orphan blob at UID >= UIDNEXT (invisible, overwritten by the
// next delivery), so the recipient gets a temporary failure and nothing is visible. Once the
// state record is written the message is delivered: a header cache failure after that is
// logged and counted (the cache is derived and rebuilt from the spool by the indexer), never
// reported as a failure, which would make the MTA deliver a duplicate.
//
// The INBOX (list entry, directory, state) is created on first delivery.
//
// Thread-safety: deliver() may be called from any number of threads; deliveries to one user
// are serialised by a per-user mutex (one writer per mailbox). Blocking disk I/O: call it from
// a thread pool, never from an event loop.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "backend/spool.h"
#include "common/result.h"
#include "indexer/header_cache.h"

namespace basalt::store {

struct Delivered {
  MailboxId mailbox{};
  uint32_t uidvalidity = 0;
  uint32_t uid = 0;
  bool cached = false;  // the header cache entry was written
};

// Steps, for fault injection in tests.
enum class DeliveryStep { kSummarize, kOpenInbox, kStoreBlob, kAppendState, kCacheHeaders };

struct DelivererOptions {
  Fsync fsync = Fsync::kOn;
  // Tests: return an error to make that step fail.
  std::function<Result<void>(DeliveryStep)> fault;
};

class Deliverer {
 public:
  // `cache` may be null (no header cache); both must outlive the Deliverer.
  Deliverer(const Spool& spool, index::HeaderCache* cache, DelivererOptions options = {});

  Result<Delivered> deliver(std::string_view user, std::string_view message, int64_t internal_date);

  uint64_t cache_failures() const { return cache_failures_.load(); }

 private:
  std::shared_ptr<std::mutex> user_mutex(std::string_view user);
  Result<void> fault(DeliveryStep step) const;

  const Spool& spool_;
  index::HeaderCache* cache_;
  DelivererOptions options_;
  std::mutex map_mu_;
  std::unordered_map<std::string, std::shared_ptr<std::mutex>> user_mu_;
  std::atomic<uint64_t> cache_failures_{0};
};

// "Return-Path: <sender>\r\n" + message: what final delivery stores (RFC 5321 4.4).
std::string with_return_path(std::string_view sender, std::string_view message);

}  // namespace basalt::store
