// MailboxView: how hub changes become EXPUNGE / EXISTS / RECENT / FETCH FLAGS responses.
#include "backend/imap_view.h"

#include <gtest/gtest.h>

namespace basalt::store {
namespace {

MessageMeta meta(uint32_t uid, uint8_t flags = 0, uint64_t modseq = 1) {
  MessageMeta m;
  m.uid = uid;
  m.flags = flags;
  m.size = 100;
  m.modseq = modseq;
  return m;
}

MailboxView view_of(std::vector<uint32_t> uids, std::pair<uint32_t, uint32_t> recent = {0, 0}) {
  StateSnapshot s;
  s.uidvalidity = 7;
  s.highest_modseq = 5;
  for (uint32_t u : uids) s.messages.push_back(meta(u));
  s.uidnext = uids.empty() ? 1 : uids.back() + 1;
  MailboxView v;
  v.load(s, recent);
  return v;
}

TEST(ImapView, LoadKeepsOrderAndRecent) {
  MailboxView v = view_of({3, 5, 9}, {5, 9});
  EXPECT_EQ(v.size(), 3u);
  EXPECT_EQ(v.index_of(5), 1u);
  EXPECT_FALSE(v.index_of(4));
  EXPECT_EQ(v.recent_count(), 2u);
  EXPECT_EQ(v.uidnext(), 10u);
  EXPECT_EQ(v.first_unseen(), 0u);
}

TEST(ImapView, ExpungesAnnouncedHighestFirst) {
  MailboxView v = view_of({1, 2, 3, 4});
  MailboxChanges c;
  c.highest_modseq = 6;
  c.expunged = {2, 4};
  EXPECT_EQ(v.apply(c, {0, 0}, true), "* 4 EXPUNGE\r\n* 2 EXPUNGE\r\n");
  EXPECT_EQ(v.size(), 2u);
  EXPECT_EQ(v.modseq(), 6u);
  EXPECT_EQ(v.index_of(3), 1u);
}

TEST(ImapView, ExpungesDeferredKeepSequenceNumbers) {
  MailboxView v = view_of({1, 2, 3});
  MailboxChanges c;
  c.highest_modseq = 6;
  c.expunged = {1};
  EXPECT_EQ(v.apply(c, {0, 0}, false), "");
  EXPECT_EQ(v.size(), 3u);
  EXPECT_TRUE(v.at(0).expunged);
  // A later sync with nothing new still announces it.
  MailboxChanges none;
  none.highest_modseq = 6;
  EXPECT_EQ(v.apply(none, {0, 0}, true), "* 1 EXPUNGE\r\n");
  EXPECT_EQ(v.size(), 2u);
}

TEST(ImapView, NewMessagesAndFlagChanges) {
  MailboxView v = view_of({1, 2});
  MailboxChanges c;
  c.highest_modseq = 8;
  c.uidnext = 5;
  c.changed = {meta(2, kFlagSeen | kFlagFlagged, 7), meta(3, 0, 8), meta(4, 0, 8)};
  EXPECT_EQ(v.apply(c, {3, 3}, true),
            "* 4 EXISTS\r\n* 1 RECENT\r\n* 2 FETCH (UID 2 FLAGS (\\Seen \\Flagged))\r\n");
  EXPECT_TRUE(v.at(2).recent);
  EXPECT_FALSE(v.at(3).recent);
  EXPECT_EQ(v.uidnext(), 5u);
}

TEST(ImapView, OwnFlagChangesAreNotReportedTwice) {
  MailboxView v = view_of({1});
  v.set_flags(1, kFlagDeleted, {"$Junk"});
  MailboxChanges c;
  c.highest_modseq = 9;
  MessageMeta m = meta(1, kFlagDeleted, 9);
  m.keywords = {"$Junk"};
  c.changed = {m};
  EXPECT_EQ(v.apply(c, {0, 0}, true), "");
}

TEST(ImapView, IncompleteHistoryComparesAllUids) {
  MailboxView v = view_of({1, 2, 3, 4});
  MailboxChanges c;
  c.complete = false;
  c.highest_modseq = 50;
  c.all_uids = {1, 3, 5};
  c.changed = {meta(5, 0, 50)};
  EXPECT_EQ(v.apply(c, {0, 0}, true), "* 4 EXPUNGE\r\n* 2 EXPUNGE\r\n* 3 EXISTS\r\n* 0 RECENT\r\n");
}

TEST(ImapView, NewKeywordsAreAnnouncedOnce) {
  MailboxView v = view_of({1, 2});
  EXPECT_EQ(v.keywords_update(false), "");
  EXPECT_EQ(v.flags_response(true), "* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft)\r\n"
                                     "* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n");
  v.set_flags(1, 0, {"$Work"});
  EXPECT_EQ(v.keywords_update(false),
            "* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Work)\r\n"
            "* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Work \\*)] Flags permitted.\r\n");
  EXPECT_EQ(v.keywords_update(false), "");
  MailboxChanges c;
  c.highest_modseq = 9;
  MessageMeta m = meta(2, 0, 9);
  m.keywords = {"$Work"};
  c.changed = {m};
  v.apply(c, {0, 0}, true);
  EXPECT_EQ(v.keywords_update(false), "");  // already known
}

}  // namespace
}  // namespace basalt::store
