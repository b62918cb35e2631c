// The MIME part tree of a message and its IMAP BODY / BODYSTRUCTURE (RFC 3501 §7.4.2).
//
// Sizes are IMAP sizes: the octets a client receives, where every bare LF is sent as CRLF
// (IMAP messages are CRLF text; Basalt's store sends bodies CRLF-normalized, as Dovecot
// does). Line counts are LF counts. Both come from byte offsets into the raw message.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "indexer/envelope.h"

namespace basalt::index {

// What the Content-* fields of one part say (all values raw, as sent).
struct ContentFields {
  std::optional<std::string> type, subtype;  // set once a Content-Type field was seen
  rfc822::Params type_params;
  std::optional<std::string> id, description, transfer_encoding, md5, location, disposition;
  rfc822::Params disposition_params;
  std::vector<std::string> language;

  // `name` is the full field name ("Content-Type"); non-Content-* fields are ignored.
  void add_field(std::string_view name, std::string_view value);
};

struct MimePart {
  enum Flag : uint32_t {
    kIsMime = 1,       // MIME-Version or Content-Type seen, or a child of a multipart
    kMultipart = 2,
    kMessage = 4,      // message/rfc822: exactly one child, the enclosed message
    kText = 8,
    kDigest = 16,      // multipart/digest: children default to message/rfc822
  };
  uint32_t flags = 0;
  ContentFields content;
  std::unique_ptr<EnvelopeBuilder> envelope;  // for the child of a message/rfc822 part

  // Byte offsets into the raw message: header [header_begin, body_begin), body up to body_end.
  size_t header_begin = 0, body_begin = 0, body_end = 0;
  uint64_t body_size = 0;   // IMAP octets (bare LF counted as CRLF)
  uint64_t body_lines = 0;  // LF count
  std::vector<MimePart> children;
};

// The part as a BODYSTRUCTURE (extended) or BODY, including the outer parentheses.
std::string write_bodystructure(const MimePart& part, bool extended);

}  // namespace basalt::index
