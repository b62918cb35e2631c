#include "backend/imap_fetch.h"

#include <algorithm>
#include <array>
#include <strings.h>
#include <utility>

#include "backend/mailbox_state.h"

namespace basalt::store::imap {

namespace {

using basalt::imap::Arg;
using basalt::imap::ArgKind;

constexpr const char* kInvalidAttribute = "invalid fetch attribute";
constexpr const char* kUnknownAttribute = "unknown fetch attribute";
constexpr const char* kInvalidSection = "invalid section";
constexpr const char* kInvalidPartial = "invalid partial";

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// A header-fld-name atom: ASTRING-CHARs (so "]" too, RFC 3501 §9).
bool is_astring_char(char c) {
  auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7f && std::string_view("(){%*\"\\").find(c) == std::string_view::npos;
}

struct NamedAtt {
  const char* name;
  FetchAtt att;
};
constexpr std::array<NamedAtt, 10> kSimpleAtts = {{
    {"FLAGS", FetchAtt::kFlags},
    {"UID", FetchAtt::kUid},
    {"INTERNALDATE", FetchAtt::kInternalDate},
    {"RFC822.SIZE", FetchAtt::kRfc822Size},
    {"ENVELOPE", FetchAtt::kEnvelope},
    {"BODYSTRUCTURE", FetchAtt::kBodyStructure},
    {"BODY", FetchAtt::kBody},
    {"RFC822", FetchAtt::kRfc822},
    {"RFC822.HEADER", FetchAtt::kRfc822Header},
    {"RFC822.TEXT", FetchAtt::kRfc822Text},
}};

// A cursor over one fetch-att atom, for the section and partial grammar.
class Cursor {
 public:
  explicit Cursor(std::string_view s, size_t pos) : s_(s), pos_(pos) {}
  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[pos_]; }
  bool eat(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  // number (nz: no leading zero, not 0) up to 2^32-1.
  std::optional<uint32_t> number(bool nz) {
    size_t start = pos_;
    uint64_t value = 0;
    while (is_digit(peek()) && value <= 4294967295u) value = value * 10 + static_cast<uint64_t>(s_[pos_++] - '0');
    if (pos_ == start || value > 4294967295u || (nz && (s_[start] == '0'))) return std::nullopt;
    return static_cast<uint32_t>(value);
  }
  std::string_view word() {
    size_t start = pos_;
    while (is_alpha(peek()) || peek() == '.') ++pos_;
    return s_.substr(start, pos_ - start);
  }
  bool astring(std::string& out);

 private:
  std::string_view s_;
  size_t pos_;
};

bool Cursor::astring(std::string& out) {
  if (!eat('"')) {
    size_t start = pos_;
    while (!at_end() && is_astring_char(s_[pos_])) ++pos_;
    out.assign(s_.substr(start, pos_ - start));
    return !out.empty();
  }
  for (;;) {  // the command parser already checked the quoted string's characters
    if (at_end()) return false;
    char c = s_[pos_++];
    if (c == '"') return !out.empty();
    if (c == '\\') {
      if (at_end()) return false;
      c = s_[pos_++];
    }
    out.push_back(c);
  }
}

// "(" header-fld-name *(SP header-fld-name) ")"
bool parse_field_list(Cursor& cur, std::vector<std::string>& fields) {
  if (!cur.eat(' ') || !cur.eat('(')) return false;
  do {
    std::string name;
    if (!cur.astring(name)) return false;
    fields.push_back(std::move(name));
  } while (cur.eat(' '));
  return cur.eat(')');
}

bool parse_section_text(Cursor& cur, Section& section) {
  std::string_view word = cur.word();
  if (iequals(word, "HEADER")) {
    section.text = SectionText::kHeader;
  } else if (iequals(word, "TEXT")) {
    section.text = SectionText::kText;
  } else if (iequals(word, "MIME") && !section.part.empty()) {
    section.text = SectionText::kMime;
  } else if (iequals(word, "HEADER.FIELDS") || iequals(word, "HEADER.FIELDS.NOT")) {
    section.text = word.size() == 13 ? SectionText::kHeaderFields : SectionText::kHeaderFieldsNot;
    return parse_field_list(cur, section.fields);
  } else {
    return false;
  }
  return true;
}

// section-spec after "[", up to and including "]".
bool parse_section(Cursor& cur, Section& section) {
  bool text_required = false;  // "1." must be followed by a section-text
  while (is_digit(cur.peek())) {
    auto n = cur.number(true);
    if (!n) return false;
    section.part.push_back(*n);
    if (!cur.eat('.')) break;
    if (!is_digit(cur.peek())) {
      text_required = true;
      break;
    }
  }
  if (cur.eat(']')) return !text_required;
  if (section.part.empty() == text_required) return false;  // "1HEADER"
  return parse_section_text(cur, section) && cur.eat(']');
}

// "<" number "." nz-number ">" at the end of the atom, or nothing.
bool parse_partial(Cursor& cur, std::optional<Partial>& partial) {
  if (cur.at_end()) return true;
  if (!cur.eat('<')) return false;
  auto origin = cur.number(false);
  if (!origin || !cur.eat('.')) return false;
  auto count = cur.number(true);
  if (!count || !cur.eat('>') || !cur.at_end()) return false;
  partial = Partial{*origin, *count};
  return true;
}

Result<FetchItem> parse_att(std::string_view text) {
  size_t bracket = text.find('[');
  if (bracket == std::string_view::npos) {
    for (const NamedAtt& a : kSimpleAtts) {
      if (iequals(text, a.name)) return FetchItem{a.att, false, {}, std::nullopt};
    }
    return make_error(kUnknownAttribute);
  }
  std::string_view name = text.substr(0, bracket);
  if (!iequals(name, "BODY") && !iequals(name, "BODY.PEEK")) return make_error(kUnknownAttribute);
  FetchItem item{FetchAtt::kBodySection, name.size() > 4, {}, std::nullopt};
  Cursor cur(text, bracket + 1);
  if (!parse_section(cur, item.section)) return make_error(kInvalidSection);
  if (!parse_partial(cur, item.partial)) return make_error(kInvalidPartial);
  return item;
}

std::optional<std::vector<FetchAtt>> macro(std::string_view text) {
  using enum FetchAtt;
  if (iequals(text, "ALL")) return std::vector{kFlags, kInternalDate, kRfc822Size, kEnvelope};
  if (iequals(text, "FAST")) return std::vector{kFlags, kInternalDate, kRfc822Size};
  if (iequals(text, "FULL")) return std::vector{kFlags, kInternalDate, kRfc822Size, kEnvelope, kBody};
  return std::nullopt;
}

bool header_only_section(const Section& section) {
  return section.part.empty() && (section.text == SectionText::kHeader || section.text == SectionText::kHeaderFields ||
                                  section.text == SectionText::kHeaderFieldsNot);
}

bool item_needs_body(const FetchItem& item) {
  switch (item.att) {
    case FetchAtt::kRfc822:
    case FetchAtt::kRfc822Text: return true;
    case FetchAtt::kBodySection: return !header_only_section(item.section);
    case FetchAtt::kFlags:
    case FetchAtt::kUid:
    case FetchAtt::kInternalDate:
    case FetchAtt::kRfc822Size:
    case FetchAtt::kEnvelope:
    case FetchAtt::kBodyStructure:
    case FetchAtt::kBody:
    case FetchAtt::kRfc822Header: return false;
  }
  return false;
}

bool item_needs_summary(const FetchItem& item) {
  switch (item.att) {
    case FetchAtt::kEnvelope:
    case FetchAtt::kBodyStructure:
    case FetchAtt::kBody:
    case FetchAtt::kRfc822Header: return true;
    case FetchAtt::kBodySection: return header_only_section(item.section);
    case FetchAtt::kFlags:
    case FetchAtt::kUid:
    case FetchAtt::kInternalDate:
    case FetchAtt::kRfc822Size:
    case FetchAtt::kRfc822:
    case FetchAtt::kRfc822Text: return false;
  }
  return false;
}

void append_literal(std::string& out, std::string_view data) {
  out += '{';
  out += std::to_string(data.size());
  out += "}\r\n";
  out += data;
}

// The message's MIME tree, parsed on first use: a FETCH of several sections of one message
// (BODY[1] BODY[2] BODY[2.MIME] ...) parses it once.
class Parts {
 public:
  explicit Parts(const FetchMessage& m) : raw_(m.raw) {}
  bool have_raw() const { return raw_.has_value(); }
  std::optional<std::string> section(const Section& section) {
    if (!tree_) tree_ = parse_parts(*raw_);
    return extract_section(*raw_, *tree_, section);
  }

