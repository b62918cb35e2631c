// SEARCH (RFC 3501 §6.4.4): the search-key grammar parsed into a tree, and one message
// matched against it. Pure functions, no I/O: the raw message is loaded through a callback,
// only when a BODY or TEXT key is actually evaluated.
//
// Server flow: parse_search(args) on the arguments after SEARCH (error code kSyntax -> "BAD
// <message>", kBadCharset -> "NO [BADCHARSET (UTF-8 US-ASCII)] <message>"); needs_body(key)
// says up front whether any message may need its blob; then match() per message.
//
// Semantics: strings match as case-insensitive substrings of decoded text (RFC 2047 header
// words, transfer encodings and charsets of text parts, Unicode case folding); header keys
// (FROM, TO, CC, BCC, SUBJECT, HEADER) look at every field of that name in the top-level
// header, and an empty string matches any message that has the field. SINCE/ON/BEFORE use
// the day of the internal date in its own zone; SENT* the day of the Date: field in its own
// zone (a message without a parseable Date: never matches a SENT* key). BODY searches the
// text parts' decoded content; TEXT the decoded header values and the body.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "backend/imap_date.h"
#include "backend/imap_sequence.h"
#include "common/imap_parser.h"
#include "common/result.h"

namespace basalt::store::imap {

enum class SearchOp : uint8_t {
  kAll, kAnd, kOr, kNot,
  kSequence, kUid,           // set
  kFlag, kNoFlag,            // flag (a kFlag* bit)
  kKeyword, kNoKeyword,      // name
  kRecent, kNew, kOld,
  kBefore, kOn, kSince, kSentBefore, kSentOn, kSentSince,  // number = day since 1970-01-01
  kLarger, kSmaller,         // number = size
  kHeader,                   // name = field, value
  kBody, kText,              // value
};

struct SearchKey {
  SearchOp op = SearchOp::kAll;
  std::vector<SearchKey> children;  // kAnd (any number), kOr (two), kNot (one)
  uint8_t flag = 0;
  std::string name;
  std::string value;                // case-folded (see fold_case)
  int64_t number = 0;
  SequenceSet set;
};

enum class SearchErrc { kSyntax = 1, kBadCharset = 2 };

// Keys nest (parentheses, NOT, OR) at most this deep; deeper is a kSyntax error.
inline constexpr size_t kMaxSearchDepth = 64;

// `args`: the command's arguments after SEARCH (for UID SEARCH, after "SEARCH"), with an
// optional leading CHARSET. Several keys are ANDed. Errors (kSyntax unless noted):
// "missing search key", "unknown search key", "missing search argument", "invalid search
// argument", "invalid search date", "invalid number", "invalid sequence set", "search too
// complex", and kBadCharset "unsupported charset" for a CHARSET other than UTF-8 / US-ASCII.
Result<SearchKey> parse_search(std::span<const basalt::imap::Arg> args);

// Whether evaluating `key` may need the raw message (BODY or TEXT somewhere in it).
bool needs_body(const SearchKey& key);

struct SearchMessage {
  uint32_t seq = 0;
  uint32_t uid = 0;
  uint32_t count = 0;    // messages in the mailbox: "*" in a sequence set
  uint32_t max_uid = 0;  // highest UID in the mailbox: "*" in a UID set
  uint8_t flags = 0;
  std::span<const std::string> keywords;
  bool recent = false;
  DateTime internal_date;
  uint64_t size = 0;
  std::string_view header;  // the cached header block
  // Called at most once, only when a BODY / TEXT key must be evaluated.
  std::function<Result<std::string>()> load_raw;
};

// Whether the message matches. Fails only when load_raw fails (or is missing when needed).
Result<bool> match(const SearchKey& key, const SearchMessage& message);

}  // namespace basalt::store::imap
