// A POP3 session's maildrop (RFC 1939): the INBOX messages present at login, numbered 1..n
// for the whole session (messages delivered later are not seen by this session), with the
// deletion marks of DELE / RSET. Pure: no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backend/mailbox_state.h"
#include "common/result.h"

namespace basalt::store {

// UIDL unique-id: "<uidvalidity>.<uid>" in 8-digit lower-case hex. Stable across sessions
// and restarts (both numbers are kept on the spool), and never reused: a reset mailbox gets
// a new UIDVALIDITY.
std::string pop3_unique_id(uint32_t uidvalidity, uint32_t uid);

// A decimal POP3 argument (message number or line count): digits only, no sign, fits in
// `max`. nullopt otherwise.
std::optional<uint64_t> parse_pop3_number(std::string_view text, uint64_t max);

class Maildrop {
 public:
  struct Message {
    uint32_t uid = 0;
    uint32_t size = 0;  // octets on the wire (RFC822.SIZE: CRLF line ends, before stuffing)
    bool deleted = false;
  };

  Maildrop() = default;
  Maildrop(uint32_t uidvalidity, const std::vector<MessageMeta>& messages);

  // The 0-based index of message number `arg`, or an error whose message is the -ERR text
  // (not a number, no such message, already deleted).
  Result<size_t> find(std::string_view arg) const;

  size_t size() const { return messages_.size(); }  // numbered messages, deleted included
  const Message& at(size_t index) const { return messages_[index]; }
  size_t count() const { return messages_.size() - deleted_; }  // STAT: not deleted
  uint64_t octets() const { return octets_ - deleted_octets_; }
  std::string unique_id(size_t index) const { return pop3_unique_id(uidvalidity_, messages_[index].uid); }

  void mark_deleted(size_t index);
  void undelete_all();
  std::vector<uint32_t> deleted_uids() const;

 private:
  uint32_t uidvalidity_ = 0;
  std::vector<Message> messages_;
  size_t deleted_ = 0;
  uint64_t octets_ = 0;
  uint64_t deleted_octets_ = 0;
};

}  // namespace basalt::store
