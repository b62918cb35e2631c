// Keeping the client's view of the selected mailbox current: changes are fetched from the hub
// (changes_since on the pool) at the points RFC 3501 7.4.1 allows, and at once while IDLE.
#include "backend/imap_args.h"
#include "backend/imap_session.h"
#include "common/log.h"

namespace basalt::store {

namespace {

auto log() { return logger("store"); }

struct Synced {
  Result<MailboxChanges> changes;
  std::pair<uint32_t, uint32_t> recent{0, 0};
};

}  // namespace

void ImapSession::watch_mailbox() {
  ImapServer* server = &server_;
  uint64_t id = id_;
  // Runs on the writer's thread: only posts to this loop.
  watch_ = mailbox_->watch([server, id] { server->post(id, [](ImapSession& s) { s.on_mailbox_changed(); }); });
}

void ImapSession::on_mailbox_changed() {
  if (state_ != State::kSelected) return;
  dirty_ = true;
  if (idling_ && !busy_) sync(Sync::kFull, [] {});
}

void ImapSession::sync(Sync mode, std::function<void()> then) {
  dirty_ = false;
  std::shared_ptr<Mailbox> box = mailbox_;
  uint64_t since = view_.modseq();
  bool claim = !read_only_;
  run(
      [box, since, claim] {
        Synced r{box->changes_since(since)};
        // The first session to see a new message gets it as \Recent (EXAMINE claims nothing).
        if (r.changes && claim && r.changes->uidnext > 1) r.recent = box->claim_recent(r.changes->uidnext - 1);
        return r;
      },
      [mode, then](ImapSession& s, Synced r) {
        if (r.changes) {
          std::string updates = s.view_.apply(*r.changes, r.recent, mode == Sync::kFull);
          s.send(s.view_.keywords_update(s.read_only_) + updates);
        } else {
          log()->warn("[I{}] user={} action=sync error={}", s.id_, log_safe(s.user_), r.changes.error().message);
        }
        then();
        if (s.idling_ && s.dirty_ && !s.busy_) s.sync(Sync::kFull, [] {});
      });
}

void ImapSession::cmd_check(Command& cmd) {
  if (!cmd.args.empty()) return bad(cmd.tag, "CHECK takes no arguments.");
  finish(cmd.tag, "OK CHECK completed.", Sync::kFull, true);
}

// IDLE (RFC 2177): changes are reported as they happen until the client sends DONE.
void ImapSession::cmd_idle(Command& cmd) {
  if (!cmd.args.empty()) return bad(cmd.tag, "IDLE takes no arguments.");
  pending_tag_ = cmd.tag;
  input_ = Input::kIdle;
  idling_ = true;
  send("+ idling\r\n");
  if (state_ == State::kSelected && dirty_) sync(Sync::kFull, [] {});
}

void ImapSession::idle_line(std::string_view line) {
  input_ = Input::kCommand;
  idling_ = false;
  std::string tag = std::exchange(pending_tag_, {});
  if (!iequals(line, "DONE")) return bad(tag, "Expected DONE.");
  finish(tag, "OK IDLE terminated.", Sync::kFull);
}

}  // namespace basalt::store
