#include "backend/imap_section.h"

#include <algorithm>
#include <strings.h>

#include "indexer/imap_quote.h"
#include "indexer/message_summary.h"

namespace basalt::store::imap {

namespace {

using index::MimePart;

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

bool is_atom(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f && std::string_view("(){%*\"\\]").find(c) == std::string_view::npos;
  });
}

// The part a section number names (see the header), or null. Dovecot's walk: a multipart
// picks its child; anything else takes only 1, and only a message/rfc822 part may be
// followed by more numbers, which then count inside the enclosed message.
const MimePart* find_part(const MimePart& root, const std::vector<uint32_t>& path) {
  const MimePart* part = &root;
  for (size_t i = 0; i < path.size() && part; ++i) {
    uint32_t n = path[i];
    bool more = i + 1 < path.size();
    if (part->flags & MimePart::kMultipart) {
      part = n >= 1 && n <= part->children.size() ? &part->children[n - 1] : nullptr;
    } else if (n != 1 || (more && !(part->flags & MimePart::kMessage))) {
      part = nullptr;
    }
    if (part && more && (part->flags & MimePart::kMessage)) {
      part = part->children.empty() ? nullptr : &part->children[0];
    }
  }
  return part;
}

std::string_view slice(std::string_view raw, size_t begin, size_t end) {
  end = std::min(end, raw.size());
  return begin >= end ? std::string_view{} : raw.substr(begin, end - begin);
}

// The end of a part's body: the root's runs to the end of the message.
size_t body_end(std::string_view raw, const MimePart& root, const MimePart& part) {
  return &part == &root ? raw.size() : part.body_end;
}

// Where a part's header ends as Dovecot counts it: when the body is empty and a boundary
// follows, the blank line's line end belongs to the boundary; a header cut short by a
// boundary keeps its last line end.
size_t header_end(std::string_view raw, const MimePart& part) {
  size_t end = part.body_begin;
  if (part.body_end != part.body_begin || end >= raw.size()) return end;
  std::string_view rest = raw.substr(end);
  if (rest.starts_with("--") && end > part.header_begin && raw[end - 1] == '\n') {
    return end - (end - part.header_begin >= 2 && raw[end - 2] == '\r' ? 2 : 1);
  }
  bool cut_short = end > part.header_begin && raw[end - 1] != '\n';  // no blank line before the boundary
  if (cut_short && rest.starts_with("\r\n--")) return end + 2;
  if (cut_short && rest.starts_with("\n--")) return end + 1;
  return end;
}

// The end of a part's body as Dovecot counts it: a multipart whose last child's header was
// cut short by a boundary keeps that header's line end.
size_t part_body_end(std::string_view raw, const MimePart& root, const MimePart& part) {
  size_t end = body_end(raw, root, part);
  if (!(part.flags & MimePart::kMultipart) || part.children.empty()) return end;
  const MimePart& last = part.children.back();
  return std::max(end, last.body_end == last.body_begin ? header_end(raw, last) : part_body_end(raw, root, last));
}

std::optional<std::string> message_section(std::string_view raw, const MimePart& root, const MimePart& msg,
                                           const Section& section) {
  std::string_view header = slice(raw, msg.header_begin, &msg == &root ? msg.body_begin : header_end(raw, msg));
  switch (section.text) {
    case SectionText::kHeader: return imap_text(header);
    case SectionText::kHeaderFields: return filter_header_fields(header, section.fields, false);
    case SectionText::kHeaderFieldsNot: return filter_header_fields(header, section.fields, true);
    case SectionText::kText: return imap_text(slice(raw, msg.body_begin, body_end(raw, root, msg)));
    case SectionText::kNone:
    case SectionText::kMime: break;
  }
  return std::nullopt;  // not a message-text section
}

}  // namespace

std::string imap_text(std::string_view raw) {
  std::string out;
  out.reserve(raw.size() + raw.size() / 32);
  for (size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (c == '\n' && (i == 0 || raw[i - 1] != '\r')) out.push_back('\r');
    out.push_back(c == '\0' ? '\x80' : c);
  }
  return out;
}

