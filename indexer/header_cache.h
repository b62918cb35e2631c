// The LMDB header cache: one entry per message, holding everything IMAP header fetches
// need (BODY[HEADER], ENVELOPE, BODYSTRUCTURE, BODY, RFC822.SIZE, INTERNALDATE).
//
// Schema (named DBI "headers" in the index root's LMDB environment)
// -----------------------------------------------------------------
// Key, big-endian so that LMDB's byte order is user, mailbox, then UID order:
//     u8 user length (1..255) | user bytes | mailbox_id u64 | uidvalidity u32 | uid u32
// The user is part of the key because mailbox ids are only unique within a user.
// Value:
//     offset 0  u8   format version (kFormatVersion = 1; other versions are refused)
//            1  u8   flags: bit 0 = payload LZO1X-1 compressed (else stored as is);
//                    other bits must be 0 (unknown features are refused)
//            2  u32  payload length before compression
//            6  u32  stored payload length (must equal value length - 14)
//           10  u32  XXH32 (seed 0) of the uncompressed payload
//           14  ...  stored payload
// Payload (all integers big-endian):
//     u64 size (RFC822.SIZE)      u64 raw_size (bytes on the spool)
//     i64 internal date, unix seconds        i16 internal date time-zone offset, minutes
//     u32 len + header bytes      u32 len + envelope     u32 len + bodystructure
//     u32 len + body              (nothing may follow)
// Every length is checked on read; a corrupt value is an error for that message only.
// Changing the layout means a new format version; old entries are rebuilt from the spool.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "indexer/lmdb_env.h"
#include "indexer/message_summary.h"

namespace basalt::index {

struct CacheKey {
  std::string user;  // 1..kMaxUserBytes bytes
  uint64_t mailbox_id = 0;
  uint32_t uidvalidity = 0;
  uint32_t uid = 0;
  bool operator==(const CacheKey&) const = default;
};

struct InternalDate {
  int64_t unix_seconds = 0;
  int16_t tz_offset_minutes = 0;  // east of UTC, as in "+0200" = 120
  bool operator==(const InternalDate&) const = default;
};

struct CachedMessage {
  MessageSummary summary;
  InternalDate internal_date;
};

// One message for put_batch; `summary` is borrowed for the duration of the call.
struct CacheEntry {
  CacheKey key;
  const MessageSummary* summary;
  InternalDate internal_date;
};

class HeaderCache {
 public:
  static constexpr uint8_t kFormatVersion = 1;
  static constexpr size_t kMaxUserBytes = 255;
  static constexpr size_t kValueHeaderSize = 14;
  // Larger payloads are refused on write and treated as corrupt on read.
  static constexpr uint32_t kMaxPayload = 256u << 20;

  // Opens the cache in an existing environment (opens or creates the "headers" DBI).
  static Result<std::unique_ptr<HeaderCache>> open(std::shared_ptr<LmdbEnv> env);
  // Opens the environment in `index_root` and the cache in it.
  static Result<std::unique_ptr<HeaderCache>> open(const std::string& index_root,
                                                   const LmdbEnv::Options& options = {});

  Result<void> put(const CacheKey& key, const MessageSummary& summary, InternalDate internal_date);
  // All entries in one write transaction: all are stored or none.
  Result<void> put_batch(const std::vector<CacheEntry>& entries);
  // nullopt when there is no entry; an error when the entry is corrupt.
  Result<std::optional<CachedMessage>> get(const CacheKey& key) const;
  // Returns whether an entry was removed.
  Result<bool> remove(const CacheKey& key);
  // Removes every entry of (mailbox_id, uidvalidity); returns how many.
  Result<size_t> remove_mailbox(std::string_view user, uint64_t mailbox_id, uint32_t uidvalidity);

  // Calls fn for the entries of (mailbox_id, uidvalidity) with uid >= first_uid, in UID
  // order, until fn returns false. A corrupt entry is passed as an error; iteration goes
  // on. fn runs inside a read transaction: it must not write to the cache.
  using Visitor = std::function<bool(uint32_t uid, Result<CachedMessage> message)>;
  Result<void> for_each(std::string_view user, uint64_t mailbox_id, uint32_t uidvalidity, const Visitor& fn,
                        uint32_t first_uid = 0) const;

  LmdbEnv& env() const { return *env_; }

 private:
  HeaderCache(std::shared_ptr<LmdbEnv> env, MDB_dbi dbi) : env_(std::move(env)), dbi_(dbi) {}
  Result<void> write_with_growth(const std::function<int(const LmdbTxn&)>& body, size_t needed);

  std::shared_ptr<LmdbEnv> env_;
  MDB_dbi dbi_;
};

// The value codec, exposed for tests and the cache fuzz target.
// An error for a user name that is empty or longer than kMaxUserBytes.
Result<std::string> encode_cache_key(const CacheKey& key);
Result<CacheKey> decode_cache_key(std::string_view bytes);
Result<std::string> encode_cache_value(const MessageSummary& summary, InternalDate internal_date);
Result<CachedMessage> decode_cache_value(std::string_view bytes);

}  // namespace basalt::index
