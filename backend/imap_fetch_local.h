// Stand-in for FETCH attribute parsing and rendering until backend/imap_fetch.h lands: FLAGS,
// UID, INTERNALDATE, RFC822.SIZE, ENVELOPE, BODYSTRUCTURE, BODY, RFC822[.HEADER|.TEXT], and
// BODY[.PEEK][section]<partial> for the sections "", HEADER, HEADER.FIELDS[.NOT] and TEXT.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "backend/imap_view.h"
#include "common/imap_parser.h"
#include "indexer/header_cache.h"

namespace basalt::store::local {

struct FetchItem {
  enum class Kind { kFlags, kUid, kInternalDate, kSize, kEnvelope, kBodyStructure, kBody, kSection };
  Kind kind = Kind::kFlags;
  // kSection:
  std::string name;     // as echoed: "BODY[HEADER]", "RFC822", "RFC822.HEADER", ...
  std::string section;  // "", "HEADER", "TEXT", "HEADER.FIELDS", "HEADER.FIELDS.NOT"
  std::vector<std::string> fields;
  bool peek = false;
  std::optional<std::pair<uint64_t, uint64_t>> partial;
};

struct FetchRequest {
  std::vector<FetchItem> items;
  bool needs_body = false;  // some item needs the message from the spool
  bool sets_seen = false;   // some item is a non-PEEK body section (RFC 3501 6.4.5)
  bool has_flags = false;
};

// args: the FETCH arguments after the sequence set. nullopt when malformed.
std::optional<FetchRequest> parse_fetch(const std::vector<basalt::imap::Arg>& args, bool uid);

// "* seq FETCH (...)\r\n". `raw` (CRLF-normalized) is needed only when needs_body.
std::string render_fetch(const FetchRequest& req, size_t seq, const ViewMessage& m,
                         const index::CachedMessage& cached, const std::string* raw, bool add_flags);

}  // namespace basalt::store::local
