// IMAP sequence sets (RFC 3501 §9 sequence-set), pure functions, no I/O.
//
// parse_sequence_set() reads the text of a parser atom ("1", "1:5", "5:1", "*", "3:*",
// "1,3,5:7"); the resolvers turn it into 0-based positions in the mailbox's message list,
// ascending and without duplicates, so the caller can index its UID / metadata vectors.
//
// Out-of-range message sequence numbers: RFC 3501 leaves the answer open; Basalt answers
// BAD, as Dovecot does ("Invalid messageset"), because the client named messages that do not
// exist in its own view. resolve_seqnums() therefore fails with SeqErrc::kOutOfRange, also
// for any set in an empty mailbox ("*" names no message there). UIDs never fail: a UID set
// matches the UIDs that exist (RFC 3501 §6.4.8), and "n:*" always matches the highest UID.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace basalt::store::imap {

inline constexpr uint32_t kSeqStar = 0;  // "*" in a SeqRange (0 is never a valid number)

// One "a" or "a:b" element as sent (a single number has first == last); not normalized.
struct SeqRange {
  uint32_t first = 0;
  uint32_t last = 0;
  bool operator==(const SeqRange&) const = default;
};

struct SequenceSet {
  std::vector<SeqRange> ranges;
};

// Error codes (Error::code) of this module.
enum class SeqErrc { kSyntax = 1, kOutOfRange = 2 };

// Fails (kSyntax, "invalid sequence set") on an empty set, an empty element, 0, a leading
// zero, a number over 2^32-1, "a:b:c", or any other byte. "$" (SEARCHRES) is not supported.
Result<SequenceSet> parse_sequence_set(std::string_view text);

// Message sequence numbers in a mailbox of `count` messages ("*" = count): the 0-based
// positions (seq - 1). Fails with kOutOfRange when any number exceeds count.
Result<std::vector<uint32_t>> resolve_seqnums(const SequenceSet& set, uint32_t count);

// UIDs against the mailbox's UIDs (ascending, unique; "*" = the highest): the 0-based
// positions of the UIDs the set matches. Empty for an empty mailbox.
std::vector<uint32_t> resolve_uids(const SequenceSet& set, std::span<const uint32_t> uids);

// Whether `value` is in the set when "*" stands for `star` (SEARCH keys test one message at
// a time; a number beyond `star` simply matches nothing).
bool set_contains(const SequenceSet& set, uint32_t value, uint32_t star);

// Ascending UIDs (duplicates ignored) as a compact set, "1:3,7", for UIDPLUS APPENDUID /
// COPYUID. Empty input gives "".
std::string format_uid_set(std::span<const uint32_t> ascending_uids);

}  // namespace basalt::store::imap
