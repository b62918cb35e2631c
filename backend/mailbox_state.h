// Per-mailbox state: UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, the messages (UID -> flags,
// keywords, internal date, size, modseq) and the expunge history, kept in an append-only log
// of checksummed records (`<mailbox dir>/state.log`, format in docs/storage.md) and replayed
// into memory on open.
//
// Durability: every mutating call writes ONE record (a whole batch) and, with Fsync::kOn,
// fdatasync()s it before the in-memory state changes and before it returns. A crash leaves
// either the whole record or a torn tail, which replay ignores and the next write truncates
// away; a batch is therefore all-or-nothing. Corruption anywhere but the tail is an error.
// When the log has grown past `compact_factor` x the size of a snapshot of the live state it is
// rewritten as a snapshot through write_file_atomically: a crash during compaction leaves the
// old log in place.
//
// Thread-safety: none inside. One MailboxState per mailbox per process, owned by one writer;
// the caller serialises all calls (const calls may run concurrently only with each other).
// Across processes: only the store process that owns the shard writes (read-only users such
// as the indexer or basalt-inspect open, read, and never call a mutating method).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backend/durable_file.h"
#include "common/result.h"

namespace basalt::store {

// System flags, stored as a bitmask. \Recent is session state and never stored.
inline constexpr uint8_t kFlagSeen = 0x01;
inline constexpr uint8_t kFlagAnswered = 0x02;
inline constexpr uint8_t kFlagFlagged = 0x04;
inline constexpr uint8_t kFlagDeleted = 0x08;
inline constexpr uint8_t kFlagDraft = 0x10;
inline constexpr uint8_t kSystemFlagMask = 0x1f;

// Keywords: 1..kMaxKeywordBytes printable ASCII bytes (0x21-0x7e), not starting with '\'.
// Stored sorted and de-duplicated, as given (the IMAP layer owns case and atom rules).
inline constexpr size_t kMaxKeywordBytes = 255;
inline constexpr size_t kMaxKeywordsPerMessage = 128;
inline constexpr uint64_t kMaxModseq = (uint64_t{1} << 63) - 1;  // RFC 7162 mod-sequence-value
// One record (one batch) at most; callers split bigger batches (a batch is the atomic unit).
inline constexpr uint32_t kMaxRecordPayload = 64u << 20;
// Error::code of a write refused because its batch does not fit in one record.
inline constexpr int kStateRecordTooLarge = 1;

struct MessageMeta {
  uint32_t uid = 0;
  int64_t internal_date = 0;  // seconds since the epoch, UTC
  uint32_t size = 0;          // RFC822.SIZE
  uint8_t flags = 0;          // kFlag* bits
  std::vector<std::string> keywords;
  uint64_t modseq = 0;

  bool operator==(const MessageMeta&) const = default;
};

struct NewMessage {
  uint32_t uid = 0;
  int64_t internal_date = 0;
  uint32_t size = 0;
  uint8_t flags = 0;
  std::vector<std::string> keywords;
};

// The new absolute flags and keywords of a message (the caller computes +FLAGS / -FLAGS).
struct FlagUpdate {
  uint32_t uid = 0;
  uint8_t flags = 0;
  std::vector<std::string> keywords;
};

struct ExpungeEntry {
  uint64_t modseq = 0;
  uint32_t uid = 0;

  bool operator==(const ExpungeEntry&) const = default;
};

// The whole state as a value: what compaction writes and what a user move copies.
struct StateSnapshot {
  uint32_t uidvalidity = 0;
  uint32_t uidnext = 1;
  uint64_t highest_modseq = 1;
  // Expunges with modseq <= expunge_floor may have been forgotten (history is capped).
  uint64_t expunge_floor = 0;
  std::vector<MessageMeta> messages;   // ascending UID
  std::vector<ExpungeEntry> expunges;  // ascending modseq

