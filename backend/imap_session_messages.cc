// FETCH, STORE, EXPUNGE, COPY/MOVE and SEARCH on the selected mailbox.
//
// FETCH runs in batches on the pool: header items come from the header cache (zero spool
// bytes), body items from Mailbox::read_message; each batch is written before the next is
// rendered, and only once the output has drained (see ImapSession::wait_for_drain).
#include <algorithm>

#include "backend/imap_args.h"
#include "backend/imap_fetch.h"
#include "backend/imap_mailbox_names.h"
#include "backend/imap_search.h"
#include "backend/imap_sequence.h"
#include "backend/imap_session.h"
#include "common/log.h"
#include "indexer/message_summary.h"

namespace basalt::store {

namespace {

auto log() { return logger("store"); }

constexpr size_t kHeaderBatch = 256;          // messages per batch when no body is read
constexpr uint64_t kBodyBatchBytes = 1 << 20;  // message bytes per batch when bodies are read
constexpr size_t kCopyBatchBytes = 16u << 20;

std::vector<uint32_t> view_uids(const MailboxView& view) {
  std::vector<uint32_t> uids;
  uids.reserve(view.size());
  for (const ViewMessage& m : view.messages()) uids.push_back(m.meta.uid);
  return uids;
}

}  // namespace

// The messages a sequence set names in this session's view, as indexes; nullopt when malformed
// or (sequence numbers) beyond the view.
static std::optional<std::vector<size_t>> resolve_set(const MailboxView& view, const basalt::imap::Arg& arg, bool uid) {
  if (arg.kind != basalt::imap::ArgKind::kAtom) return std::nullopt;
  auto set = imap::parse_sequence_set(arg.text);
  if (!set) return std::nullopt;
  std::vector<uint32_t> positions;
  if (uid) {
    positions = imap::resolve_uids(*set, view_uids(view));
  } else {
    auto r = imap::resolve_seqnums(*set, static_cast<uint32_t>(view.size()));
    if (!r) return std::nullopt;
    positions = std::move(*r);
  }
  return std::vector<size_t>(positions.begin(), positions.end());
}

struct ImapSession::FetchJob {
  std::string tag;
  bool uid = false;
  imap::FetchRequest request;
  bool needs_summary = false;  // the header cache entry (also for INTERNALDATE's zone)
  bool needs_body = false;
  bool set_seen = false;
  std::vector<size_t> indexes;  // still to do, in order
  size_t next = 0;
  // Filled by each batch on the pool, consumed on the loop.
  std::vector<std::pair<size_t, ViewMessage>> batch;
  std::string out;
  uint64_t spool_bytes = 0;
  bool failed = false;
  bool expunged = false;
};

void ImapSession::cmd_fetch(Command& cmd) {
  bool uid = uid_command_;
  if (cmd.args.size() != 2) return bad(cmd.tag, "FETCH needs a sequence set and items.");
  auto indexes = resolve_set(view_, cmd.args[0], uid);
  if (!indexes) return bad(cmd.tag, "Invalid sequence set.");
  auto request = imap::parse_fetch_items(cmd.args[1]);
  if (!request) return bad(cmd.tag, "Invalid FETCH items: " + request.error().message + ".");
  if (uid) imap::ensure_uid(*request);
  auto job = std::make_shared<FetchJob>();
  job->tag = cmd.tag;
  job->uid = uid;
  job->request = std::move(*request);
  job->needs_body = imap::needs_body(job->request);
  job->needs_summary = imap::needs_summary(job->request) ||
                       std::any_of(job->request.items.begin(), job->request.items.end(),
                                   [](const imap::FetchItem& i) { return i.att == imap::FetchAtt::kInternalDate; });
  job->set_seen = imap::sets_seen(job->request) && !read_only_;
  job->indexes = std::move(*indexes);
  fetch_batch(std::move(job));
}

namespace {

struct FetchedMessage {
  index::CachedMessage cached;
  std::optional<std::string> raw;  // as stored
};

// One message's cache entry and (when needed) its bytes. A missing or corrupt cache entry is
// rebuilt from the spool.
Result<FetchedMessage> load_message(Mailbox& box, const MessageMeta& meta, bool needs_summary, bool needs_body,
                                    uint64_t& spool_bytes) {
  FetchedMessage f;
  auto read = [&]() -> Result<void> {
    if (f.raw) return {};
    auto r = box.read_message(meta.uid);
    if (!r) return r.error();
    spool_bytes += r->size();
    f.raw = std::move(*r);
    return {};
  };
  if (needs_summary) {
    auto c = box.cached(meta.uid);
    if (c && *c) {
      f.cached = std::move(**c);
    } else {
      if (auto r = read(); !r) return r.error();
      auto rebuilt = box.recache(meta.uid, *f.raw, meta.internal_date);
      if (!rebuilt) return rebuilt.error();
      f.cached = std::move(*rebuilt);
    }
  }
  if (needs_body) {
    if (auto r = read(); !r) return r.error();
  }
  return f;
}

// "* seq FETCH (...)\r\n" for one message; false when it could not be rendered.
bool render_message(const imap::FetchRequest& request, size_t seq, const ViewMessage& m, const FetchedMessage& f,
                    bool flags_changed, std::string& out) {
  imap::FetchMessage msg;
  msg.uid = m.meta.uid;
  msg.flags = m.meta.flags;
  msg.keywords = m.meta.keywords;
  msg.recent = m.recent;
  msg.internal_date = {m.meta.internal_date, f.cached.internal_date.tz_offset_minutes};
  msg.size = m.meta.size;
  msg.summary = &f.cached.summary;
  if (f.raw) msg.raw = *f.raw;
  msg.flags_changed = flags_changed;
  std::string line = "* " + std::to_string(seq) + " FETCH (";
  if (!imap::render_fetch(request, msg, line)) return false;
  out += line + ")\r\n";
  return true;
}

}  // namespace

// Renders the next batch of messages on the pool (setting \Seen first where the items ask).
void ImapSession::fetch_batch(std::shared_ptr<FetchJob> job) {
  job->batch.clear();
  uint64_t bytes = 0;
  while (job->next < job->indexes.size()) {
    size_t i = job->indexes[job->next];
    const ViewMessage& m = view_.at(i);
    if (!job->batch.empty() &&
        (job->batch.size() >= kHeaderBatch || (job->needs_body && bytes + m.meta.size > kBodyBatchBytes))) {
      break;
    }
    bytes += m.meta.size;
    job->batch.emplace_back(i, m);
    ++job->next;
  }
  std::shared_ptr<Mailbox> box = mailbox_;
  std::string user = user_;
  run(
      [box, job, user] {
        job->out.clear();
        std::vector<FlagUpdate> seen;
        for (auto& [index, m] : job->batch) {
          auto f = load_message(*box, m.meta, job->needs_summary, job->needs_body, job->spool_bytes);
          bool changed = f && job->set_seen && !(m.meta.flags & kFlagSeen);
          if (changed) {
            m.meta.flags |= kFlagSeen;
            seen.push_back({m.meta.uid, m.meta.flags, m.meta.keywords});
          }
          if (f && render_message(job->request, index + 1, m, *f, changed, job->out)) continue;
          bool gone = !f && f.error().code == kHubNoSuchMessage;
          (gone ? job->expunged : job->failed) = true;
          if (!gone) {
            log()->warn("fetch user={} uid={} failed: {}", log_safe(user), m.meta.uid,
                        f ? "cannot render" : f.error().message);
          }
        }
        if (!seen.empty() && !box->set_flags(seen)) job->failed = true;
        return job;
      },
      [](ImapSession& s, std::shared_ptr<FetchJob> job) { s.fetch_done(std::move(job)); });
}

void ImapSession::fetch_done(std::shared_ptr<FetchJob> job) {
  send(job->out);
  job->out.clear();
  spool_bytes_ += std::exchange(job->spool_bytes, 0);
  for (const auto& [index, m] : job->batch) {
    if (m.meta.flags != view_.at(index).meta.flags) view_.set_flags(m.meta.uid, m.meta.flags, m.meta.keywords);
  }
  if (job->next < job->indexes.size()) {
    if (output_full()) return wait_for_drain([this, job] { fetch_batch(job); });
    return fetch_batch(job);
  }
  Sync mode = job->uid ? Sync::kFull : Sync::kNoExpunge;
  if (job->failed) return finish(job->tag, "NO [SERVERBUG] Some messages could not be read.", mode);
  if (job->expunged) return finish(job->tag, "NO [EXPUNGEISSUED] Some messages were expunged.", mode);
  finish(job->tag, "OK FETCH completed.", mode);
}

void ImapSession::cmd_store(Command& cmd) {
  bool uid = uid_command_;
  if (cmd.args.size() < 3) return bad(cmd.tag, "STORE needs a sequence set, an item and flags.");
  auto indexes = resolve_set(view_, cmd.args[0], uid);
  if (!indexes) return bad(cmd.tag, "Invalid sequence set.");
  std::string item = cmd.args[1].kind == basalt::imap::ArgKind::kAtom ? ascii_upper(cmd.args[1].text) : "";
  bool silent = item.ends_with(".SILENT");
  if (silent) item.resize(item.size() - 7);
  char op = !item.empty() && (item[0] == '+' || item[0] == '-') ? item[0] : '=';
  if (item.substr(op == '=' ? 0 : 1) != "FLAGS") return bad(cmd.tag, "Invalid STORE item.");
  basalt::imap::Arg list{basalt::imap::ArgKind::kList, {}, {}};
  if (cmd.args.size() == 3 && cmd.args[2].kind == basalt::imap::ArgKind::kList) list = cmd.args[2];
  else list.items.assign(cmd.args.begin() + 2, cmd.args.end());
  auto flags = parse_flags(list);
  if (!flags) return bad(cmd.tag, "Invalid flags.");
  if (read_only_) return no(cmd.tag, "[READ-ONLY] Mailbox is read-only.");
  std::vector<FlagUpdate> updates;
  for (size_t i : *indexes) {
    const MessageMeta& m = view_.at(i).meta;
    FlagUpdate u{m.uid, m.flags, m.keywords};
    if (op == '=') {
      u.flags = flags->flags;
      u.keywords = flags->keywords;
    } else if (op == '+') {
      u.flags |= flags->flags;
      u.keywords.insert(u.keywords.end(), flags->keywords.begin(), flags->keywords.end());
      std::sort(u.keywords.begin(), u.keywords.end());
      u.keywords.erase(std::unique(u.keywords.begin(), u.keywords.end()), u.keywords.end());
    } else {
      u.flags &= static_cast<uint8_t>(~flags->flags);
      std::erase_if(u.keywords, [&](const std::string& k) {
        return std::binary_search(flags->keywords.begin(), flags->keywords.end(), k);
      });
    }
    if (u.flags != m.flags || u.keywords != m.keywords) updates.push_back(std::move(u));
  }
  std::shared_ptr<Mailbox> box = mailbox_;
  std::string tag = cmd.tag;
  auto wanted = std::make_shared<std::vector<size_t>>(std::move(*indexes));
  run([box, updates] { return updates.empty() ? Result<Mailbox::FlagsResult>(Mailbox::FlagsResult{}) : box->set_flags(updates); },
      [tag, uid, silent, updates, wanted](ImapSession& s, Result<Mailbox::FlagsResult> r) {
        if (!r) return s.finish(tag, "NO [SERVERBUG] Flags could not be stored.", Sync::kNone);
        for (const FlagUpdate& u : updates) {
          if (std::binary_search(r->updated.begin(), r->updated.end(), u.uid)) s.view_.set_flags(u.uid, u.flags, u.keywords);
        }
        s.send(s.view_.keywords_update(s.read_only_));
        if (!silent) {
          std::string out;
          for (size_t i : *wanted) {
            const ViewMessage& m = s.view_.at(i);
            out += "* " + std::to_string(i + 1) + " FETCH (FLAGS " + imap::format_flags(m.meta.flags, m.meta.keywords, m.recent) +
                   (uid ? " UID " + std::to_string(m.meta.uid) : "") + ")\r\n";
          }
          s.send(out);
        }
        s.finish(tag, "OK STORE completed.", uid ? Sync::kFull : Sync::kNoExpunge);
      });
}

// EXPUNGE / UID EXPUNGE: removes the messages with \Deleted (only those in `only` when given);
// the EXPUNGE responses come from the sync that follows.
void ImapSession::expunge_uids(const std::string& tag, std::vector<uint32_t> only, std::string text) {
  std::shared_ptr<Mailbox> box = mailbox_;
  bool restrict = !only.empty();
  run([box, only, restrict]() -> Result<void> {
        auto snap = box->snapshot();
        if (!snap) return snap.error();
        std::vector<uint32_t> deleted;
        for (const MessageMeta& m : snap->messages) {
          if ((m.flags & kFlagDeleted) && (!restrict || std::binary_search(only.begin(), only.end(), m.uid))) {
            deleted.push_back(m.uid);
          }
        }
        if (deleted.empty()) return {};
        auto r = box->expunge(deleted);
        if (!r) return r.error();
        return {};
      },
      [tag, text](ImapSession& s, Result<void> r) {
        if (!r) return s.finish(tag, "NO [SERVERBUG] Expunge failed.", Sync::kFull, true);
        s.finish(tag, text, Sync::kFull, true);
      });
}

void ImapSession::cmd_expunge(Command& cmd) {
  if (read_only_) return no(cmd.tag, "[READ-ONLY] Mailbox is read-only.");
  if (!uid_command_) {
    if (!cmd.args.empty()) return bad(cmd.tag, "EXPUNGE takes no arguments.");
    return expunge_uids(cmd.tag, {}, "OK EXPUNGE completed.");
  }
  if (cmd.args.size() != 1) return bad(cmd.tag, "UID EXPUNGE needs a UID set.");
  auto indexes = resolve_set(view_, cmd.args[0], true);
  if (!indexes) return bad(cmd.tag, "Invalid UID set.");
  if (indexes->empty()) return finish(cmd.tag, "OK EXPUNGE completed.", Sync::kFull);
  std::vector<uint32_t> uids;
  for (size_t i : *indexes) uids.push_back(view_.at(i).meta.uid);
  expunge_uids(cmd.tag, std::move(uids), "OK EXPUNGE completed.");
}

struct CopyOutcome {
  std::optional<Error> error;
  uint32_t uidvalidity = 0;
  std::vector<uint32_t> source;
  std::vector<uint32_t> copied;
  uint64_t spool_bytes = 0;
};

namespace {

// Appends one batch of copies; the blobs are read here, the internal dates and flags kept.
Result<void> copy_batch(Mailbox& src, Mailbox& dest, std::span<const MessageMeta> metas, QuotaCheck quota,
                        CopyOutcome& out) {
  std::vector<std::string> raws;
  std::vector<AppendRequest> requests;
  raws.reserve(metas.size());
  for (const MessageMeta& m : metas) {
    auto raw = src.read_message(m.uid);
    if (!raw) return raw.error();
    out.spool_bytes += raw->size();
    raws.push_back(std::move(*raw));
    auto cached = src.cached(m.uid);
    int16_t tz = cached && *cached ? (**cached).internal_date.tz_offset_minutes : 0;
    requests.push_back(AppendRequest{raws.back(), m.internal_date, tz, m.flags, m.keywords});
  }
  auto r = dest.append(requests, quota);
  if (!r) return r.error();
  out.uidvalidity = r->uidvalidity;
  out.copied.insert(out.copied.end(), r->uids.begin(), r->uids.end());
  for (const MessageMeta& m : metas) out.source.push_back(m.uid);
  return {};
}

// Copies in batches; on failure the copies made so far are expunged again, so COPY is all or
// nothing (RFC 3501 6.4.7). MOVE then expunges the originals (RFC 6851); its copies skip the
// quota check, since the user's usage is back where it was once the move is done.
CopyOutcome copy_messages(MailboxHub& hub, const std::string& user, const std::string& dest_name, Mailbox& src,
                          const std::vector<MessageMeta>& metas, bool move) {
  CopyOutcome out;
  auto dest = hub.open(user, dest_name);
  if (!dest) {
    out.error = dest.error();
    return out;
  }
  for (size_t i = 0; i < metas.size();) {
    size_t j = i;
    uint64_t bytes = 0;
    while (j < metas.size() && (j == i || bytes + metas[j].size <= kCopyBatchBytes)) bytes += metas[j++].size;
    QuotaCheck quota = move ? QuotaCheck::kSkip : QuotaCheck::kEnforce;
    if (auto r = copy_batch(src, **dest, std::span(metas).subspan(i, j - i), quota, out); !r) {
      if (!out.copied.empty()) (void)(*dest)->expunge(out.copied);
      out.error = r.error();
      return out;
    }
    i = j;
  }
  if (move) {
    if (auto r = src.expunge(out.source); !r) out.error = r.error();
  }
  return out;
}

}  // namespace

void ImapSession::cmd_copy(Command& cmd) {
  bool move = cmd.name == "MOVE", uid = uid_command_;
  if (cmd.args.size() != 2 || !astring(cmd.args[1])) return bad(cmd.tag, "Sequence set and mailbox expected.");
  auto indexes = resolve_set(view_, cmd.args[0], uid);
  if (!indexes) return bad(cmd.tag, "Invalid sequence set.");
  if (move && read_only_) return no(cmd.tag, "[READ-ONLY] Mailbox is read-only.");
  std::vector<MessageMeta> metas;
  for (size_t i : *indexes) {
    if (!view_.at(i).expunged) metas.push_back(view_.at(i).meta);
  }
  std::string dest = *astring(cmd.args[1]);
  dest = imap::normalize_inbox(dest);
  MailboxHub* hub = &server_.hub();
  std::shared_ptr<Mailbox> src = mailbox_;
  std::string user = user_, tag = cmd.tag;
  run([hub, user, dest, src, metas, move] { return copy_messages(*hub, user, dest, *src, metas, move); },
      [tag, move](ImapSession& s, CopyOutcome out) { s.copy_done(tag, move, out); });
}

void ImapSession::copy_done(const std::string& tag, bool move, const CopyOutcome& out) {
  spool_bytes_ += out.spool_bytes;
  if (out.error && out.error->code == kHubNoSuchMailbox) return no(tag, "[TRYCREATE] Mailbox doesn't exist.");
  if (out.error && out.error->code == kHubOverQuota) return finish(tag, imap_hub_error(*out.error), Sync::kFull, true);
  if (out.error) {
    log()->warn("[I{}] user={} action=copy error={}", id_, log_safe(user_), out.error->message);
    return finish(tag, "NO [SERVERBUG] Copy failed.", Sync::kFull, true);
  }
  std::string code = out.copied.empty() ? std::string()
                                        : "[COPYUID " + std::to_string(out.uidvalidity) + " " + imap::format_uid_set(out.source) +
                                              " " + imap::format_uid_set(out.copied) + "] ";
  if (!move) return finish(tag, "OK " + code + "COPY completed.", Sync::kFull);
  if (!code.empty()) send("* OK " + code + "Moved.\r\n");
  finish(tag, "OK MOVE completed.", Sync::kFull, true);
}

}  // namespace basalt::store

