#include "indexer/message_summary.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <strings.h>

namespace basalt::index {
namespace {

// RFC 2046 allows 70 characters; longer boundaries are cut (and still match as prefixes).
constexpr size_t kMaxBoundary = 80;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

class StructureParser {
 public:
  StructureParser(std::string_view raw, const SummaryLimits& limits) : s_(raw), limits_(limits) {}

  void parse(MimePart& root, EnvelopeBuilder& envelope) {
    root.header_begin = 0;
    parse_part(root, nullptr, 0, &envelope);
  }

 private:
  struct Boundary {
    std::string text;
  };
  // A boundary line found at line_begin; `cut` is where the parts it closes end (the
  // [CR]LF before a boundary line belongs to the boundary, RFC 2046 §5.1.1).
  struct Hit {
    size_t index;
    size_t line_begin;
    size_t cut;
    bool closing;  // "--boundary--"
  };

  size_t line_end(size_t from) const {
    size_t lf = s_.find('\n', from);
    return lf == std::string_view::npos ? s_.size() : lf;
  }

  // The boundary that the line at `pos` opens, the longest match winning (only a prefix of
  // the line has to match, and nested parts may reuse a prefix of an outer boundary).
  std::optional<Hit> match_boundary(size_t pos) const {
    if (boundaries_.empty() || pos + 2 > s_.size() || s_[pos] != '-' || s_[pos + 1] != '-') return {};
    std::string_view rest = s_.substr(pos + 2);
    std::optional<size_t> best;
    for (size_t i = boundaries_.size(); i-- > 0;) {
      const std::string& b = boundaries_[i].text;
      if (rest.substr(0, b.size()) == b && (!best || boundaries_[*best].text.size() < b.size())) best = i;
    }
    if (!best) return {};
    size_t len = boundaries_[*best].text.size();
    bool closing = rest.size() >= len + 2 && rest.substr(len, 2) == "--";
    return Hit{*best, pos, pos, closing};
  }

  size_t newline_before(size_t pos) const {
    if (pos == 0 || s_[pos - 1] != '\n') return 0;
    return pos >= 2 && s_[pos - 2] == '\r' ? 2 : 1;
  }

  // Finds the next boundary line from `from` (a line start, the first line of a body).
  std::optional<Hit> scan(size_t from) const {
    if (boundaries_.empty()) return {};
    for (size_t p = from; p < s_.size();) {
      if (auto hit = match_boundary(p)) {
        if (p != from) hit->cut = p - newline_before(p);
        return hit;
      }
      size_t end = line_end(p);
      if (end >= s_.size()) break;
      p = end + 1;
    }
    return {};
  }

  void parse_part(MimePart& part, const MimePart* parent, unsigned depth, EnvelopeBuilder* env);
  enum class HeaderEnd { kBlankLine, kEndOfInput, kBoundary };
  HeaderEnd parse_header(MimePart& part, EnvelopeBuilder* env);
  void finish_header(MimePart& part, const MimePart* parent);
  void parse_multipart_body(MimePart& part, unsigned depth);
  std::string_view field_name(size_t begin, size_t end, size_t* value_begin) const;

