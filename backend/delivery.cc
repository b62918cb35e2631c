#include "backend/delivery.h"

namespace basalt::store {

Result<Delivered> Deliverer::deliver(std::string_view user, std::string_view message, int64_t internal_date) {
  AppendRequest request;
  request.raw = message;
  request.internal_date = internal_date;
  auto done = hub_.deliver(user, request);
  if (!done) return done.error();
  if (!done->cached) cache_failures_.fetch_add(1);
  return Delivered{done->mailbox, done->uidvalidity, done->uids.front(), done->cached};
}

std::string with_return_path(std::string_view sender, std::string_view message) {
  std::string out;
  out.reserve(message.size() + return_path_bytes(sender));
  out.append("Return-Path: <").append(sender).append(">\r\n").append(message);
  return out;
}

}  // namespace basalt::store
