// The spool: the shard's source of truth on disk (often NFS). It holds one immutable,
// checksummed blob per message and places the per-user and per-mailbox files of
// MailboxList and MailboxState. See docs/storage.md for the layout and guarantees.
//
//   <root>/basalt-spool                          marker "basalt-spool 1\n" (refuses bare mountpoints)
//   <root>/users/<hh>/<escaped user>/            hh = 2 hex digits: top byte of XXH3-64(user)
//       mailboxes                                the user's MailboxList
//       m/<mailbox id>/                          one directory per mailbox, named by its stable id
//           state.log                            the mailbox's MailboxState log
//           <uidvalidity>/<uid>.msg              message blobs (common/blob_codec.h)
//       m/.trash.<id>.<pid>.<n>/                 a mailbox being removed (renamed here first)
//
// Mailboxes are keyed by id, never by name, so a rename moves no blob. Blobs sit under their
// UIDVALIDITY so a mailbox whose UIDs are reset can never mix old and new messages.
//
// Thread-safety: all methods are const-safe for concurrent use from several threads (the
// store reads bodies on a thread pool) — they only touch the file system and atomic counters.
// Writers to one mailbox must still be serialised by the caller (see MailboxState).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backend/durable_file.h"
#include "common/result.h"

namespace basalt::store {

// A mailbox's stable identity within its user (allocated by MailboxList, never reused).
enum class MailboxId : uint64_t {};

inline uint64_t to_u64(MailboxId id) { return static_cast<uint64_t>(id); }

inline constexpr size_t kMaxEscapedUserBytes = 255;  // NAME_MAX

// User name -> directory name. Bytes outside [A-Za-z0-9._@+-], '%', and a leading '.' become
// %XX (upper-case hex), so no name can be ".", "..", hidden, or contain '/' or NUL. Errors for
// an empty name or one whose escaped form exceeds kMaxEscapedUserBytes.
Result<std::string> escape_user(std::string_view user);
// The exact inverse; nullopt for anything escape_user() would not have produced.
std::optional<std::string> unescape_user(std::string_view escaped);
// "00".."ff": the fan-out directory of `user`.
std::string user_hash_dir(std::string_view user);

struct SpoolOptions {
  Fsync fsync = Fsync::kOn;
};

struct SpoolStats {
  uint64_t bytes_read = 0;       // blob bytes read by read_message (header fetches must add none)
  uint64_t messages_read = 0;    // successful read_message calls
  uint64_t corrupt_blobs = 0;    // read_message calls that found a damaged blob
};

class Spool {
 public:
  static constexpr std::string_view kMarkerName = "basalt-spool";
  static constexpr std::string_view kMailboxListName = "mailboxes";
  static constexpr std::string_view kStateLogName = "state.log";

  // Makes `root` (which must exist) a spool: writes the marker and users/. Idempotent.
  static Result<void> initialize(const std::string& root, Fsync fsync = Fsync::kOn);
  // Opens an initialized spool; fails if the marker is missing (e.g. NFS not mounted).
  static Result<std::unique_ptr<Spool>> open(const std::string& root, SpoolOptions options = {});

  const std::string& root() const { return root_; }
  Fsync fsync() const { return options_.fsync; }

  // Paths (nothing is created). Fail only for an invalid user name.
  Result<std::string> user_dir(std::string_view user) const;
  Result<std::string> mailbox_dir(std::string_view user, MailboxId mailbox) const;
  std::string message_path(const std::string& mailbox_dir, uint32_t uidvalidity, uint32_t uid) const;

  // Creates the mailbox directory durably (MailboxState::create needs it to exist).
  Result<std::string> create_mailbox_dir(std::string_view user, MailboxId mailbox) const;

  // Encodes and durably writes a message. Returns only after fsync + rename + directory fsync,
  // so a caller may acknowledge the delivery on ok. Overwrites an existing blob of the same UID
  // (an orphan left by a crash before the state record was written). Creates directories.
  Result<void> store_message(std::string_view user, MailboxId mailbox, uint32_t uidvalidity, uint32_t uid,
                             std::string_view raw) const;

  // Reads, verifies and decodes a message. A missing blob is an error "message not found: ...".
  // A corrupt one is logged (rate-limited) with user, mailbox and UID, counted, and returned as
  // an error for that message only.
  Result<std::string> read_message(std::string_view user, MailboxId mailbox, uint32_t uidvalidity,
                                   uint32_t uid) const;

  // Removes one blob (durably). A missing blob is not an error (expunge may be retried).
  Result<void> remove_message(std::string_view user, MailboxId mailbox, uint32_t uidvalidity, uint32_t uid) const;

  // Removes a mailbox directory with all its blobs and state: first an atomic rename to a
  // trash name (enumerations never see a half-removed mailbox), then the tree. A missing
  // mailbox is not an error. If the deletion itself is interrupted, purge_user() finishes it.
  Result<void> remove_mailbox(std::string_view user, MailboxId mailbox) const;

  // Startup/maintenance for one user: deletes trash directories and temp files older than
  // `min_temp_age` in every mailbox. Returns the number of entries removed.
  Result<size_t> purge_user(std::string_view user, std::chrono::seconds min_temp_age) const;

  // Enumeration, for rebuilding indexes from the spool. Results are sorted; temp files, trash
  // and foreign names are skipped. A missing user or mailbox gives an empty list.
  Result<std::vector<std::string>> list_users() const;
  Result<std::vector<MailboxId>> list_mailboxes(std::string_view user) const;
  Result<std::vector<uint32_t>> list_uidvalidities(std::string_view user, MailboxId mailbox) const;
  Result<std::vector<uint32_t>> list_uids(std::string_view user, MailboxId mailbox, uint32_t uidvalidity) const;

  SpoolStats stats() const;
  uint64_t bytes_read() const { return bytes_read_.load(std::memory_order_relaxed); }


 private:
  Spool(std::string root, SpoolOptions options) : root_(std::move(root)), options_(options) {}
  void log_corrupt(std::string_view user, MailboxId mailbox, uint32_t uidvalidity, uint32_t uid,
                   const std::string& why) const;

  std::string root_;
  SpoolOptions options_;
  mutable std::atomic<uint64_t> bytes_read_{0};
  mutable std::atomic<uint64_t> messages_read_{0};
  mutable std::atomic<uint64_t> corrupt_blobs_{0};
  mutable std::atomic<uint64_t> trash_counter_{0};
  // Corruption log rate limit: at most kCorruptLogBurst lines per minute.
  mutable std::mutex log_mu_;
  mutable std::chrono::steady_clock::time_point log_window_{};
  mutable uint32_t log_count_ = 0;
};

}  // namespace basalt::store
