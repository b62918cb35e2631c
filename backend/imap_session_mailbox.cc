// SELECT/EXAMINE, CLOSE/UNSELECT, CREATE/DELETE/RENAME, SUBSCRIBE/UNSUBSCRIBE, LIST/LSUB,
// STATUS and APPEND: every hub call on the pool, answered on the loop.
#include <algorithm>
#include <ctime>

#include "backend/imap_args.h"
#include "backend/imap_date.h"
#include "backend/imap_fetch.h"
#include "backend/imap_mailbox_names.h"
#include "backend/imap_session.h"
#include "common/log.h"

namespace basalt::store {

namespace {

auto log() { return logger("store"); }

}  // namespace

std::string imap_hub_error(const Error& e) {
  switch (e.code) {
    case kHubNoSuchMailbox: return "NO [NONEXISTENT] Mailbox doesn't exist.";
    case kHubExists: return "NO [ALREADYEXISTS] Mailbox already exists.";
    case kHubInvalidName: return "NO [CANNOT] Invalid mailbox name.";
    case kHubNotAllowed: return "NO [CANNOT] Operation not allowed on this mailbox.";
    case kHubNoSuchMessage: return "NO [EXPUNGEISSUED] Message was expunged.";
    case kHubLimit: return "NO [LIMIT] Limit exceeded.";
    case kHubOverQuota: return "NO [OVERQUOTA] Quota exceeded.";  // RFC 5530
    default: return "NO [SERVERBUG] Internal error, see the server log.";
  }
}

namespace {

struct Opened {
  std::shared_ptr<Mailbox> box;
  StateSnapshot snapshot;
  std::pair<uint32_t, uint32_t> recent{0, 0};
  uint32_t unclaimed_recent = 0;  // EXAMINE: what SELECT would report, without claiming it
  std::optional<Error> error;
};

Opened open_mailbox(MailboxHub& hub, const std::string& user, const std::string& name, bool examine) {
  Opened r;
  auto box = hub.open(user, name);
  if (!box) return Opened{{}, {}, {}, 0, box.error()};
  auto snap = (*box)->snapshot();
  if (!snap) return Opened{{}, {}, {}, 0, snap.error()};
  r.box = *box;
  r.snapshot = std::move(*snap);
  if (!examine) {
    r.recent = r.box->claim_recent(r.snapshot.uidnext - 1);
  } else if (auto st = hub.status(user, name)) {
    r.unclaimed_recent = st->recent;
  }
  return r;
}

std::string mailbox_arg(const basalt::imap::Arg& arg) {
  const std::string* s = astring(arg);
  if (!s) return {};
  return imap::normalize_inbox(*s);
}

}  // namespace

void ImapSession::hub_reply(const std::string& tag, const Result<void>& r, std::string_view ok_text) {
  if (!r) return finish(tag, imap_hub_error(r.error()), Sync::kFull);
  finish(tag, "OK " + std::string(ok_text), Sync::kFull);
}

void ImapSession::deselect() {
  watch_.reset();
  mailbox_.reset();
  mailbox_name_.clear();
  view_.clear();
  dirty_ = false;
  if (state_ == State::kSelected) set_state(State::kAuthenticated);
}

void ImapSession::cmd_select(Command& cmd) {
  if (cmd.args.size() != 1 || !astring(cmd.args[0])) return bad(cmd.tag, "SELECT needs a mailbox name.");
  bool examine = cmd.name == "EXAMINE";
  std::string name = mailbox_arg(cmd.args[0]);
  deselect();  // RFC 3501 6.3.1: even if the new SELECT fails
  MailboxHub* hub = &server_.hub();
  std::string user = user_, tag = cmd.tag;
  run([hub, user, name, examine] { return open_mailbox(*hub, user, name, examine); },
      [tag, name, examine](ImapSession& s, Opened r) {
        if (r.error) return s.no(tag, imap_hub_error(*r.error).substr(3));
        s.mailbox_ = r.box;
        s.mailbox_name_ = name;
        s.read_only_ = examine;
        s.view_.load(r.snapshot, r.recent);
        s.set_state(State::kSelected);
        s.watch_mailbox();
        s.dirty_ = true;  // a change between the snapshot and the watch is found at the next sync
        std::string out = s.view_.flags_response(examine);
        out += "* " + std::to_string(s.view_.size()) + " EXISTS\r\n";
        out += "* " + std::to_string(examine ? r.unclaimed_recent : s.view_.recent_count()) + " RECENT\r\n";
        if (auto unseen = s.view_.first_unseen()) {
          out += "* OK [UNSEEN " + std::to_string(*unseen + 1) + "] First unseen.\r\n";
        }
        out += "* OK [UIDVALIDITY " + std::to_string(s.view_.uidvalidity()) + "] UIDs valid\r\n";
        out += "* OK [UIDNEXT " + std::to_string(s.view_.uidnext()) + "] Predicted next UID\r\n";
        s.send(out);
        s.send(tag + (examine ? " OK [READ-ONLY] EXAMINE completed.\r\n" : " OK [READ-WRITE] SELECT completed.\r\n"));
      });
}

void ImapSession::cmd_unselect(Command& cmd) {
  if (!cmd.args.empty()) return bad(cmd.tag, "UNSELECT takes no arguments.");
  deselect();
  finish(cmd.tag, "OK UNSELECT completed.", Sync::kNone);
}

// CLOSE: expunges \Deleted messages without EXPUNGE responses (none in a read-only mailbox).
void ImapSession::cmd_close(Command& cmd) {
  if (!cmd.args.empty()) return bad(cmd.tag, "CLOSE takes no arguments.");
  std::shared_ptr<Mailbox> box = mailbox_;
  bool read_only = read_only_;
  deselect();
  if (read_only) return finish(cmd.tag, "OK CLOSE completed.", Sync::kNone);
  std::string tag = cmd.tag;
  run([box]() -> Result<void> {
        auto snap = box->snapshot();
        if (!snap) return snap.error();
        std::vector<uint32_t> deleted;
        for (const MessageMeta& m : snap->messages) {
          if (m.flags & kFlagDeleted) deleted.push_back(m.uid);
        }
        if (deleted.empty()) return {};
        auto r = box->expunge(deleted);
        if (!r) return r.error();
        return {};
      },
      [tag](ImapSession& s, Result<void> r) { s.hub_reply(tag, r, "CLOSE completed."); });
}

void ImapSession::cmd_create(Command& cmd) {
  if (cmd.args.size() != 1 || !astring(cmd.args[0])) return bad(cmd.tag, "CREATE needs a mailbox name.");
  std::string name = mailbox_arg(cmd.args[0]);
  while (!name.empty() && name.back() == kHierarchyDelimiter) name.pop_back();  // "foo/" creates "foo"
  if (auto valid = imap::validate_mailbox_name(name); !valid) return no(cmd.tag, "[CANNOT] " + valid.error().message + ".");
  MailboxHub* hub = &server_.hub();
  std::string user = user_, tag = cmd.tag;
  run([hub, user, name]() -> Result<void> {
        // Superiors are created too (RFC 3501 6.3.3), so LIST shows the hierarchy.
        for (size_t p = name.find(kHierarchyDelimiter); p != std::string::npos;
             p = name.find(kHierarchyDelimiter, p + 1)) {
          auto parent = hub->create(user, name.substr(0, p));
          if (!parent && parent.error().code != kHubExists) return parent.error();
        }
        auto r = hub->create(user, name);
        if (!r) return r.error();
        return {};
      },
      [tag](ImapSession& s, Result<void> r) { s.hub_reply(tag, r, "CREATE completed."); });
}

void ImapSession::cmd_delete(Command& cmd) {
  if (cmd.args.size() != 1 || !astring(cmd.args[0])) return bad(cmd.tag, "DELETE needs a mailbox name.");
  MailboxHub* hub = &server_.hub();
  std::string user = user_, tag = cmd.tag, name = mailbox_arg(cmd.args[0]);
  run([hub, user, name] { return hub->remove(user, name); },
      [tag](ImapSession& s, Result<void> r) { s.hub_reply(tag, r, "DELETE completed."); });
}

void ImapSession::cmd_rename(Command& cmd) {
  if (cmd.args.size() != 2 || !astring(cmd.args[0]) || !astring(cmd.args[1])) {
    return bad(cmd.tag, "RENAME needs two mailbox names.");
  }
  MailboxHub* hub = &server_.hub();
  std::string user = user_, tag = cmd.tag, from = mailbox_arg(cmd.args[0]), to = mailbox_arg(cmd.args[1]);
  if (auto valid = imap::validate_mailbox_name(to); !valid) return no(tag, "[CANNOT] " + valid.error().message + ".");
  run([hub, user, from, to] { return hub->rename(user, from, to); },
      [tag](ImapSession& s, Result<void> r) { s.hub_reply(tag, r, "RENAME completed."); });
}

void ImapSession::cmd_subscribe(Command& cmd) {
  if (cmd.args.size() != 1 || !astring(cmd.args[0])) return bad(cmd.tag, "Mailbox name expected.");
  bool on = cmd.name == "SUBSCRIBE";
  MailboxHub* hub = &server_.hub();
  std::string user = user_, tag = cmd.tag, name = mailbox_arg(cmd.args[0]);
  run([hub, user, name, on] { return hub->subscribe(user, name, on); },
      [tag, on](ImapSession& s, Result<void> r) {
        s.hub_reply(tag, r, on ? "SUBSCRIBE completed." : "UNSUBSCRIBE completed.");
      });
}

namespace {

struct Listed {
  Result<std::vector<MailboxInfo>> boxes;
  Result<std::vector<std::string>> subscriptions;
};

std::string list_line(std::string_view verb, std::string_view attrs, const std::string& name) {
  std::string out = "* " + std::string(verb) + " (" + std::string(attrs) + ") \"" + kHierarchyDelimiter + "\" ";
  imap::append_mailbox_name(out, name);
  return out + "\r\n";
}

bool has_children(const std::vector<MailboxInfo>& boxes, const std::string& name) {
  std::string prefix = name + kHierarchyDelimiter;
  return std::any_of(boxes.begin(), boxes.end(), [&](const MailboxInfo& b) { return b.name.starts_with(prefix); });
}

std::string list_lines(std::string_view verb, const Listed& l, const std::string& pattern) {
  std::string out;
  bool lsub = verb == "LSUB";
  auto matches = [&](const std::string& name) { return imap::list_match(pattern, name); };
  if (lsub) {
    for (const std::string& name : *l.subscriptions) {
      if (matches(name)) out += list_line(verb, "", name);
    }
    return out;
  }
  for (const MailboxInfo& b : *l.boxes) {
    if (!matches(b.name)) continue;
    std::string attrs = has_children(*l.boxes, b.name) ? "\\HasChildren" : "\\HasNoChildren";
    if (b.subscribed) attrs += " \\Subscribed";
    out += list_line(verb, attrs, b.name);
  }
  return out;
}

}  // namespace

void ImapSession::cmd_list(Command& cmd) {
  const std::string* ref = cmd.args.size() == 2 ? astring(cmd.args[0]) : nullptr;
  const std::string* pat = cmd.args.size() == 2 ? astring(cmd.args[1]) : nullptr;
  if (!ref || !pat) return bad(cmd.tag, "LIST needs a reference and a pattern.");
  std::string verb = cmd.name, tag = cmd.tag;
  if (verb == "LIST" && pat->empty()) {
    send(std::string("* LIST (\\Noselect) \"") + kHierarchyDelimiter + "\" \"\"\r\n");
    return finish(tag, "OK LIST completed.", Sync::kFull);
  }
  std::string pattern = imap::join_list_pattern(*ref, *pat);
  MailboxHub* hub = &server_.hub();
  std::string user = user_;
  run([hub, user] { return Listed{hub->list(user), hub->subscriptions(user)}; },
      [verb, tag, pattern](ImapSession& s, Listed l) {
        if (!l.boxes) return s.finish(tag, imap_hub_error(l.boxes.error()), Sync::kFull);
        if (!l.subscriptions) return s.finish(tag, imap_hub_error(l.subscriptions.error()), Sync::kFull);
        s.send(list_lines(verb, l, pattern));
        s.finish(tag, "OK " + verb + " completed.", Sync::kFull);
      });
}

void ImapSession::cmd_status(Command& cmd) {
  if (cmd.args.size() != 2 || !astring(cmd.args[0]) || cmd.args[1].kind != basalt::imap::ArgKind::kList) {
    return bad(cmd.tag, "STATUS needs a mailbox and a list of items.");
  }
  std::vector<std::string> items;
  for (const basalt::imap::Arg& a : cmd.args[1].items) {
    std::string item = ascii_upper(a.text);
    static constexpr std::string_view kKnown[] = {"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN"};
    if (a.kind != basalt::imap::ArgKind::kAtom || std::find(std::begin(kKnown), std::end(kKnown), item) == std::end(kKnown)) {
      return bad(cmd.tag, "Unknown STATUS item.");
    }
    items.push_back(item);
  }
  MailboxHub* hub = &server_.hub();
  std::string user = user_, tag = cmd.tag, name = mailbox_arg(cmd.args[0]);
  run([hub, user, name] { return hub->status(user, name); },
      [tag, name, items](ImapSession& s, Result<MailboxStatus> st) {
        if (!st) return s.finish(tag, imap_hub_error(st.error()), Sync::kFull);
        std::string out;
        for (const std::string& item : items) {
          uint64_t v = item == "MESSAGES" ? st->messages : item == "RECENT" ? st->recent
                     : item == "UIDNEXT" ? st->uidnext : item == "UIDVALIDITY" ? st->uidvalidity : st->unseen;
          out += (out.empty() ? "" : " ") + item + " " + std::to_string(v);
        }
        std::string line = "* STATUS ";
        imap::append_mailbox_name(line, name);
        s.send(line + " (" + out + ")\r\n");
        s.finish(tag, "OK STATUS completed.", Sync::kFull);
      });
}

// APPEND mailbox [(flags)] ["date-time"] literal. A message with NUL bytes is refused with NO:
// RFC 3501 literals are CHAR8 (%x01-ff) and the store keeps text messages, not BINARY ones.
// A message without a header block is stored as sent (RFC 3501 does not require headers).
void ImapSession::cmd_append(Command& cmd) {
  auto& a = cmd.args;
  if (a.size() < 2 || a.size() > 4 || !astring(a[0]) || a.back().kind != basalt::imap::ArgKind::kLiteral) {
    return bad(cmd.tag, "APPEND needs a mailbox and a message literal.");
  }
  auto request = std::make_shared<AppendRequest>();
  request->internal_date = static_cast<int64_t>(std::time(nullptr));
  for (size_t i = 1; i + 1 < a.size(); ++i) {
    if (a[i].kind == basalt::imap::ArgKind::kList) {
      auto flags = parse_flags(a[i]);
      if (!flags) return bad(cmd.tag, "Invalid flags.");
      request->flags = flags->flags;
      request->keywords = std::move(flags->keywords);
    } else if (a[i].kind == basalt::imap::ArgKind::kQuoted) {
      auto date = imap::parse_date_time(a[i].text);
      if (!date) return bad(cmd.tag, "Invalid date-time.");
      request->internal_date = date->unix_seconds;
      request->tz_offset_minutes = static_cast<int16_t>(date->tz_offset_minutes);
    } else {
      return bad(cmd.tag, "Invalid APPEND arguments.");
    }
  }
  auto message = std::make_shared<std::string>(std::move(a.back().text));
  if (message->empty()) return no(cmd.tag, "Can't save an empty message.");
  if (message->find('\0') != std::string::npos) return no(cmd.tag, "Message contains NUL octets.");
  request->raw = *message;
  MailboxHub* hub = &server_.hub();
  std::string user = user_, tag = cmd.tag, name = mailbox_arg(a[0]);
  run([hub, user, name, request, message]() -> Result<AppendResult> {
        auto box = hub->open(user, name);
        if (!box) return box.error();
        return (*box)->append(std::span<const AppendRequest>(request.get(), 1));
      },
      [tag](ImapSession& s, Result<AppendResult> r) {
        if (!r && r.error().code == kHubNoSuchMailbox) return s.no(tag, "[TRYCREATE] Mailbox doesn't exist.");
        if (!r) return s.finish(tag, imap_hub_error(r.error()), Sync::kFull);
        s.finish(tag, "OK [APPENDUID " + std::to_string(r->uidvalidity) + " " + std::to_string(r->uids.at(0)) +
                          "] APPEND completed.", Sync::kFull);
      });
  (void)log;
}

}  // namespace basalt::store
