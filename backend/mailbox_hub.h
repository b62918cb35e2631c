// The store's in-process registry of users and open mailboxes: the one place where a
// mailbox's state is read and written, so the IMAP sessions, POP3 sessions and LMTP
// deliveries of one user see each other's changes and never write concurrently.
//
// Locking: one mutex per user guards the user's MailboxList and every MailboxState of that
// user. It is held for metadata work (a state record and its fsync, the blob writes of an
// append) and never while a body is read for a client or a reply is written.
//
// Threads: every call may touch the disk (the spool is often NFS), so event loops do not
// call the hub directly: sessions run hub calls on the ThreadPool and post the result back
// with LoopTasks, one call in flight per session (so a session's calls stay ordered). The
// loop-safe exceptions: Mailbox::cached() (an LMDB read on local disk), the accessors marked
// "immutable", and watch().
//
// Change notification: Mailbox::watch() registers a callback that runs on the writer's thread
// after every committed change to that mailbox (append, flags, expunge); it must only post to
// its loop. The session then asks changes_since() for what it has not seen yet.
//
// Quotas: when HubOptions::quota gives a user limits, the hub keeps that user's usage (see
// quota.h) in memory: computed under the user lock on first need after start (from the states
// of all the user's mailboxes, the open ones' in-memory states included), then updated by
// every append, expunge and DELETE. An append that would go over a limit writes nothing and
// fails with kHubOverQuota. Users without limits cost no accounting at all.
//
// Mailbox names are stored as the client sent them (modified UTF-7 is the IMAP layer's
// business); "INBOX" is case-insensitive. The hierarchy delimiter is '/'.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "backend/mailbox_list.h"
#include "backend/mailbox_state.h"
#include "backend/quota.h"
#include "backend/spool.h"
#include "common/result.h"
#include "indexer/header_cache.h"

namespace basalt::store {

class MailboxHub;
struct UserEntry;  // per-user lock and open mailboxes (mailbox_hub.cc)

inline constexpr char kHierarchyDelimiter = '/';

// Error::code values of hub errors, for the protocol layers' response codes.
enum HubErrc : int {
  kHubIo = 0,             // disk/spool failure: "NO [SERVERBUG]" / 451; logged by the hub
  kHubNoSuchMailbox = 1,  // "NO [NONEXISTENT]"
  kHubExists = 2,         // "NO [ALREADYEXISTS]"
  kHubInvalidName = 3,    // "NO [CANNOT]" / BAD
  kHubNotAllowed = 4,     // e.g. DELETE INBOX: "NO [CANNOT]"
  kHubNoSuchMessage = 5,  // expunged meanwhile: "NO [EXPUNGEISSUED]"
  kHubLimit = 6,          // UIDs exhausted, message too big: "NO [LIMIT]"
  kHubOverQuota = 7,      // the user's quota: "NO [OVERQUOTA]" / 552 5.2.2
};

// Whether an append is checked against the user's quota. Only MOVE skips it: it adds nothing
// once its expunge has run, and a user at the limit must be able to file mail away.
enum class QuotaCheck { kEnforce, kSkip };

struct MailboxStatus {
  uint32_t messages = 0;
  uint32_t recent = 0;   // messages no session has claimed yet (see Mailbox::claim_recent)
  uint32_t uidnext = 1;
  uint32_t uidvalidity = 0;
  uint32_t unseen = 0;   // messages without \Seen
  uint64_t highest_modseq = 1;
};

// What changed since a mod-sequence (see Mailbox::changes_since).
struct MailboxChanges {
  uint64_t highest_modseq = 0;
  uint32_t uidnext = 1;
  // False when `since` is below the expunge history kept: `expunged` is then empty and the
  // caller must compare its UIDs with `all_uids`, which is filled in that case only.
  bool complete = true;
  std::vector<uint32_t> expunged;      // ascending: expunged after `since`
  std::vector<MessageMeta> changed;    // ascending UID: new or changed after `since` (still present)
  std::vector<uint32_t> all_uids;      // only when !complete
};

// One message to append (APPEND, COPY, MOVE, LMTP delivery).
struct AppendRequest {
  std::string_view raw;            // the message as stored; must outlive the call
  int64_t internal_date = 0;       // seconds since the epoch
  int16_t tz_offset_minutes = 0;   // of the internal date ("+0200" = 120)
  uint8_t flags = 0;               // kFlag* bits
  std::vector<std::string> keywords;
};

struct AppendResult {
  MailboxId mailbox{};
  uint32_t uidvalidity = 0;
  std::vector<uint32_t> uids;      // one per request, ascending
  uint64_t modseq = 0;
  bool cached = true;              // every header cache entry was written
};

// A mailbox opened by one or more sessions (shared; closed when the last handle goes).
class Mailbox : public std::enable_shared_from_this<Mailbox> {
 public:
  // Immutable.
  const std::string& user() const { return user_; }
  MailboxId id() const { return id_; }
  uint32_t uidvalidity() const { return uidvalidity_; }

