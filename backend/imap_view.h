// One IMAP session's view of its selected mailbox (RFC 3501 2.3.1, 7.4.1): the messages it has
// announced, in sequence-number order, with the flags it has reported, and the mod-sequence up
// to which it has seen changes. MailboxChanges from the hub are turned into the untagged
// EXPUNGE / EXISTS / RECENT / FETCH (FLAGS) responses that bring the client up to date.
//
// Expunges may not be announced during FETCH, STORE and SEARCH (RFC 3501 7.4.1): they are kept
// pending, the message keeps its sequence number, and they are announced at the next point
// that allows it. Pure logic, no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "backend/mailbox_hub.h"
#include "backend/mailbox_state.h"

namespace basalt::store {

struct ViewMessage {
  MessageMeta meta;
  bool recent = false;    // \Recent for this session (it claimed the message)
  bool expunged = false;  // expunged, not yet announced
};

class MailboxView {
 public:
  // `recent`: the [first, last] UID range this session claimed as \Recent (Mailbox::claim_recent).
  void load(const StateSnapshot& snapshot, std::pair<uint32_t, uint32_t> recent);
  void clear() { *this = MailboxView{}; }

  size_t size() const { return messages_.size(); }  // the EXISTS count the client knows
  const ViewMessage& at(size_t index) const { return messages_[index]; }  // sequence number index + 1
  std::optional<size_t> index_of(uint32_t uid) const;
  const std::vector<ViewMessage>& messages() const { return messages_; }
  uint64_t modseq() const { return modseq_; }
  uint32_t uidvalidity() const { return uidvalidity_; }
  uint32_t uidnext() const { return uidnext_; }
  uint32_t recent_count() const;
  std::optional<size_t> first_unseen() const;  // index
  // Keywords in use (sorted), for the FLAGS response.
  const std::vector<std::string>& keywords() const { return keywords_; }
  // "* FLAGS (...)" and "* OK [PERMANENTFLAGS (...)]" (SELECT, and when keywords appear).
  std::string flags_response(bool read_only) const;
  // flags_response() when a keyword has appeared since the last call (RFC 3501 7.2.6), else "".
  std::string keywords_update(bool read_only);

  // Records flags this session has just reported itself (STORE, \Seen by FETCH), so a later
  // apply() does not report them again.
  void set_flags(uint32_t uid, uint8_t flags, const std::vector<std::string>& keywords);

  // Applies what changed and returns the untagged responses. `recent` is the range this session
  // claimed for the new messages. Expunges are announced only when `allow_expunge`.
  std::string apply(const MailboxChanges& changes, std::pair<uint32_t, uint32_t> recent, bool allow_expunge);

 private:
  std::vector<uint32_t> expunged_uids(const MailboxChanges& changes) const;
  void announce_expunges(std::string& out);
  void add_new(const MessageMeta& meta, std::pair<uint32_t, uint32_t> recent);
  void learn_keywords(const std::vector<std::string>& keywords);

  std::vector<ViewMessage> messages_;  // ascending UID
  uint64_t modseq_ = 0;
  uint32_t uidvalidity_ = 0;
  uint32_t uidnext_ = 1;
  size_t pending_expunges_ = 0;
  std::vector<std::string> keywords_;  // sorted: every keyword seen in this mailbox
  bool keywords_changed_ = false;
};

}  // namespace basalt::store
