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

// The part a section number names (see the header), or null.
const MimePart* find_part(const MimePart& root, const std::vector<uint32_t>& path) {
  const MimePart* node = nullptr;
  for (uint32_t n : path) {
    const MimePart* base = &root;
    if (node) {
      base = node;
      if ((node->flags & MimePart::kMessage) && !node->children.empty()) {
        base = &node->children[0];  // numbers after a message/rfc822 part count in the enclosed message
      } else if (!(node->flags & MimePart::kMultipart)) {
        return nullptr;  // a leaf has no sub-parts
      }
    }
    if (base->flags & MimePart::kMultipart) {
      if (n == 0 || n > base->children.size()) return nullptr;
      node = &base->children[n - 1];
    } else {
      if (n != 1) return nullptr;
      node = base;  // a non-multipart message's part 1 is its body
    }
  }
  return node;
}

std::string_view slice(std::string_view raw, size_t begin, size_t end) {
  end = std::min(end, raw.size());
  return begin >= end ? std::string_view{} : raw.substr(begin, end - begin);
}

// The end of a part's body: the root's runs to the end of the message.
size_t body_end(std::string_view raw, const MimePart& root, const MimePart& part) {
  return &part == &root ? raw.size() : part.body_end;
}

std::optional<std::string> message_section(std::string_view raw, const MimePart& root, const MimePart& msg,
                                           const Section& section) {
  std::string_view header = slice(raw, msg.header_begin, msg.body_begin);
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

std::optional<std::string> extract_section(std::string_view raw, const Section& section) {
  index::EnvelopeBuilder envelope;
  MimePart root = index::parse_mime_structure(raw, envelope);
  const MimePart* node = section.part.empty() ? &root : find_part(root, section.part);
  if (!node) return std::nullopt;
  switch (section.text) {
    case SectionText::kNone:
      if (section.part.empty()) return imap_text(raw);
      return imap_text(slice(raw, node->body_begin, body_end(raw, root, *node)));
    case SectionText::kMime: return imap_text(slice(raw, node->header_begin, node->body_begin));
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

void for_each_header_field(std::string_view header,
                           const std::function<void(std::string_view name, std::string_view field)>& fn) {
  auto line_after = [header](size_t pos) {
    size_t lf = header.find('\n', pos);
    return lf == std::string_view::npos ? header.size() : lf + 1;
  };
  for (size_t pos = 0; pos < header.size();) {
    size_t start = pos;
    pos = line_after(pos);
    std::string_view first = header.substr(start, pos - start);
    if (first == "\n" || first == "\r\n") return;  // the blank line that ends the header
    while (pos < header.size() && is_wsp(header[pos])) pos = line_after(pos);
    size_t colon = first.find(':');
    std::string_view name = is_wsp(first[0]) || colon == std::string_view::npos ? std::string_view{} : first.substr(0, colon);
    while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
    fn(name, header.substr(start, pos - start));
  }
}

std::string filter_header_fields(std::string_view header, const std::vector<std::string>& names, bool exclude) {
  std::string kept;
  for_each_header_field(header, [&](std::string_view name, std::string_view field) {
    if (name.empty()) return;
    bool listed = std::any_of(names.begin(), names.end(), [&](const std::string& n) { return iequals(n, name); });
    if (listed == exclude) return;
    kept.append(field);
    if (field.back() != '\n') kept.append("\r\n");  // a header cut off without a line end
  });
  kept.append("\r\n");
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