  // A consistent copy of the whole state (SELECT).
  Result<StateSnapshot> snapshot() const;
  // Messages with modseq > since and expunges after since.
  Result<MailboxChanges> changes_since(uint64_t since) const;

  // Durable blobs, then one state record, then header cache entries (a cache failure is
  // logged and reported in `cached`, never an error: the cache is rebuilt from the spool).
  // All or nothing: on error no UID of the batch is visible. Over the user's quota (checked
  // before any blob is written): kHubOverQuota and nothing written.
  Result<AppendResult> append(std::span<const AppendRequest> messages, QuotaCheck quota = QuotaCheck::kEnforce);
  // New absolute flags/keywords per UID (the caller computes +FLAGS/-FLAGS against its view).
  // UIDs that no longer exist are skipped; returns the new modseq and the UIDs updated.
  struct FlagsResult {
    uint64_t modseq = 0;
    std::vector<uint32_t> updated;
  };
  Result<FlagsResult> set_flags(std::span<const FlagUpdate> updates);
  // Removes the messages (one state record), then their blobs and cache entries. UIDs that
  // no longer exist are skipped; returns the UIDs expunged now. A blob that cannot be removed
  // is remembered and tried again by the next expunge of this mailbox (in memory only).
  Result<std::vector<uint32_t>> expunge(std::span<const uint32_t> uids);

  // Blocking (thread pool only): the message's bytes from the spool (checksum verified).
  // kHubNoSuchMessage when it was expunged meanwhile.
  Result<std::string> read_message(uint32_t uid) const;
  // Loop-safe: the header cache entry; nullopt when missing (the caller falls back to
  // read_message on the pool and may re-cache with recache()).
  Result<std::optional<index::CachedMessage>> cached(uint32_t uid) const;
  // Blocking: summarizes `raw` and writes the cache entry (repairs a missing/corrupt entry).
  // Returns the entry, so the caller need not summarize the message again. Errors only when
  // `raw` cannot be summarized; a failed cache write is logged (the next read rebuilds it).
  Result<index::CachedMessage> recache(uint32_t uid, std::string_view raw, int64_t internal_date) const;

  // \Recent (RFC 3501 2.3.2): returns the UID range (previous claim, up_to] (first, last) and
  // records the claim, so only the first session to see a message gets it as \Recent. In
  // memory only: after a restart every message is recent once more.
  std::pair<uint32_t, uint32_t> claim_recent(uint32_t up_to);

  // Loop-safe. `wake` runs on the writer's thread after each committed change; it must only
  // post to its loop. The watch ends when the returned handle is destroyed.
  class Watch;
  std::unique_ptr<Watch> watch(std::function<void()> wake);

  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;
  ~Mailbox();

 private:
  friend class MailboxHub;
  struct Watcher {
    uint64_t id;
    std::function<void()> wake;
  };
  Mailbox(MailboxHub& hub, std::shared_ptr<UserEntry> user_entry, std::string user, MailboxId id,
          MailboxState state);
  void notify();
  Result<void> check_alive() const;  // under the user lock
  // The locked part of append(): quota, blobs, state record.
  Result<void> write_locked(std::span<const AppendRequest> messages, std::span<const index::MessageSummary> summaries,
                            QuotaCheck quota, AppendResult& out);
  index::CacheKey cache_key(uint32_t uid) const { return {user_, to_u64(id_), uidvalidity_, uid}; }

  MailboxHub& hub_;
  std::shared_ptr<UserEntry> entry_;  // its mutex guards state_
  const std::string user_;
  const MailboxId id_;
  const uint32_t uidvalidity_;
  MailboxState state_;
  bool removed_ = false;  // DELETEd while open (guarded by the user lock)
  std::vector<uint32_t> orphans_;  // expunged UIDs whose blob removal failed (user lock)
  mutable std::mutex watch_mu_;
  std::vector<Watcher> watchers_;
  uint64_t next_watch_ = 1;
};

class Mailbox::Watch {
 public:
  Watch(std::shared_ptr<Mailbox> box, uint64_t id) : box_(std::move(box)), id_(id) {}
  ~Watch();
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;

