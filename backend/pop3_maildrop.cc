#include "backend/pop3_maildrop.h"

#include <cstdio>

namespace basalt::store {

std::string pop3_unique_id(uint32_t uidvalidity, uint32_t uid) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%08x.%08x", uidvalidity, uid);
  return buf;
}

std::optional<uint64_t> parse_pop3_number(std::string_view text, uint64_t max) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (max - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

Maildrop::Maildrop(uint32_t uidvalidity, const std::vector<MessageMeta>& messages) : uidvalidity_(uidvalidity) {
  messages_.reserve(messages.size());
  for (const MessageMeta& m : messages) {
    messages_.push_back({m.uid, m.size, false});
    octets_ += m.size;
  }
}

Result<size_t> Maildrop::find(std::string_view arg) const {
  auto number = parse_pop3_number(arg, UINT32_MAX);
  if (!number) return make_error("Invalid message number.");
  if (*number == 0 || *number > messages_.size()) return make_error("There's no message " + std::string(arg) + ".");
  size_t index = static_cast<size_t>(*number - 1);
  if (messages_[index].deleted) return make_error("Message " + std::string(arg) + " is deleted.");
  return index;
}

void Maildrop::mark_deleted(size_t index) {
  Message& m = messages_[index];
  if (m.deleted) return;
  m.deleted = true;
  ++deleted_;
  deleted_octets_ += m.size;
}

void Maildrop::undelete_all() {
  for (Message& m : messages_) m.deleted = false;
  deleted_ = 0;
  deleted_octets_ = 0;
}

std::vector<uint32_t> Maildrop::deleted_uids() const {
  std::vector<uint32_t> uids;
  for (const Message& m : messages_) {
    if (m.deleted) uids.push_back(m.uid);
  }
  return uids;
}

}  // namespace basalt::store