MimePart parse_parts(std::string_view raw) {
  index::EnvelopeBuilder envelope;
  return index::parse_mime_structure(raw, envelope);
}

std::optional<std::string> extract_section(std::string_view raw, const Section& section) {
  return extract_section(raw, parse_parts(raw), section);
}

std::optional<std::string> extract_section(std::string_view raw, const MimePart& root, const Section& section) {
  const MimePart* node = section.part.empty() ? &root : find_part(root, section.part);
  if (!node) return std::nullopt;
  switch (section.text) {
    case SectionText::kNone:
      if (section.part.empty()) return imap_text(raw);
      return imap_text(slice(raw, node->body_begin, part_body_end(raw, root, *node)));
    case SectionText::kMime:
      return imap_text(slice(raw, node->header_begin, node == &root ? node->body_begin : header_end(raw, *node)));
    case SectionText::kHeader:
    case SectionText::kHeaderFields:
    case SectionText::kHeaderFieldsNot:
    case SectionText::kText: break;
  }
  if (section.part.empty()) return message_section(raw, root, root, section);
  // After a part number these name the enclosed message of a message/rfc822 part.
  if (!(node->flags & MimePart::kMessage) || node->children.empty()) return std::nullopt;
  return message_section(raw, root, node->children[0], section);
}

bool for_each_header_field(std::string_view header,
                           const std::function<void(std::string_view name, std::string_view field)>& fn) {
  auto line_after = [header](size_t pos) {
    size_t lf = header.find('\n', pos);
    return lf == std::string_view::npos ? header.size() : lf + 1;
  };
  for (size_t pos = 0; pos < header.size();) {
    size_t start = pos;
    pos = line_after(pos);
    std::string_view first = header.substr(start, pos - start);
    if (first == "\n" || first == "\r\n") return true;  // the blank line that ends the header
    while (pos < header.size() && is_wsp(header[pos])) pos = line_after(pos);
    // A line without a colon is all name (Dovecot's header filter), so .NOT keeps it.
    std::string_view name = is_wsp(first[0]) ? std::string_view{} : first.substr(0, first.find(':'));
    while (!name.empty() && (is_wsp(name.back()) || name.back() == '\r' || name.back() == '\n')) name.remove_suffix(1);
    fn(name, header.substr(start, pos - start));
  }
  return false;
}

std::string filter_header_fields(std::string_view header, const std::vector<std::string>& names, bool exclude) {
  std::string kept;
  bool ended = for_each_header_field(header, [&](std::string_view name, std::string_view field) {
    if (name.empty()) return;
    bool listed = std::any_of(names.begin(), names.end(), [&](const std::string& n) { return iequals(n, name); });
    if (listed == exclude) return;
    kept.append(field);
    if (field.back() != '\n') kept.append("\r\n");  // a header cut off without a line end
  });
  // As Dovecot: HEADER.FIELDS always ends with a blank line, .NOT only if the header had one.
  if (ended || !exclude) kept.append("\r\n");
  return imap_text(kept);
}

std::string section_label(const Section& section) {
  std::string out;
  for (size_t i = 0; i < section.part.size(); ++i) out += (i ? "." : "") + std::to_string(section.part[i]);
  const char* text = nullptr;
  switch (section.text) {
    case SectionText::kNone: return out;
    case SectionText::kHeader: text = "HEADER"; break;
    case SectionText::kHeaderFields: text = "HEADER.FIELDS"; break;
    case SectionText::kHeaderFieldsNot: text = "HEADER.FIELDS.NOT"; break;
    case SectionText::kText: text = "TEXT"; break;
    case SectionText::kMime: text = "MIME"; break;
  }
  if (!out.empty()) out += '.';
  out += text;
  if (section.text != SectionText::kHeaderFields && section.text != SectionText::kHeaderFieldsNot) return out;
  out += " (";
  for (size_t i = 0; i < section.fields.size(); ++i) {
    if (i) out += ' ';
    std::string upper = section.fields[i];
    for (char& c : upper) c = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
    if (is_atom(upper)) {
      out += upper;
    } else {
      index::imap::append_string(out, upper);
    }
  }
  return out + ")";
}

}  // namespace basalt::store::imap