 private:
  std::optional<std::string_view> raw_;
  std::optional<index::MimePart> tree_;
};

// The top-level header block, from the summary when there is one.
Result<std::string> header_block(const FetchMessage& m, Parts& parts, const Section& section) {
  if (m.summary) {
    switch (section.text) {
      case SectionText::kHeaderFields: return filter_header_fields(m.summary->header, section.fields, false);
      case SectionText::kHeaderFieldsNot: return filter_header_fields(m.summary->header, section.fields, true);
      case SectionText::kHeader:
      case SectionText::kNone:
      case SectionText::kText:
      case SectionText::kMime: return imap_text(m.summary->header);
    }
  }
  if (!parts.have_raw()) return make_error("fetch needs the message summary or body");
  auto text = parts.section(section);
  return text ? std::move(*text) : std::string();
}

// The section's data, nullopt for NIL.
Result<std::optional<std::string>> section_data(const FetchItem& item, const FetchMessage& m, Parts& parts) {
  if (header_only_section(item.section)) {
    auto header = header_block(m, parts, item.section);
    if (!header) return header.error();
    return std::optional<std::string>(std::move(*header));
  }
  if (!parts.have_raw()) return make_error("fetch needs the message body");
  return parts.section(item.section);
}

Result<void> render_section(const FetchItem& item, const FetchMessage& m, Parts& parts, std::string& out) {
  auto data = section_data(item, m, parts);
  if (!data) return data.error();
  out += "BODY[" + section_label(item.section) + "]";
  std::optional<std::string>& text = *data;
  if (item.partial) {
    out += '<' + std::to_string(item.partial->origin) + '>';
    if (text && item.partial->origin >= text->size()) text.reset();
    if (text) *text = text->substr(item.partial->origin, item.partial->count);
  }
  out += ' ';
  if (text && !text->empty()) {
    append_literal(out, *text);
  } else {
    out += "\"\"";  // no such part, or nothing left after the origin
  }
  return {};
}

Result<void> render_from_summary(const FetchItem& item, const FetchMessage& m, std::string& out) {
  if (!m.summary) return make_error("fetch needs the message summary");
  switch (item.att) {
    case FetchAtt::kEnvelope: out += "ENVELOPE " + m.summary->envelope; break;
    case FetchAtt::kBodyStructure: out += "BODYSTRUCTURE " + m.summary->bodystructure; break;
    case FetchAtt::kBody: out += "BODY " + m.summary->body; break;
    case FetchAtt::kRfc822Header:
      out += "RFC822.HEADER ";
      append_literal(out, imap_text(m.summary->header));
      break;
    case FetchAtt::kFlags:
    case FetchAtt::kUid:
    case FetchAtt::kInternalDate:
    case FetchAtt::kRfc822Size:
    case FetchAtt::kBodySection:
    case FetchAtt::kRfc822:
    case FetchAtt::kRfc822Text: break;
  }
  return {};
}

Result<void> render_from_raw(const FetchItem& item, const FetchMessage& m, Parts& parts, std::string& out) {
  if (!m.raw) return make_error("fetch needs the message body");
  if (item.att == FetchAtt::kRfc822) {
    out += "RFC822 ";
    append_literal(out, imap_text(*m.raw));
  } else {
    out += "RFC822.TEXT ";
    append_literal(out, parts.section(Section{{}, SectionText::kText, {}}).value_or(""));
  }
  return {};
}

Result<void> render_item(const FetchItem& item, const FetchMessage& m, Parts& parts, std::string& out) {
  switch (item.att) {
    case FetchAtt::kFlags: out += "FLAGS " + format_flags(m.flags, m.keywords, m.recent); break;
    case FetchAtt::kUid: out += "UID " + std::to_string(m.uid); break;
    case FetchAtt::kInternalDate: out += "INTERNALDATE \"" + format_date_time(m.internal_date) + '"'; break;
    case FetchAtt::kRfc822Size: out += "RFC822.SIZE " + std::to_string(m.size); break;
    case FetchAtt::kBodySection: return render_section(item, m, parts, out);
    case FetchAtt::kEnvelope:
    case FetchAtt::kBodyStructure:
    case FetchAtt::kBody:
    case FetchAtt::kRfc822Header: return render_from_summary(item, m, out);
    case FetchAtt::kRfc822:
    case FetchAtt::kRfc822Text: return render_from_raw(item, m, parts, out);
  }
  return {};
}

bool has_att(const FetchRequest& request, FetchAtt att) {
  return std::any_of(request.items.begin(), request.items.end(), [att](const FetchItem& i) { return i.att == att; });
}

}  // namespace

Result<FetchRequest> parse_fetch_items(const Arg& arg) {
  FetchRequest request;
  if (arg.kind == ArgKind::kAtom) {
    if (auto atts = macro(arg.text)) {
      for (FetchAtt att : *atts) request.items.push_back(FetchItem{att, false, {}, std::nullopt});
      return request;
    }
    auto item = parse_att(arg.text);
    if (!item) return item.error();
    request.items.push_back(std::move(*item));
    return request;
  }
  if (arg.kind != ArgKind::kList || arg.items.empty()) return make_error(kInvalidAttribute);
  for (const Arg& a : arg.items) {
    if (a.kind != ArgKind::kAtom || macro(a.text)) return make_error(kInvalidAttribute);
    auto item = parse_att(a.text);
    if (!item) return item.error();
    request.items.push_back(std::move(*item));
  }
  return request;
}

void ensure_uid(FetchRequest& request) {
  if (!has_att(request, FetchAtt::kUid)) request.items.insert(request.items.begin(), FetchItem{FetchAtt::kUid, false, {}, {}});
}

bool needs_body(const FetchRequest& request) {
  return std::any_of(request.items.begin(), request.items.end(), item_needs_body);
}

bool needs_summary(const FetchRequest& request) {
  return std::any_of(request.items.begin(), request.items.end(), item_needs_summary);
}

bool sets_seen(const FetchRequest& request) {
  return std::any_of(request.items.begin(), request.items.end(), [](const FetchItem& i) {
    return (i.att == FetchAtt::kBodySection && !i.peek) || i.att == FetchAtt::kRfc822 || i.att == FetchAtt::kRfc822Text;
  });
}

std::string format_flags(uint8_t flags, std::span<const std::string> keywords, bool recent) {
  static constexpr std::array<std::pair<uint8_t, const char*>, 5> kSystem = {{
      {kFlagSeen, "\\Seen"}, {kFlagAnswered, "\\Answered"}, {kFlagFlagged, "\\Flagged"},
      {kFlagDeleted, "\\Deleted"}, {kFlagDraft, "\\Draft"}}};
  std::string out = "(";
  auto add = [&out](std::string_view flag) {
    if (out.size() > 1) out += ' ';
    out += flag;
  };
  for (const auto& [bit, name] : kSystem) {
    if (flags & bit) add(name);
  }
  if (recent) add("\\Recent");
  for (const std::string& keyword : keywords) add(keyword);
  return out + ")";
}

Result<void> render_fetch(const FetchRequest& request, const FetchMessage& message, std::string& out) {
  size_t start = out.size();
  Parts parts(message);
  for (const FetchItem& item : request.items) {
    if (out.size() > start) out += ' ';
    if (auto r = render_item(item, message, parts, out); !r) return r;
  }
  if (message.flags_changed && !has_att(request, FetchAtt::kFlags)) {
    if (out.size() > start) out += ' ';
    out += "FLAGS " + format_flags(message.flags, message.keywords, message.recent);
  }
  return {};
}

}  // namespace basalt::store::imap
