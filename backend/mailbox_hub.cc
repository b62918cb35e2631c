#include "backend/mailbox_hub.h"

#include <algorithm>

#include "common/log.h"
#include "indexer/message_summary.h"

namespace basalt::store {

struct UserEntry {
  std::mutex mu;  // the user's MailboxList and the state of all the user's open mailboxes
  std::unordered_map<uint64_t, std::weak_ptr<Mailbox>> open;
};

namespace {

Error hub_error(HubErrc code, std::string message) { return make_error(std::move(message), code); }

Error io_error(std::string_view what, std::string_view user, const Error& e) {
  logger("store")->error("{} failed user={}: {}", what, log_safe(user), e.message);
  return hub_error(kHubIo, std::string(what) + ": " + e.message);
}

// A failed state write: a batch over the record limit is the client's (NO [LIMIT], nothing
// written), anything else the disk's.
Error state_error(std::string_view what, std::string_view user, const Error& e) {
  if (e.code == kStateRecordTooLarge) {
    return hub_error(kHubLimit, "too many messages or keywords in one command (" + e.message + ")");
  }
  return io_error(what, user, e);
}

bool is_inbox(std::string_view name) { return MailboxList::canonical_name(name) == MailboxList::kInbox; }

Result<MailboxList> open_list(const Spool& spool, std::string_view user, Fsync fsync) {
  auto dir = spool.user_dir(user);
  if (!dir) return hub_error(kHubInvalidName, dir.error().message);
  auto list = MailboxList::open(*dir, MailboxListOptions{fsync, {}});
  if (!list) return io_error("read mailbox list", user, list.error());
  return list;
}

// The directory and an empty state for a listed mailbox that has none yet (new, or a crash
// between the list entry and the state: the CREATE order, repaired here).
Result<MailboxState> open_state(const Spool& spool, std::string_view user, const MailboxInfo& info, Fsync fsync) {
  auto dir = spool.create_mailbox_dir(user, info.id);
  if (!dir) return io_error("create mailbox directory", user, dir.error());
  StateOptions options;
  options.fsync = fsync;
  auto state = MailboxState::exists(*dir) ? MailboxState::open(*dir, options)
                                          : MailboxState::create(*dir, info.uidvalidity, options);
  if (!state) return io_error("open mailbox state", user, state.error());
  return state;
}

Result<QuotaUsage> usage_of(const MailboxState& state) {
  QuotaUsage u{0, state.messages().size()};
  for (const MessageMeta& m : state.messages()) u.bytes += m.size;
  return u;
}

// The usage of a mailbox nobody has open: its state log replayed (read only). A listed mailbox
// without state is empty (see open_state).
Result<QuotaUsage> stored_usage(const Spool& spool, std::string_view user, const MailboxInfo& info, Fsync fsync) {
  auto dir = spool.mailbox_dir(user, info.id);
  if (!dir) return io_error("quota: mailbox directory", user, dir.error());
  if (!MailboxState::exists(*dir)) return QuotaUsage{};
  StateOptions options;
  options.fsync = fsync;
  auto state = MailboxState::open(*dir, options);
  if (!state) return io_error("quota: read mailbox state", user, state.error());
  return usage_of(*state);
}

}  // namespace

// ---------------------------------------------------------------------------------- Mailbox

Mailbox::Mailbox(MailboxHub& hub, std::shared_ptr<UserEntry> user_entry, std::string user, MailboxId id,
                 MailboxState state)
    : hub_(hub),
      entry_(std::move(user_entry)),
      user_(std::move(user)),
      id_(id),
      uidvalidity_(state.uidvalidity()),
      state_(std::move(state)) {}

Mailbox::~Mailbox() = default;

Result<void> Mailbox::check_alive() const {
  if (removed_) return hub_error(kHubNoSuchMailbox, "the mailbox has been deleted");
  return {};
}

Result<StateSnapshot> Mailbox::snapshot() const {
  std::lock_guard lock(entry_->mu);
  return state_.snapshot();
}

Result<MailboxChanges> Mailbox::changes_since(uint64_t since) const {
  std::lock_guard lock(entry_->mu);
  MailboxChanges out;
  out.highest_modseq = state_.highest_modseq();
  out.uidnext = state_.uidnext();
  out.complete = since >= state_.expunge_floor();
  if (out.complete) {
    out.expunged = state_.expunged_since(since);
  } else {
    out.all_uids.reserve(state_.messages().size());
    for (const MessageMeta& m : state_.messages()) out.all_uids.push_back(m.uid);
  }
  for (const MessageMeta& m : state_.messages()) {
    if (m.modseq > since) out.changed.push_back(m);
  }
  return out;
}

Result<AppendResult> Mailbox::append(std::span<const AppendRequest> messages, QuotaCheck quota) {
  AppendResult out;
  out.mailbox = id_;
  out.uidvalidity = uidvalidity_;
  if (messages.empty()) return out;
  // Parsing is CPU work: done before taking the user's lock.
  std::vector<index::MessageSummary> summaries;
  summaries.reserve(messages.size());
  for (const AppendRequest& m : messages) {
    auto summary = index::summarize_message(m.raw);
    if (auto f = hub_.fault(AppendStep::kSummarize); !f) return f.error();
    if (!summary) return hub_error(kHubIo, "cannot parse the message: " + summary.error().message);
    if (summary->size > UINT32_MAX) return hub_error(kHubLimit, "message too large for RFC822.SIZE");
    summaries.push_back(std::move(*summary));
  }
  {
    std::lock_guard lock(entry_->mu);
    if (auto written = write_locked(messages, summaries, quota, out); !written) return written.error();
  }
  // Committed from here on; the cache is derived data (rebuilt from the spool if need be).
  Result<void> cached = hub_.fault(AppendStep::kCacheHeaders);
  if (cached && hub_.cache_) {
    std::vector<index::CacheEntry> entries;
    for (size_t i = 0; i < messages.size(); ++i) {
      entries.push_back({cache_key(out.uids[i]), &summaries[i],
                         index::InternalDate{messages[i].internal_date, messages[i].tz_offset_minutes}});
    }
    cached = hub_.cache_->put_batch(entries);
  }
  out.cached = cached.ok() && hub_.cache_ != nullptr;
  if (!cached) logger("store")->warn("header cache put failed user={}: {}", log_safe(user_), cached.error().message);
  notify();
  return out;
}

Result<void> Mailbox::write_locked(std::span<const AppendRequest> messages,
                                   std::span<const index::MessageSummary> summaries, QuotaCheck quota,
                                   AppendResult& out) {
  if (auto alive = check_alive(); !alive) return alive.error();
  const uint32_t first = state_.uidnext();
  if (first == 0 || uint64_t{first} + messages.size() >= UINT32_MAX) {
    return hub_error(kHubLimit, "the mailbox's UIDs are exhausted");
  }
  QuotaUsage added{0, messages.size()};
  for (const index::MessageSummary& s : summaries) added.bytes += s.size;
  if (quota == QuotaCheck::kEnforce) {
    if (auto admitted = hub_.admit_locked(*entry_, user_, added.bytes, added.messages); !admitted) {
      return admitted.error();
    }
  }
  std::vector<NewMessage> batch;
  // On failure, the blobs of this batch written so far (UIDs >= UIDNEXT, seen by no one) go
  // again: spool enumerations (index rebuilds) must not find messages the state never had.
  auto fail = [&](Error e) {
    for (uint32_t uid : out.uids) (void)hub_.spool_.remove_message(user_, id_, uidvalidity_, uid);
    out.uids.clear();
    return e;
  };
  for (size_t i = 0; i < messages.size(); ++i) {
    const AppendRequest& m = messages[i];
    const auto uid = static_cast<uint32_t>(first + i);
    if (auto f = hub_.fault(AppendStep::kStoreBlob); !f) return fail(f.error());
    if (auto stored = hub_.spool_.store_message(user_, id_, uidvalidity_, uid, m.raw); !stored) {
      return fail(io_error("store blob", user_, stored.error()));
    }
    batch.push_back({uid, m.internal_date, static_cast<uint32_t>(summaries[i].size), m.flags, m.keywords});
    out.uids.push_back(uid);
  }
  if (auto f = hub_.fault(AppendStep::kAppendState); !f) return fail(f.error());
  auto modseq = state_.append(batch);
  if (!modseq) return fail(state_error("append state", user_, modseq.error()));
  out.modseq = *modseq;
  hub_.account(user_, added, true);
  return {};
}

Result<Mailbox::FlagsResult> Mailbox::set_flags(std::span<const FlagUpdate> updates) {
  FlagsResult out;
  {
    std::lock_guard lock(entry_->mu);
    if (auto alive = check_alive(); !alive) return alive.error();
    std::vector<FlagUpdate> present;
    for (const FlagUpdate& u : updates) {
      if (state_.find(u.uid)) present.push_back(u);
    }
    if (present.empty()) return out;
    auto modseq = state_.set_flags(present);
    if (!modseq) return state_error("store flags", user_, modseq.error());
    out.modseq = *modseq;
    for (const FlagUpdate& u : present) out.updated.push_back(u.uid);
  }
  notify();
  return out;
}

Result<std::vector<uint32_t>> Mailbox::expunge(std::span<const uint32_t> uids) {
  std::vector<uint32_t> gone;
  std::vector<uint32_t> retry;  // blobs an earlier expunge could not remove
  {
    std::lock_guard lock(entry_->mu);
    if (auto alive = check_alive(); !alive) return alive.error();
    for (uint32_t uid : uids) {
      if (state_.find(uid)) gone.push_back(uid);
    }
    std::sort(gone.begin(), gone.end());
    gone.erase(std::unique(gone.begin(), gone.end()), gone.end());
    if (gone.empty()) return gone;
    QuotaUsage freed{0, gone.size()};
    for (uint32_t uid : gone) freed.bytes += state_.find(uid)->size;
    if (auto r = state_.expunge(gone); !r) return state_error("expunge", user_, r.error());
    hub_.account(user_, freed, false);
    retry.swap(orphans_);
  }
  notify();
  // The state no longer lists them: blobs and cache entries are garbage now. A blob that
  // cannot go is kept for the next expunge to try again; the expunge itself has happened.
  std::vector<uint32_t> failed;
  auto remove_blob = [&](uint32_t uid) {
    Result<void> r = hub_.options_.remove_blob_fault ? hub_.options_.remove_blob_fault(uid) : Result<void>();
    if (r) r = hub_.spool_.remove_message(user_, id_, uidvalidity_, uid);
    if (r) return;
    logger("store")->warn("remove blob user={} uid={} (retried at the next expunge): {}", log_safe(user_), uid,
                          r.error().message);
    failed.push_back(uid);
  };
  for (uint32_t uid : retry) remove_blob(uid);
  for (uint32_t uid : gone) {
    remove_blob(uid);
    if (hub_.cache_) (void)hub_.cache_->remove(cache_key(uid));
  }
  if (!failed.empty()) {
    std::lock_guard lock(entry_->mu);
    orphans_.insert(orphans_.end(), failed.begin(), failed.end());
  }
  return gone;
}

Result<std::string> Mailbox::read_message(uint32_t uid) const {
  {
    std::lock_guard lock(entry_->mu);
    if (!state_.find(uid)) return hub_error(kHubNoSuchMessage, "message " + std::to_string(uid) + " was expunged");
  }
  auto raw = hub_.spool_.read_message(user_, id_, uidvalidity_, uid);
  if (raw) return raw;
  std::lock_guard lock(entry_->mu);
  // A DELETE removes the blobs but leaves open handles their state: the message is gone, not broken.
  if (removed_ || !state_.find(uid)) {
    return hub_error(kHubNoSuchMessage, "message " + std::to_string(uid) + " was expunged");
  }
  return hub_error(kHubIo, raw.error().message);  // the spool logged what and where
}

Result<std::optional<index::CachedMessage>> Mailbox::cached(uint32_t uid) const {
  if (!hub_.cache_) return std::optional<index::CachedMessage>();
  return hub_.cache_->get(cache_key(uid));
}

Result<index::CachedMessage> Mailbox::recache(uint32_t uid, std::string_view raw, int64_t internal_date) const {
  auto summary = index::summarize_message(raw);
  if (!summary) return make_error("cannot parse the message: " + summary.error().message);
  index::CachedMessage entry{std::move(*summary), index::InternalDate{internal_date, 0}};
  if (!hub_.cache_) return entry;
  if (auto put = hub_.cache_->put(cache_key(uid), entry.summary, entry.internal_date); !put) {
    logger("store")->warn("recache user={} uid={} failed: {}", log_safe(user_), uid, put.error().message);
    return entry;
  }
  // An EXPUNGE or DELETE may have removed the entry while it was being rebuilt (a reader's
  // recache races the writer's cleanup): take it out again, or it would never go.
  bool gone = false;
  {
    std::lock_guard lock(entry_->mu);
    gone = removed_ || !state_.find(uid);
  }
  if (gone) (void)hub_.cache_->remove(cache_key(uid));
  return entry;
}

std::pair<uint32_t, uint32_t> Mailbox::claim_recent(uint32_t up_to) {
  std::lock_guard lock(hub_.recent_mu_);
  uint32_t& floor = hub_.recent_floor(user_, id_);
  uint32_t from = floor;
  floor = std::max(floor, up_to);
  return {from + 1, up_to};
}

std::unique_ptr<Mailbox::Watch> Mailbox::watch(std::function<void()> wake) {
  std::lock_guard lock(watch_mu_);
  uint64_t id = next_watch_++;
  watchers_.push_back({id, std::move(wake)});
  return std::make_unique<Watch>(shared_from_this(), id);
}

void Mailbox::notify() {
  std::lock_guard lock(watch_mu_);
  for (const Watcher& w : watchers_) w.wake();
}

Mailbox::Watch::~Watch() {
  std::lock_guard lock(box_->watch_mu_);
  auto& ws = box_->watchers_;
  ws.erase(std::remove_if(ws.begin(), ws.end(), [&](const Watcher& w) { return w.id == id_; }), ws.end());
}

// ------------------------------------------------------------------------------- MailboxHub

MailboxHub::MailboxHub(const Spool& spool, index::HeaderCache* cache, HubOptions options)
    : spool_(spool), cache_(cache), options_(std::move(options)) {}

std::shared_ptr<UserEntry> MailboxHub::user_entry(std::string_view user) {
  std::lock_guard lock(users_mu_);
  if (users_.size() >= sweep_at_) {
    std::erase_if(users_, [](const auto& kv) { return kv.second.expired(); });
    sweep_at_ = std::max<size_t>(1024, users_.size() * 2);
  }
  std::weak_ptr<UserEntry>& slot = users_[std::string(user)];
  auto entry = slot.lock();
  if (!entry) {
    entry = std::make_shared<UserEntry>();
    slot = entry;
  }
  return entry;
}

std::string MailboxHub::recent_key(std::string_view user, MailboxId id) {
  std::string key(user);
  key.push_back('\0');
  key += std::to_string(to_u64(id));
  return key;
}

uint32_t& MailboxHub::recent_floor(std::string_view user, MailboxId id) { return recent_floor_[recent_key(user, id)]; }

size_t MailboxHub::recent_claims() {
  std::lock_guard lock(recent_mu_);
  return recent_floor_.size();
}

Result<std::shared_ptr<Mailbox>> MailboxHub::open_locked(const std::shared_ptr<UserEntry>& e, std::string_view user,
                                                         std::string_view name) {
  auto list = open_list(spool_, user, options_.fsync);
  if (!list) return list.error();
  std::optional<MailboxInfo> info = list->find(name);
  if (!info && is_inbox(name)) {
    auto created = list->create(MailboxList::kInbox);
    if (!created) return io_error("create INBOX", user, created.error());
    info = *created;
  }
  if (!info) return hub_error(kHubNoSuchMailbox, "no such mailbox");
  if (auto open = e->open[to_u64(info->id)].lock()) return open;
  auto state = open_state(spool_, user, *info, options_.fsync);
  if (!state) return state.error();
  std::shared_ptr<Mailbox> box(new Mailbox(*this, e, std::string(user), info->id, std::move(*state)));
  e->open[to_u64(info->id)] = box;
  std::erase_if(e->open, [](const auto& kv) { return kv.second.expired(); });
  return box;
}

Result<std::shared_ptr<Mailbox>> MailboxHub::open(std::string_view user, std::string_view name) {
  auto e = user_entry(user);
  std::lock_guard lock(e->mu);
  return open_locked(e, user, name);
}

Result<std::vector<MailboxInfo>> MailboxHub::list(std::string_view user) {
  auto e = user_entry(user);
  std::lock_guard lock(e->mu);
  auto list = open_list(spool_, user, options_.fsync);
  if (!list) return list.error();
  if (!list->find(MailboxList::kInbox)) {
    if (auto created = list->create(MailboxList::kInbox); !created) return io_error("create INBOX", user, created.error());
  }
  return list->list();
}

Result<std::vector<std::string>> MailboxHub::subscriptions(std::string_view user) {
  auto e = user_entry(user);
  std::lock_guard lock(e->mu);
  auto list = open_list(spool_, user, options_.fsync);
  if (!list) return list.error();
  return list->subscriptions();
}

Result<MailboxInfo> MailboxHub::create(std::string_view user, std::string_view name) {
  auto e = user_entry(user);
  std::lock_guard lock(e->mu);
  auto list = open_list(spool_, user, options_.fsync);
  if (!list) return list.error();
  if (list->find(name) || is_inbox(name)) return hub_error(kHubExists, "mailbox already exists");
  auto info = list->create(name);
  if (!info) return hub_error(kHubInvalidName, info.error().message);
  if (auto state = open_state(spool_, user, *info, options_.fsync); !state) return state.error();
  return info;
}

Result<void> MailboxHub::remove(std::string_view user, std::string_view name) {
  if (is_inbox(name)) return hub_error(kHubNotAllowed, "INBOX cannot be deleted");
  auto e = user_entry(user);
  Result<MailboxInfo> info = hub_error(kHubNoSuchMailbox, "no such mailbox");
  {
    std::lock_guard lock(e->mu);
    auto list = open_list(spool_, user, options_.fsync);
    if (!list) return list.error();
    if (!list->find(name)) return hub_error(kHubNoSuchMailbox, "no such mailbox");
    info = list->remove(name);
    if (!info) return io_error("delete mailbox", user, info.error());
    auto open = e->open[to_u64(info->id)].lock();
    if (open) open->removed_ = true;
    e->open.erase(to_u64(info->id));
    uncharge_deleted(user, *info, open.get());
  }
  // Unlisted now, and open handles refuse writes: nothing can reach the mailbox's files, so
  // they go without the user's lock (removing a big mailbox from NFS takes long, and every
  // pool thread waiting for this user's lock meanwhile would be lost to all other users).
  // A failure leaves garbage that purge_user() sweeps, never a mailbox. Ids are never reused.
  {
    std::lock_guard lock(recent_mu_);  // ids are never reused: the claim can go
    recent_floor_.erase(recent_key(user, info->id));
  }
  if (options_.removing_mailbox) options_.removing_mailbox(user);
  if (auto r = spool_.remove_mailbox(user, info->id); !r) io_error("remove mailbox directory", user, r.error());
  if (cache_) (void)cache_->remove_mailbox(user, to_u64(info->id), info->uidvalidity);
  return {};
}

Result<void> MailboxHub::rename(std::string_view user, std::string_view from, std::string_view to) {
  auto e = user_entry(user);
  std::lock_guard lock(e->mu);
  auto list = open_list(spool_, user, options_.fsync);
  if (!list) return list.error();
  if (!list->find(from) && !is_inbox(from)) return hub_error(kHubNoSuchMailbox, "no such mailbox");
  if (list->find(to) || is_inbox(to)) return hub_error(kHubExists, "target mailbox already exists");
  if (is_inbox(from) && !list->find(MailboxList::kInbox)) {
    if (auto created = list->create(MailboxList::kInbox); !created) return io_error("create INBOX", user, created.error());
  }
  auto renamed = list->rename(from, to, kHierarchyDelimiter);
  if (!renamed) return hub_error(kHubInvalidName, renamed.error().message);
  // Open mailboxes are keyed by id, which a rename keeps; only a new INBOX needs its state.
  if (renamed->new_inbox) {
    if (auto state = open_state(spool_, user, *renamed->new_inbox, options_.fsync); !state) return state.error();
  }
  return {};
}

Result<void> MailboxHub::subscribe(std::string_view user, std::string_view name, bool on) {
  auto e = user_entry(user);
  std::lock_guard lock(e->mu);
  auto list = open_list(spool_, user, options_.fsync);
  if (!list) return list.error();
  auto r = on ? list->subscribe(MailboxList::canonical_name(name)) : list->unsubscribe(MailboxList::canonical_name(name));
  if (!r) return hub_error(kHubInvalidName, r.error().message);
  return {};
}

Result<MailboxStatus> MailboxHub::status(std::string_view user, std::string_view name) {
  auto box = open(user, name);
  if (!box) return box.error();
  Mailbox& b = **box;
  uint32_t floor = 0;
  {
    std::lock_guard lock(recent_mu_);  // a look only: STATUS of every mailbox must not grow the map
    auto it = recent_floor_.find(recent_key(user, b.id()));
    if (it != recent_floor_.end()) floor = it->second;
  }
  std::lock_guard lock(b.entry_->mu);
  MailboxStatus st;
  st.uidnext = b.state_.uidnext();
  st.uidvalidity = b.uidvalidity_;
  st.highest_modseq = b.state_.highest_modseq();
  for (const MessageMeta& m : b.state_.messages()) {
    ++st.messages;
    if (m.uid > floor) ++st.recent;
    if (!(m.flags & kFlagSeen)) ++st.unseen;
  }
  return st;
}

Result<AppendResult> MailboxHub::deliver(std::string_view user, const AppendRequest& message) {
  if (auto f = fault(AppendStep::kOpenInbox); !f) return f.error();
  auto inbox = open(user, MailboxList::kInbox);
  if (!inbox) return inbox.error();
  return (*inbox)->append(std::span<const AppendRequest>(&message, 1));
}

// ----------------------------------------------------------------------------------- quotas

QuotaLimits MailboxHub::quota_limits(std::string_view user) const {
  return options_.quota ? options_.quota(user) : QuotaLimits{};
}

Result<void> MailboxHub::check_quota(std::string_view user, uint64_t bytes, uint64_t messages) {
  if (quota_limits(user).unlimited()) return {};
  auto e = user_entry(user);
  std::lock_guard lock(e->mu);
  return admit_locked(*e, user, bytes, messages);
}

Result<std::optional<QuotaUsage>> MailboxHub::quota_usage(std::string_view user) {
  if (quota_limits(user).unlimited()) return std::optional<QuotaUsage>();
  auto e = user_entry(user);
  std::lock_guard lock(e->mu);
  auto usage = usage_locked(*e, user);
  if (!usage) return usage.error();
  return std::optional<QuotaUsage>(*usage);
}

Result<void> MailboxHub::admit_locked(const UserEntry& e, std::string_view user, uint64_t bytes, uint64_t messages) {
  const QuotaLimits limits = quota_limits(user);
  if (limits.unlimited()) return {};
  auto usage = usage_locked(e, user);
  if (!usage) return usage.error();
  if (!exceeds(limits, *usage, bytes, messages)) return {};
  logger("store")->info("over quota user={} usage_bytes={} usage_messages={} limit_bytes={} limit_messages={} "
                        "adding_bytes={} adding_messages={}",
                        log_safe(user), usage->bytes, usage->messages, limits.bytes, limits.messages, bytes, messages);
  return hub_error(kHubOverQuota, "quota exceeded");
}

Result<QuotaUsage> MailboxHub::usage_locked(const UserEntry& e, std::string_view user) {
  {
    std::lock_guard lock(usage_mu_);
    if (auto it = usage_.find(std::string(user)); it != usage_.end()) return it->second;
  }
  auto list = open_list(spool_, user, options_.fsync);
  if (!list) return list.error();
  QuotaUsage total;
  for (const MailboxInfo& info : list->list()) {
    // An open mailbox's state is the current one (and the same as its log, under this lock).
    auto open = e.open.find(to_u64(info.id));
    std::shared_ptr<Mailbox> box = open == e.open.end() ? nullptr : open->second.lock();
    auto usage = box ? usage_of(box->state_) : stored_usage(spool_, user, info, options_.fsync);
    if (!usage) return usage.error();
    total.bytes += usage->bytes;
    total.messages += usage->messages;
  }
  std::lock_guard lock(usage_mu_);
  usage_[std::string(user)] = total;
  return total;
}

bool MailboxHub::usage_known(std::string_view user) {
  std::lock_guard lock(usage_mu_);
  return usage_.count(std::string(user)) > 0;
}

void MailboxHub::account(std::string_view user, const QuotaUsage& delta, bool add) {
  if (quota_limits(user).unlimited()) return;  // never counted: no shared lock for them
  std::lock_guard lock(usage_mu_);
  auto it = usage_.find(std::string(user));
  if (it == usage_.end()) return;  // not computed yet: the first need reads the states
  QuotaUsage& u = it->second;
  u.bytes = add ? u.bytes + delta.bytes : u.bytes - std::min(u.bytes, delta.bytes);
  u.messages = add ? u.messages + delta.messages : u.messages - std::min(u.messages, delta.messages);
}

// DELETE: the mailbox's messages no longer count. Its state is read before its files go (they
// go after the user's lock is released); if it cannot be read, the usage is computed afresh
// at the next need instead.
void MailboxHub::uncharge_deleted(std::string_view user, const MailboxInfo& info, const Mailbox* open) {
  if (quota_limits(user).unlimited() || !usage_known(user)) return;
  auto freed = open ? usage_of(open->state_) : stored_usage(spool_, user, info, options_.fsync);
  if (freed) return account(user, *freed, false);
  std::lock_guard lock(usage_mu_);
  usage_.erase(std::string(user));
}

}  // namespace basalt::store
