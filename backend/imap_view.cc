#include "backend/imap_view.h"

#include <algorithm>

#include "backend/imap_fetch.h"

namespace basalt::store {

namespace {

bool in_range(uint32_t uid, std::pair<uint32_t, uint32_t> range) { return uid >= range.first && uid <= range.second; }

}  // namespace

void MailboxView::load(const StateSnapshot& snapshot, std::pair<uint32_t, uint32_t> recent) {
  clear();
  messages_.reserve(snapshot.messages.size());
  for (const MessageMeta& m : snapshot.messages) {
    messages_.push_back({m, in_range(m.uid, recent), false});
    learn_keywords(m.keywords);
  }
  keywords_changed_ = false;  // SELECT sends the FLAGS response itself
  modseq_ = snapshot.highest_modseq;
  uidvalidity_ = snapshot.uidvalidity;
  uidnext_ = snapshot.uidnext;
}

std::optional<size_t> MailboxView::index_of(uint32_t uid) const {
  auto it = std::lower_bound(messages_.begin(), messages_.end(), uid,
                             [](const ViewMessage& m, uint32_t u) { return m.meta.uid < u; });
  if (it == messages_.end() || it->meta.uid != uid) return std::nullopt;
  return static_cast<size_t>(it - messages_.begin());
}

uint32_t MailboxView::recent_count() const {
  return static_cast<uint32_t>(std::count_if(messages_.begin(), messages_.end(),
                                             [](const ViewMessage& m) { return m.recent; }));
}

std::optional<size_t> MailboxView::first_unseen() const {
  for (size_t i = 0; i < messages_.size(); ++i) {
    if (!(messages_[i].meta.flags & kFlagSeen)) return i;
  }
  return std::nullopt;
}

void MailboxView::learn_keywords(const std::vector<std::string>& keywords) {
  for (const std::string& k : keywords) {
    auto it = std::lower_bound(keywords_.begin(), keywords_.end(), k);
    if (it != keywords_.end() && *it == k) continue;
    keywords_.insert(it, k);
    keywords_changed_ = true;
  }
}

std::string MailboxView::flags_response(bool read_only) const {
  std::string flags = imap::format_flags(kSystemFlagMask, keywords_, false);
  std::string out = "* FLAGS " + flags + "\r\n";
  if (read_only) return out + "* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n";
  flags.back() = ' ';  // PERMANENTFLAGS adds \* (new keywords may be created)
  return out + "* OK [PERMANENTFLAGS " + flags + "\\*)] Flags permitted.\r\n";
}

std::string MailboxView::keywords_update(bool read_only) {
  if (!keywords_changed_) return {};
  keywords_changed_ = false;
  return flags_response(read_only);
}

void MailboxView::set_flags(uint32_t uid, uint8_t flags, const std::vector<std::string>& keywords) {
  if (auto i = index_of(uid)) {
    messages_[*i].meta.flags = flags;
    messages_[*i].meta.keywords = keywords;
  }
  learn_keywords(keywords);
}

// The UIDs of the view that are gone, from the expunge history or (when the history does not
// reach back far enough) by comparing with every UID the mailbox still has.
std::vector<uint32_t> MailboxView::expunged_uids(const MailboxChanges& changes) const {
  if (changes.complete) return changes.expunged;
  std::vector<uint32_t> gone;
  for (const ViewMessage& m : messages_) {
    if (!std::binary_search(changes.all_uids.begin(), changes.all_uids.end(), m.meta.uid)) gone.push_back(m.meta.uid);
  }
  return gone;
}

void MailboxView::add_new(const MessageMeta& meta, std::pair<uint32_t, uint32_t> recent) {
  messages_.push_back({meta, in_range(meta.uid, recent), false});
  learn_keywords(meta.keywords);
}

// Highest sequence number first, so every number sent is still valid when the client reads it.
void MailboxView::announce_expunges(std::string& out) {
  for (size_t i = messages_.size(); i-- > 0;) {
    if (messages_[i].expunged) out += "* " + std::to_string(i + 1) + " EXPUNGE\r\n";
  }
  std::erase_if(messages_, [](const ViewMessage& m) { return m.expunged; });
  pending_expunges_ = 0;
}

std::string MailboxView::apply(const MailboxChanges& changes, std::pair<uint32_t, uint32_t> recent,
                               bool allow_expunge) {
  for (uint32_t uid : expunged_uids(changes)) {
    auto i = index_of(uid);
    if (!i || messages_[*i].expunged) continue;
    messages_[*i].expunged = true;
    ++pending_expunges_;
  }
  size_t known = messages_.size();
  std::vector<uint32_t> flag_changes;
  for (const MessageMeta& meta : changes.changed) {
    if (messages_.empty() || meta.uid > messages_.back().meta.uid) {
      add_new(meta, recent);
      continue;
    }
    auto i = index_of(meta.uid);
    if (!i || messages_[*i].expunged) continue;
    MessageMeta& mine = messages_[*i].meta;
    if (mine.flags != meta.flags || mine.keywords != meta.keywords) flag_changes.push_back(meta.uid);
    mine = meta;
    learn_keywords(meta.keywords);
  }
  modseq_ = std::max(modseq_, changes.highest_modseq);
  uidnext_ = std::max(uidnext_, changes.uidnext);

  std::string out;
  bool grew = messages_.size() > known;
  if (allow_expunge && pending_expunges_ > 0) announce_expunges(out);
  if (grew) {
    out += "* " + std::to_string(messages_.size()) + " EXISTS\r\n";
    out += "* " + std::to_string(recent_count()) + " RECENT\r\n";
  }
  for (uint32_t uid : flag_changes) {
    auto i = index_of(uid);
    if (!i) continue;
    const ViewMessage& m = messages_[*i];
    out += "* " + std::to_string(*i + 1) + " FETCH (UID " + std::to_string(uid) + " FLAGS " +
           imap::format_flags(m.meta.flags, m.meta.keywords, m.recent) + ")\r\n";
  }
  return out;
}

}  // namespace basalt::store
