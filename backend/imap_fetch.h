// FETCH (RFC 3501 §6.4.5, §7.4.2): the attribute argument parsed into a FetchRequest, and one
// message's FETCH data rendered. Pure functions, no I/O.
//
// Server flow per FETCH command:
//   1. parse_fetch_items(arg) (the parser's argument in server grammar: one atom or a list);
//      an error is a "BAD <message>". For UID FETCH call ensure_uid().
//   2. For each message: read the cached summary when needs_summary(), the raw blob (off the
//      event loop) only when needs_body(); when sets_seen() and the mailbox is read-write,
//      set \Seen first and pass flags_changed = true.
//   3. render_fetch() appends the data items; the caller writes "* <seq> FETCH (" + text + ")".
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backend/imap_date.h"
#include "backend/imap_section.h"
#include "common/imap_parser.h"
#include "common/result.h"
#include "indexer/message_summary.h"

namespace basalt::store::imap {

enum class FetchAtt {
  kFlags, kUid, kInternalDate, kRfc822Size, kEnvelope, kBodyStructure,
  kBody,          // BODY without a section: the non-extensible BODYSTRUCTURE
  kBodySection,   // BODY[...] / BODY.PEEK[...]
  kRfc822, kRfc822Header, kRfc822Text,
};

struct Partial {
  uint32_t origin = 0;
  uint32_t count = 0;  // > 0
  bool operator==(const Partial&) const = default;
};

struct FetchItem {
  FetchAtt att = FetchAtt::kFlags;
  bool peek = false;               // BODY.PEEK
  Section section;                 // kBodySection only
  std::optional<Partial> partial;  // kBodySection only
  bool operator==(const FetchItem&) const = default;
};

struct FetchRequest {
  std::vector<FetchItem> items;  // in the order asked (macros expanded)
};

// Errors (all for "BAD"): "invalid fetch attribute" (not an atom or list, empty list, macro
// inside a list), "unknown fetch attribute", "invalid section", "invalid partial".
Result<FetchRequest> parse_fetch_items(const basalt::imap::Arg& arg);

// UID FETCH answers always carry UID: adds it first unless present.
void ensure_uid(FetchRequest& request);

// Whether some item needs the raw message: any BODY[...] other than the top-level HEADER /
// HEADER.FIELDS(.NOT), RFC822, RFC822.TEXT. Everything else renders from the summary.
bool needs_body(const FetchRequest& request);
// Whether some item needs the cached summary (ENVELOPE, BODY(STRUCTURE), header sections,
// RFC822.HEADER).
bool needs_summary(const FetchRequest& request);
// Whether fetching sets \Seen: a non-PEEK BODY[...], RFC822 or RFC822.TEXT.
bool sets_seen(const FetchRequest& request);

struct FetchMessage {
  uint32_t uid = 0;
  uint8_t flags = 0;                          // kFlag* bits (backend/mailbox_state.h)
  std::span<const std::string> keywords;
  bool recent = false;
  DateTime internal_date;
  uint64_t size = 0;                          // RFC822.SIZE
  const index::MessageSummary* summary = nullptr;  // required when needs_summary()
  std::optional<std::string_view> raw;        // required when needs_body()
  bool flags_changed = false;                 // \Seen was just set: FLAGS is added if not asked
};

// Appends the data items, space-separated, without the parentheses:
// `UID 5 FLAGS (\Seen) BODY[HEADER.FIELDS (FROM)] {23}\r\n...`. Section data are literals;
// a missing part, or a partial whose origin is at or past the end, is the empty string ""
// (what Dovecot sends; RFC 3501 does not say); BODY[]<0.10> is labelled BODY[]<0>. Errors
// only when the caller did not pass what the request needs.
Result<void> render_fetch(const FetchRequest& request, const FetchMessage& message, std::string& out);

// "(\Seen \Answered \Flagged \Deleted \Draft \Recent kw1 kw2)" (set flags only, this order).
std::string format_flags(uint8_t flags, std::span<const std::string> keywords, bool recent);

}  // namespace basalt::store::imap