 private:
  std::shared_ptr<Mailbox> box_;
  uint64_t id_;
};

// Steps of an append, for fault injection in tests.
enum class AppendStep { kSummarize, kOpenInbox, kStoreBlob, kAppendState, kCacheHeaders };

struct HubOptions {
  Fsync fsync = Fsync::kOn;
  // Tests: return an error to make that step fail.
  std::function<Result<void>(AppendStep)> fault;
  // Tests: runs when a DELETE has unlisted a mailbox, before its files are removed.
  std::function<void(std::string_view user)> removing_mailbox = {};
  // Tests: return an error to make the removal of an expunged message's blob fail.
  std::function<Result<void>(uint32_t uid)> remove_blob_fault = {};
  // A user's quota limits; empty = nobody has one. Called from event loops too, so it must
  // not block (main uses quota_of() over the immutable config).
  std::function<QuotaLimits(std::string_view user)> quota = {};
};

class MailboxHub {
 public:
  // `cache` may be null. Both must outlive the hub.
  MailboxHub(const Spool& spool, index::HeaderCache* cache, HubOptions options = {});

  // Opens (and shares) a mailbox. INBOX is created on first use; other names must exist.
  Result<std::shared_ptr<Mailbox>> open(std::string_view user, std::string_view name);

  // The user's mailboxes (INBOX always listed: created if missing), sorted by name.
  Result<std::vector<MailboxInfo>> list(std::string_view user);
  Result<std::vector<std::string>> subscriptions(std::string_view user);
  Result<MailboxInfo> create(std::string_view user, std::string_view name);
  // DELETE: not INBOX; a mailbox with inferiors is removed but its inferiors stay (RFC 3501
  // 6.3.4 \Noselect is not kept: the name simply disappears). Open handles keep working on
  // their in-memory state until closed; their writes fail with kHubNoSuchMailbox and their
  // message reads with kHubNoSuchMessage. The files go after the user's lock is released.
  Result<void> remove(std::string_view user, std::string_view name);
  // RENAME with inferiors; INBOX moves its messages to `to` and a fresh INBOX is created.
  Result<void> rename(std::string_view user, std::string_view from, std::string_view to);
  Result<void> subscribe(std::string_view user, std::string_view name, bool on);
  Result<MailboxStatus> status(std::string_view user, std::string_view name);

  // LMTP: appends one message to INBOX (created on first delivery).
  Result<AppendResult> deliver(std::string_view user, const AppendRequest& message);

  // Loop-safe: the user's limits (unlimited without HubOptions::quota).
  QuotaLimits quota_limits(std::string_view user) const;
  // Whether `messages` messages of `bytes` bytes would fit in the user's quota now (LMTP RCPT);
  // kHubOverQuota if not. The usage may have to be computed: blocking (pool only).
  Result<void> check_quota(std::string_view user, uint64_t bytes, uint64_t messages);
  // The user's usage (computed if need be; blocking); nullopt for a user without limits, whose
  // usage is never counted.
  Result<std::optional<QuotaUsage>> quota_usage(std::string_view user);

  // Mailboxes with a \Recent claim (kept until the mailbox is deleted or the store restarts).
  size_t recent_claims();

  const Spool& spool() const { return spool_; }
  index::HeaderCache* cache() const { return cache_; }

 private:
  friend class Mailbox;
  std::shared_ptr<UserEntry> user_entry(std::string_view user);
  Result<std::shared_ptr<Mailbox>> open_locked(const std::shared_ptr<UserEntry>& e, std::string_view user,
                                               std::string_view name);
  Result<void> fault(AppendStep step) const { return options_.fault ? options_.fault(step) : Result<void>(); }
  static std::string recent_key(std::string_view user, MailboxId id);
  uint32_t& recent_floor(std::string_view user, MailboxId id);  // under recent_mu_
  // Quota accounting (mailbox_hub.cc); all under the user's lock.
  Result<QuotaUsage> usage_locked(const UserEntry& e, std::string_view user);
  Result<void> admit_locked(const UserEntry& e, std::string_view user, uint64_t bytes, uint64_t messages);
  bool usage_known(std::string_view user);
  void account(std::string_view user, const QuotaUsage& delta, bool add);
  void uncharge_deleted(std::string_view user, const MailboxInfo& info, const Mailbox* open);

  const Spool& spool_;
  index::HeaderCache* cache_;
  HubOptions options_;
  std::mutex users_mu_;
  std::unordered_map<std::string, std::weak_ptr<UserEntry>> users_;
  size_t sweep_at_ = 1024;  // drop expired user entries when the map grows past this
  // \Recent claims per mailbox ("user\0id"), in memory only: after a restart all is recent once.
  std::mutex recent_mu_;
  std::unordered_map<std::string, uint32_t> recent_floor_;
  // Usage of the users with a quota whose usage is known (see Quotas above). The map is
  // guarded by usage_mu_; a user's entry changes only under that user's lock as well, so it
  // always matches the user's mailbox states.
  std::mutex usage_mu_;
  std::unordered_map<std::string, QuotaUsage> usage_;
};

}  // namespace basalt::store
