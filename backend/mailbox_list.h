// A user's mailboxes and subscriptions: `<user dir>/mailboxes`, one small checksummed file
// rewritten atomically (write_file_atomically) on every change, so a crash leaves the old or
// the new list, never a mix. Format in docs/storage.md.
//
// Each mailbox has a stable id (its spool directory name, never reused, so RENAME moves no
// file) and a UIDVALIDITY drawn from a per-user counter that only grows and is kept at least
// at the current time: a mailbox re-created under an old name always gets a new, larger
// UIDVALIDITY, even if this file was lost.
//
// Names are stored as given (IMAP modified UTF-7; the IMAP layer validates its syntax), except
// that any case of "INBOX" is INBOX. Subscriptions are a separate set of names (RFC 3501:
// subscribing to a name that does not exist is allowed, and DELETE keeps the subscription).
//
// Thread-safety: none inside; the caller serialises all access to one user's list, and one
// process (the store owning the shard) writes it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "backend/durable_file.h"
#include "backend/spool.h"
#include "common/result.h"

namespace basalt::store {

inline constexpr size_t kMaxMailboxNameBytes = 1024;

struct MailboxInfo {
  std::string name;
  MailboxId id{};
  uint32_t uidvalidity = 0;
  bool subscribed = false;

  bool operator==(const MailboxInfo&) const = default;
};

struct RenameResult {
  // (old name, new name) of every entry renamed: the mailbox and its inferiors.
  std::vector<std::pair<std::string, std::string>> renamed;
  // Renaming INBOX moves its messages (the entry keeps its id) and leaves a fresh, empty
  // INBOX (new id, new UIDVALIDITY) in its place, per RFC 3501 6.3.5. The caller creates its
  // spool directory and state.
  std::optional<MailboxInfo> new_inbox;
};

struct MailboxListOptions {
  Fsync fsync = Fsync::kOn;
  // Seconds since the epoch; empty = the system clock. Tests inject a fixed clock.
  std::function<int64_t()> now;
};

class MailboxList {
 public:
  static constexpr std::string_view kInbox = "INBOX";

  // Reads `user_dir`/mailboxes; a missing file is an empty list (a new user). The directory is
  // created on the first change.
  static Result<MailboxList> open(std::string user_dir, MailboxListOptions options = {});

  // "INBOX" for any case of it, else `name` unchanged.
  static std::string canonical_name(std::string_view name);

  std::vector<MailboxInfo> list() const;  // sorted by name
  std::optional<MailboxInfo> find(std::string_view name) const;
  const std::vector<std::string>& subscriptions() const { return d_.subscriptions; }  // sorted
  bool subscribed(std::string_view name) const;
  uint64_t next_id() const { return d_.next_id; }
  uint32_t next_uidvalidity() const { return d_.next_uidvalidity; }

  // A new mailbox with a fresh id and UIDVALIDITY. Error if the name exists or is invalid
  // (empty, > kMaxMailboxNameBytes, NUL, CR or LF).
  Result<MailboxInfo> create(std::string_view name);
  // A new mailbox keeping a UIDVALIDITY from elsewhere (user moves, restores); later
  // UIDVALIDITYs are allocated above it.
  Result<MailboxInfo> create_with_uidvalidity(std::string_view name, uint32_t uidvalidity);
  // Removes the entry and returns it (the caller then removes its spool directory). The
  // subscription is kept, and inferior mailboxes are not touched.
  Result<MailboxInfo> remove(std::string_view name);
  // Renames `from` and, if `delimiter` is not '\0', every `from<delimiter>...` inferior, in one
  // atomic rewrite. Errors: `from` missing, `to` (or an inferior's new name) exists, `to` is
  // INBOX or inside `from`'s own hierarchy. INBOX: see RenameResult. Subscriptions unchanged.
  Result<RenameResult> rename(std::string_view from, std::string_view to, char delimiter);
  Result<void> subscribe(std::string_view name);
  Result<void> unsubscribe(std::string_view name);  // not subscribed: not an error

 private:
  struct Entry {
    std::string name;
    MailboxId id{};
    uint32_t uidvalidity = 0;
  };
  struct Data {
    uint64_t next_id = 1;
    uint32_t next_uidvalidity = 1;
    std::vector<Entry> mailboxes;           // sorted by name
    std::vector<std::string> subscriptions;  // sorted
  };

  MailboxList(std::string user_dir, MailboxListOptions options) : dir_(std::move(user_dir)), options_(std::move(options)) {}
  static Result<Data> decode(std::string_view bytes);
  static std::string encode(const Data& d);
  Result<void> save(Data next);
  Result<Entry> add(Data& d, const std::string& name, uint32_t uidvalidity) const;
  Result<uint32_t> allocate_uidvalidity(Data& d) const;
  MailboxInfo info(const Entry& e) const;

  std::string dir_;
  MailboxListOptions options_;
  Data d_;
};

}  // namespace basalt::store
