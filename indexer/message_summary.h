// The message summary that IMAP header fetches are served from: the raw header block and
// precomputed ENVELOPE, BODYSTRUCTURE and BODY, so FETCH ENVELOPE / BODYSTRUCTURE /
// BODY.PEEK[HEADER] / RFC822.SIZE never read the message body off the spool.
//
// The MIME structure is found the way Dovecot finds it (same boundary, header and default
// rules), because Basalt takes over mailboxes from Dovecot shards with their UIDs: a client
// that cached BODYSTRUCTURE and part numbers must see the same structure afterwards. The
// known differences are listed in docs/compliance-envelope.md.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"
#include "indexer/bodystructure.h"

namespace basalt::index {

struct MessageSummary {
  // The header block including the blank line that ends it, with bare LFs sent as CRLF:
  // exactly what BODY[HEADER] returns.
  std::string header;
  std::string envelope;       // ENVELOPE s-expression, with the outer parentheses
  std::string bodystructure;  // BODYSTRUCTURE (extensible form)
  std::string body;           // BODY (non-extensible form)
  // RFC822.SIZE: the message as sent over IMAP, every bare LF counted as CRLF. The store
  // must serve BODY[] / RFC822 with the same LF -> CRLF rule so the sizes agree.
  uint64_t size = 0;
  uint64_t raw_size = 0;  // bytes as stored (spool), for accounting
};

// Limits that keep a hostile message from costing unbounded time or stack.
struct SummaryLimits {
  unsigned max_depth = 100;     // nesting deeper than this is treated as a leaf (Dovecot: 100)
  unsigned max_parts = 10000;   // parts beyond this are not split further (Dovecot: 10000)
};

// Summarizes raw RFC 5322 bytes (any line ending). Never fails on malformed MIME: broken
// input gets the best structure that can be read. Errors only for inputs over 4 GiB.
Result<MessageSummary> summarize_message(std::string_view raw, const SummaryLimits& limits = {});

// The parsed part tree (for the store's BODY[part] offsets and for tests). `envelope`
// receives the top-level message's ENVELOPE fields.
MimePart parse_mime_structure(std::string_view raw, EnvelopeBuilder& envelope,
                              const SummaryLimits& limits = {});

// Octets as sent over IMAP for raw[begin, end): bare LFs count as CRLF.
uint64_t imap_octets(std::string_view raw, size_t begin, size_t end);

// `text` with every LF that is not preceded by CR turned into CRLF.
std::string crlf_normalize(std::string_view text);

}  // namespace basalt::index