namespace basalt::store {

namespace {

// Whether evaluating `key` reads the header block (the header cache).
bool needs_header(const imap::SearchKey& key) {
  using Op = imap::SearchOp;
  for (Op op : {Op::kHeader, Op::kSentBefore, Op::kSentOn, Op::kSentSince, Op::kText}) {
    if (key.op == op) return true;
  }
  return std::any_of(key.children.begin(), key.children.end(), needs_header);
}

struct SearchJob {
  imap::SearchKey key;
  bool uid = false;
  bool header = false;
  std::vector<ViewMessage> messages;  // the view, in sequence order
  uint32_t max_uid = 0;
  std::vector<uint32_t> hits;
  uint64_t spool_bytes = 0;
  bool failed = false;
};

// Runs on the pool: flags, dates and sizes from the view, headers from the header cache, and
// the message from the spool only for BODY / TEXT keys.
void run_search(Mailbox& box, SearchJob& job) {
  auto count = static_cast<uint32_t>(job.messages.size());
  for (uint32_t i = 0; i < count; ++i) {
    const ViewMessage& m = job.messages[i];
    FetchedMessage f;
    if (job.header) {
      auto loaded = load_message(box, m.meta, true, false, job.spool_bytes);
      if (!loaded) continue;  // expunged meanwhile, or unreadable: not a match
      f = std::move(*loaded);
    }
    imap::SearchMessage msg{i + 1, m.meta.uid, count, job.max_uid, m.meta.flags, m.meta.keywords, m.recent,
                            {m.meta.internal_date, f.cached.internal_date.tz_offset_minutes}, m.meta.size,
                            f.cached.summary.header, {}};
    msg.load_raw = [&]() -> Result<std::string> {
      if (f.raw) return *f.raw;
      auto raw = box.read_message(m.meta.uid);
      if (raw) job.spool_bytes += raw->size();
      return raw;
    };
    auto hit = imap::match(job.key, msg);
    if (!hit) {
      job.failed = true;
    } else if (*hit) {
      job.hits.push_back(job.uid ? m.meta.uid : i + 1);
    }
  }
}

}  // namespace

void ImapSession::cmd_search(Command& cmd) {
  auto key = imap::parse_search(cmd.args);
  if (!key && key.error().code == static_cast<int>(imap::SearchErrc::kBadCharset)) {
    return no(cmd.tag, "[BADCHARSET (UTF-8 US-ASCII)] " + key.error().message + ".");
  }
  if (!key) return bad(cmd.tag, "Invalid SEARCH: " + key.error().message + ".");
  auto job = std::make_shared<SearchJob>();
  job->uid = uid_command_;
  job->header = needs_header(*key);
  job->key = std::move(*key);
  job->messages = view_.messages();
  job->max_uid = job->messages.empty() ? 0 : job->messages.back().meta.uid;
  std::shared_ptr<Mailbox> box = mailbox_;
  std::string tag = cmd.tag;
  run(
      [box, job] {
        run_search(*box, *job);
        return job;
      },
      [tag](ImapSession& s, std::shared_ptr<SearchJob> job) {
        s.spool_bytes_ += job->spool_bytes;
        std::string out = "* SEARCH";
        for (uint32_t n : job->hits) out += " " + std::to_string(n);
        s.send(out + "\r\n");
        Sync mode = job->uid ? Sync::kFull : Sync::kNoExpunge;
        if (job->failed) return s.finish(tag, "NO [SERVERBUG] Some messages could not be searched.", mode);
        s.finish(tag, "OK SEARCH completed.", mode);
      });
}

}  // namespace basalt::store
