// BODY[section] text (RFC 3501 §6.4.5) cut out of a raw message, pure functions, no I/O.
//
// Part boundaries come from the indexer's MIME parser (indexer/message_summary.h), the same
// one that produced the cached BODYSTRUCTURE, so part numbers always agree with it. All text
// returned is as sent over IMAP: bare LFs become CRLF (the RFC822.SIZE rule), and NUL bytes,
// which no IMAP string may hold, become 0x80 (as Dovecot does) so sizes stay the same.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "indexer/bodystructure.h"

namespace basalt::store::imap {

enum class SectionText { kNone, kHeader, kHeaderFields, kHeaderFieldsNot, kText, kMime };

struct Section {
  std::vector<uint32_t> part;          // "1.2.3"; empty = the message itself
  SectionText text = SectionText::kNone;
  std::vector<std::string> fields;     // HEADER.FIELDS(.NOT) names, as sent
  bool operator==(const Section&) const = default;
};

// The section's text, or nullopt when the message has no such part. Part numbers are
// resolved as Dovecot does: a multipart's N is its N-th child; any other part (and a
// non-multipart message) has only part 1, itself, so "2.1" of a leaf part 2 is part 2 but
// "1.1" of a single-part message is missing; numbers after a message/rfc822 part count in
// the enclosed message. HEADER/TEXT after a number need a message/rfc822 part; MIME is a
// part's own header.
std::optional<std::string> extract_section(std::string_view raw, const Section& section);
// The same with the message's part tree already parsed (parse_parts(raw)): a FETCH of several
// sections of one message parses it once.
std::optional<std::string> extract_section(std::string_view raw, const index::MimePart& root, const Section& section);
index::MimePart parse_parts(std::string_view raw);

// The fields of a header block (CRLF or LF lines, folded continuation lines kept with their
// field) whose names are (exclude: are not) in `names`, case-insensitively, in their original
// order, then a blank line (for exclude only if the block had one, as Dovecot answers). A line
// without a colon counts as a field named by the whole line.
std::string filter_header_fields(std::string_view header, const std::vector<std::string>& names, bool exclude);

// Calls fn(name, field) for each field of a header block (CRLF or LF lines, up to the blank
// line): `field` is its text with its folded continuation lines and line ends, `name` the text
// before the colon without trailing white space (a line without a colon is all name; empty
// for continuation lines before any field). Returns whether the blank line was reached.
bool for_each_header_field(std::string_view header,
                           const std::function<void(std::string_view name, std::string_view field)>& fn);

// The section as a FETCH response label: "HEADER.FIELDS (FROM X-Y)", "1.2.MIME", "" —
// field names uppercased as Dovecot sends them, quoted when they are not atoms.
std::string section_label(const Section& section);

// Text as sent in IMAP: bare LF -> CRLF and NUL -> 0x80.
std::string imap_text(std::string_view raw);

}  // namespace basalt::store::imap
