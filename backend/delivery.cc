#include "backend/delivery.h"

#include "backend/mailbox_list.h"
#include "backend/mailbox_state.h"
#include "common/log.h"
#include "indexer/message_summary.h"

namespace basalt::store {
namespace {

struct Inbox {
  MailboxInfo info;
  MailboxState state;
};

// Finds or creates INBOX: list entry, then directory, then state (the CREATE order), so a crash
// in between leaves a listed mailbox without state, which this also repairs.
Result<Inbox> open_inbox(const Spool& spool, std::string_view user, Fsync fsync) {
  auto user_dir = spool.user_dir(user);
  if (!user_dir) return user_dir.error();
  auto list = MailboxList::open(*user_dir, MailboxListOptions{fsync, {}});
  if (!list) return list.error();
  std::optional<MailboxInfo> info = list->find(MailboxList::kInbox);
  if (!info) {
    auto created = list->create(MailboxList::kInbox);
    if (!created) return created.error();
    info = *created;
  }
  auto dir = spool.create_mailbox_dir(user, info->id);
  if (!dir) return dir.error();
  StateOptions options;
  options.fsync = fsync;
  auto state = MailboxState::exists(*dir) ? MailboxState::open(*dir, options)
                                          : MailboxState::create(*dir, info->uidvalidity, options);
  if (!state) return state.error();
  return Inbox{*info, std::move(*state)};
}

}  // namespace

Deliverer::Deliverer(const Spool& spool, index::HeaderCache* cache, DelivererOptions options)
    : spool_(spool), cache_(cache), options_(std::move(options)) {}

std::shared_ptr<std::mutex> Deliverer::user_mutex(std::string_view user) {
  std::lock_guard lock(map_mu_);
  auto& mu = user_mu_[std::string(user)];
  if (!mu) mu = std::make_shared<std::mutex>();
  return mu;
}

Result<void> Deliverer::fault(DeliveryStep step) const {
  if (options_.fault) return options_.fault(step);
  return {};
}

Result<Delivered> Deliverer::deliver(std::string_view user, std::string_view message, int64_t internal_date) {
  auto summary = index::summarize_message(message);
  if (auto f = fault(DeliveryStep::kSummarize); !f) return f.error();
  if (!summary) return make_error("summarize: " + summary.error().message);
  if (summary->size > UINT32_MAX) return make_error("message too large for RFC822.SIZE");

  std::shared_ptr<std::mutex> mu = user_mutex(user);
  std::lock_guard lock(*mu);
  if (auto f = fault(DeliveryStep::kOpenInbox); !f) return f.error();
  auto inbox = open_inbox(spool_, user, options_.fsync);
  if (!inbox) return make_error("open INBOX: " + inbox.error().message);
  MailboxState& state = inbox->state;
  Delivered out{inbox->info.id, state.uidvalidity(), state.uidnext(), false};
  if (out.uid == 0 || out.uid == UINT32_MAX) return make_error("INBOX UIDs exhausted");

  if (auto f = fault(DeliveryStep::kStoreBlob); !f) return f.error();
  if (auto stored = spool_.store_message(user, out.mailbox, out.uidvalidity, out.uid, message); !stored) {
    return make_error("store blob: " + stored.error().message);
  }
  if (auto f = fault(DeliveryStep::kAppendState); !f) return f.error();
  NewMessage m{out.uid, internal_date, static_cast<uint32_t>(summary->size), 0, {}};
  if (auto appended = state.append(std::span<const NewMessage>(&m, 1)); !appended) {
    return make_error("append state: " + appended.error().message);
  }
  // Delivered from here on; the cache is derived data.
  Result<void> cached = fault(DeliveryStep::kCacheHeaders);
  if (cached && cache_) {
    cached = cache_->put(index::CacheKey{std::string(user), to_u64(out.mailbox), out.uidvalidity, out.uid}, *summary,
                         index::InternalDate{internal_date, 0});
  }
  out.cached = cached.ok() && cache_ != nullptr;
  if (!cached) {
    cache_failures_.fetch_add(1);
    logger("store")->warn("header cache put failed user={} uid={}: {}", log_safe(user), out.uid,
                          cached.error().message);
  }
  return out;
}

std::string with_return_path(std::string_view sender, std::string_view message) {
  std::string out;
  out.reserve(message.size() + sender.size() + 18);
  out.append("Return-Path: <").append(sender).append(">\r\n").append(message);
  return out;
}

}  // namespace basalt::store