  std::string_view s_;
  SummaryLimits limits_;
  std::vector<Boundary> boundaries_;
  std::optional<Hit> pending_;  // the boundary that ended the innermost part, until its owner takes it
  size_t parts_ = 0;
};

// Name of the field whose first line is s_[begin, end); sets *value_begin after the colon
// and the white space that follows it. A line without a colon is all name, no value.
std::string_view StructureParser::field_name(size_t begin, size_t end, size_t* value_begin) const {
  std::string_view line = s_.substr(begin, end - begin);
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    *value_begin = end;
    return line;
  }
  size_t v = colon + 1;
  while (v < line.size() && is_wsp(line[v])) ++v;
  if (v == line.size() && colon + 1 < line.size()) v = colon + 2;  // all blank: drop only one
  *value_begin = begin + v;
  size_t name_end = colon;
  while (name_end > 0 && is_wsp(line[name_end - 1])) --name_end;
  return line.substr(0, name_end);
}

// Reads header fields until the blank line, the end of input, or a boundary line of an
// enclosing multipart (then the part ends there and pending_ is set).
StructureParser::HeaderEnd StructureParser::parse_header(MimePart& part, EnvelopeBuilder* env) {
  size_t p = part.header_begin;
  size_t last_newline = 0;  // length of the [CR]LF that ended the previous line
  while (p < s_.size()) {
    if (auto hit = match_boundary(p)) {
      hit->cut = p - last_newline;
      part.body_begin = hit->cut;
      pending_ = hit;
      return HeaderEnd::kBoundary;
    }
    if (s_[p] == '\n' || (s_[p] == '\r' && p + 1 < s_.size() && s_[p + 1] == '\n')) {
      part.body_begin = p + (s_[p] == '\n' ? 1 : 2);
      return HeaderEnd::kBlankLine;
    }
    size_t end = line_end(p), value_begin = 0;
    std::string_view name = field_name(p, end > p && s_[end - 1] == '\r' ? end - 1 : end, &value_begin);
    size_t first_end = end > value_begin && s_[end - 1] == '\r' ? end - 1 : std::max(end, value_begin);
    std::string value(s_.substr(value_begin, first_end - value_begin));
    // Folded lines: joined with "\n", their own leading white space kept (RFC 5322 §2.2.3).
    while (end < s_.size() && end + 1 < s_.size() && is_wsp(s_[end + 1])) {
      size_t next = end + 1;
      end = line_end(next);
      size_t stop = end > next && s_[end - 1] == '\r' ? end - 1 : end;
      value.push_back('\n');
      value.append(s_.substr(next, stop - next));
    }
    last_newline = end < s_.size() ? (end > 0 && s_[end - 1] == '\r' ? 2 : 1) : 0;
    p = end < s_.size() ? end + 1 : s_.size();
    if (iequals(name, "MIME-Version") || iequals(name, "Content-Type")) part.flags |= MimePart::kIsMime;
    part.content.add_field(name, value);
    if (env) env->add_field(name, value);
  }
  part.body_begin = s_.size();
  return HeaderEnd::kEndOfInput;
}

// Applies the MIME rules that need the whole header (RFC 2045 §4, §5.2; RFC 2046 §5.1.5).
void StructureParser::finish_header(MimePart& part, const MimePart* parent) {
  if (!(part.flags & MimePart::kIsMime)) {
    // Without MIME-Version (or Content-Type) the Content-* fields mean nothing.
    part.flags = 0;
    part.content = ContentFields{};
  }
  const ContentFields& c = part.content;
  if (c.type) {
    if (iequals(*c.type, "message") && c.subtype && iequals(*c.subtype, "rfc822")) {
      part.flags |= MimePart::kMessage;
    } else if (iequals(*c.type, "text")) {
      part.flags |= MimePart::kText;
    } else if (iequals(*c.type, "multipart") && c.subtype) {
      part.flags |= MimePart::kMultipart;
      if (iequals(*c.subtype, "digest")) part.flags |= MimePart::kDigest;
    }
  } else if (parent && (parent->flags & MimePart::kDigest)) {
    part.flags |= MimePart::kMessage;
  } else {
    part.flags |= MimePart::kText;
  }
}

void StructureParser::parse_multipart_body(MimePart& part, unsigned depth) {
  std::optional<std::string> boundary;
  for (const auto& [name, value] : part.content.type_params) {
    if (iequals(name, "boundary")) {
      boundary = value.substr(0, kMaxBoundary);
      break;
    }
  }
  if (!boundary) {
    pending_ = scan(part.body_begin);  // no children: BODYSTRUCTURE gets an empty text/plain
    return;
  }
  boundaries_.push_back({*boundary});
  const size_t mine = boundaries_.size() - 1;
  pending_ = scan(part.body_begin);
  while (pending_ && pending_->index == mine) {
    Hit hit = *pending_;
    pending_.reset();
    boundaries_.resize(mine + 1);  // boundaries of parts that were not closed are forgotten
    size_t end = line_end(hit.line_begin);
    if (hit.closing) {
      boundaries_.pop_back();
      if (end < s_.size()) pending_ = scan(end + 1);  // the epilogue runs to an outer boundary
      return;
    }
    if (end >= s_.size()) break;  // a boundary line at the very end opens no part
    MimePart& child = part.children.emplace_back();
    child.flags = MimePart::kIsMime;
    child.header_begin = end + 1;
    parse_part(child, &part, depth + 1, nullptr);
  }
  if (pending_) boundaries_.resize(pending_->index + 1);
  else boundaries_.resize(mine);
}

void StructureParser::parse_part(MimePart& part, const MimePart* parent, unsigned depth,
                                 EnvelopeBuilder* env) {
  ++parts_;
  HeaderEnd header_end = parse_header(part, env);
  finish_header(part, parent);
  bool can_nest = depth + 1 < limits_.max_depth && parts_ < limits_.max_parts;
  if (header_end == HeaderEnd::kBoundary) {
    // Cut by a boundary: no body. pending_ already names the boundary.
  } else if ((part.flags & MimePart::kMultipart) && can_nest && header_end == HeaderEnd::kBlankLine) {
    // Only a header that ended properly starts a multipart body (as in Dovecot).
    parse_multipart_body(part, depth);
  } else if ((part.flags & MimePart::kMessage) && can_nest) {
    MimePart& child = part.children.emplace_back();
    child.header_begin = part.body_begin;
    child.envelope = std::make_unique<EnvelopeBuilder>();
    parse_part(child, &part, depth + 1, child.envelope.get());
  } else {
    if (!can_nest) part.flags &= ~MimePart::kMessage;
    pending_ = scan(part.body_begin);
  }
  part.body_end = pending_ ? std::max(pending_->cut, part.body_begin) : s_.size();
  part.body_size = imap_octets(s_, part.body_begin, part.body_end);
  part.body_lines = static_cast<uint64_t>(
      std::count(s_.begin() + part.body_begin, s_.begin() + part.body_end, '\n'));
}

// Dovecot sends a lone text/plain part that only says what the defaults say (us-ascii,
// 7bit) in the defaults' spelling; values are case-insensitive, so both are correct, and
// matching keeps cached BODYSTRUCTUREs of moved mailboxes byte-identical.
void canonicalize_plain_7bit(MimePart& root) {
  const ContentFields& c = root.content;
  if (!(root.flags & MimePart::kText) || !root.children.empty()) return;
  if (c.type && (!c.subtype || !iequals(*c.subtype, "plain"))) return;
  if (c.type_params.size() > 1) return;
  if (c.type_params.size() == 1 &&
      (!iequals(c.type_params[0].first, "charset") || !iequals(c.type_params[0].second, "us-ascii"))) {
    return;
  }
  if (c.id || c.description || c.md5 || c.disposition || !c.language.empty() || c.location) return;
  if (c.transfer_encoding && !iequals(*c.transfer_encoding, "7bit")) return;
  root.content = ContentFields{};  // written as the defaults
}

}  // namespace

