// Stand-ins for the IMAP grammar modules that are being written in parallel (sequence sets and
// LIST patterns). Deleted when backend/imap_sequence.h and backend/imap_mailbox_names.h land.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace basalt::store::local {

// "1:3,5,7:*" -> ranges; 0 stands for "*".
struct SeqRange {
  uint32_t first = 0;
  uint32_t last = 0;
};
std::optional<std::vector<SeqRange>> parse_sequence_set(std::string_view text);

// Indexes into `uids` (ascending) selected by `set`, as sequence numbers or (uid) as UIDs.
std::vector<size_t> resolve(const std::vector<SeqRange>& set, const std::vector<uint32_t>& uids, bool uid);

// LIST pattern match: '*' matches anything, '%' anything but the delimiter.
bool list_match(std::string_view pattern, std::string_view name, char delimiter);

}  // namespace basalt::store::local
