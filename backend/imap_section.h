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

namespace basalt::store::imap {

enum class SectionText { kNone, kHeader, kHeaderFields, kHeaderFieldsNot, kText, kMime };

struct Section {
  std::vector<uint32_t> part;          // "1.2.3"; empty = the message itself
  SectionText text = SectionText::kNone;
  std::vector<std::string> fields;     // HEADER.FIELDS(.NOT) names, as sent
  bool operator==(const Section&) const = default;
};

// The section's text, or nullopt when the message has no such part (the caller sends NIL):
// a part number past the end, a part number into a leaf, or HEADER/TEXT after a part that
// is not message/rfc822. Part 1 of a non-multipart message is its body; part N of a
// message/rfc822 part is part N of the enclosed message; MIME is a part's own header.
std::optional<std::string> extract_section(std::string_view raw, const Section& section);

// The fields of a header block (CRLF or LF lines, folded continuation lines kept with their
// field) whose names are (exclude: are not) in `names`, case-insensitively, in their original
// order, followed by the blank line. Lines that are not fields (no colon) are never kept.
std::string filter_header_fields(std::string_view header, const std::vector<std::string>& names, bool exclude);

// Calls fn(name, field) for each field of a header block (CRLF or LF lines, up to the blank
// line): `field` is its text with its folded continuation lines and line ends, `name` the text
// before the colon without trailing white space, empty for a line that is not a field.
void for_each_header_field(std::string_view header,
                           const std::function<void(std::string_view name, std::string_view field)>& fn);

// The section as a FETCH response label: "HEADER.FIELDS (FROM X-Y)", "1.2.MIME", "" —
// field names uppercased as Dovecot sends them, quoted when they are not atoms.
std::string section_label(const Section& section);

// Text as sent in IMAP: bare LF -> CRLF and NUL -> 0x80.
std::string imap_text(std::string_view raw);

}  // namespace basalt::store::imap