  bool operator==(const StateSnapshot&) const = default;
};

struct StateOptions {
  Fsync fsync = Fsync::kOn;
  // Compact when the log exceeds compact_factor x live size and compact_min_bytes.
  uint32_t compact_factor = 4;
  uint64_t compact_min_bytes = 64 * 1024;
  // Compaction keeps this many most recent expunges (for QRESYNC) and raises the floor.
  size_t max_expunge_history = 100000;
};

class MailboxState {
 public:
  static constexpr std::string_view kLogName = "state.log";

  // A new, empty mailbox: writes the log atomically in `dir` (which must exist). Refuses to
  // overwrite an existing log.
  static Result<MailboxState> create(const std::string& dir, uint32_t uidvalidity, StateOptions options = {});
  // A mailbox with a given state (user moves, restores): validated as a replay would, then
  // written atomically. Refuses to overwrite an existing log.
  static Result<MailboxState> create_from(const std::string& dir, const StateSnapshot& snapshot,
                                          StateOptions options = {});
  // Replays `dir`/state.log. A torn last record is ignored (see discarded_tail_bytes()).
  static Result<MailboxState> open(const std::string& dir, StateOptions options = {});
  static bool exists(const std::string& dir);

  uint32_t uidvalidity() const { return s_.uidvalidity; }
  uint32_t uidnext() const { return s_.uidnext; }
  uint64_t highest_modseq() const { return s_.highest_modseq; }
  uint64_t expunge_floor() const { return s_.expunge_floor; }
  // Ascending UID: messages()[i] has sequence number i + 1.
  const std::vector<MessageMeta>& messages() const { return s_.messages; }
  const std::vector<ExpungeEntry>& expunges() const { return s_.expunges; }
  const MessageMeta* find(uint32_t uid) const;
  std::optional<size_t> index_of(uint32_t uid) const;
  // UIDs (ascending) expunged with a modseq > `modseq`. Complete only if modseq >= expunge_floor().
  std::vector<uint32_t> expunged_since(uint64_t modseq) const;
  const StateSnapshot& snapshot() const { return s_; }

  // Appends messages (ascending UIDs, the first >= uidnext; UIDs never go backwards) with one
  // new modseq, which is returned. uidnext becomes last UID + 1. An empty batch writes nothing.
  Result<uint64_t> append(std::span<const NewMessage> messages);
  // Sets flags/keywords of existing messages (distinct UIDs) under one new modseq.
  Result<uint64_t> set_flags(std::span<const FlagUpdate> updates);
  // Removes existing messages (distinct UIDs) under one new modseq, recorded in the history.
  Result<uint64_t> expunge(std::span<const uint32_t> uids);
  // Rewrites the log as a snapshot now (atomically). Also runs automatically after writes.
  Result<void> compact();

  uint64_t log_bytes() const { return log_bytes_; }
  uint64_t live_bytes() const { return live_bytes_; }
  uint64_t discarded_tail_bytes() const { return discarded_tail_; }
  const std::string& dir() const { return dir_; }

  struct Record;  // one decoded log record (defined in mailbox_state.cc)

 private:
  MailboxState(std::string dir, StateOptions options) : dir_(std::move(dir)), options_(options) {}
  static Result<MailboxState> replay(std::string dir, std::string_view log, StateOptions options);
  static Result<MailboxState> write_new(const std::string& dir, const StateSnapshot& snapshot, StateOptions options);
  Result<void> check(const Record& r) const;
  void apply(const Record& r);
  Result<uint64_t> commit(const Record& r);
  void maybe_compact();

  std::string dir_;
  StateOptions options_;
  StateSnapshot s_;
  bool created_ = false;        // replay: the created record was seen
  bool changes_seen_ = false;   // replay: snapshot records are only valid before any change
  uint64_t log_bytes_ = 0;      // valid bytes of the log (what replay accepted or we wrote)
  uint64_t live_bytes_ = 0;     // size a snapshot of the current state would have
  uint64_t discarded_tail_ = 0;
  uint64_t next_compact_try_ = 0;  // after a failed compaction, wait for more growth
  std::optional<AppendFile> writer_;  // opened on the first write (readers never write)
};

}  // namespace basalt::store