uint64_t imap_octets(std::string_view raw, size_t begin, size_t end) {
  uint64_t n = end - begin;
  for (size_t i = begin; i < end; ++i) {
    if (raw[i] == '\n' && (i == 0 || raw[i - 1] != '\r')) ++n;
  }
  return n;
}

std::string crlf_normalize(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 32);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) out.push_back('\r');
    out.push_back(text[i]);
  }
  return out;
}

MimePart parse_mime_structure(std::string_view raw, EnvelopeBuilder& envelope, const SummaryLimits& limits) {
  MimePart root;
  StructureParser(raw, limits).parse(root, envelope);
  return root;
}

Result<MessageSummary> summarize_message(std::string_view raw, const SummaryLimits& limits) {
  if (raw.size() > UINT32_MAX) return make_error("message larger than 4 GiB");
  EnvelopeBuilder envelope;
  MimePart root = parse_mime_structure(raw, envelope, limits);
  canonicalize_plain_7bit(root);
  MessageSummary out;
  out.header = crlf_normalize(raw.substr(0, root.body_begin));
  out.envelope = envelope.write();
  out.bodystructure = write_bodystructure(root, true);
  out.body = write_bodystructure(root, false);
  out.size = imap_octets(raw, 0, raw.size());
  out.raw_size = raw.size();
  return out;
}

}  // namespace basalt::index
