// Text as IMAP SEARCH compares it (RFC 3501 §6.4.4: case-insensitive substrings of decoded
// text): RFC 2047 header decoding, transfer-encoding and charset decoding of text parts, and
// case folding. Pure functions (GMime on memory streams), no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace basalt::store::imap {

// A header field value unfolded (line breaks removed) with RFC 2047 encoded-words decoded to
// UTF-8. Bytes that are not valid UTF-8 are kept as they are.
std::string decode_header_value(std::string_view value);

// The bodies of the message's text/* parts (also inside message/rfc822 parts), with their
// Content-Transfer-Encoding removed and converted from their charset to UTF-8, joined by "\n".
// Non-text parts (attachments) are left out.
std::string decoded_body_text(std::string_view raw);

// Case-folded for comparison: Unicode case folding of valid UTF-8, else ASCII lowercase.
std::string fold_case(std::string_view text);

// All values of the header fields named `name` (case-insensitive) in a header block, each
// unfolded but not decoded, in order.
std::vector<std::string> header_values(std::string_view header, std::string_view name);

// The calendar day (days since 1970-01-01) of an RFC 5322 Date value in its own zone, time
// and zone ignored (RFC 3501 SENTBEFORE/SENTON/SENTSINCE), or nullopt when unparseable.
std::optional<int64_t> sent_day(std::string_view date_value);

}  // namespace basalt::store::imap
