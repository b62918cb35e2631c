#include "backend/imap_fetch_local.h"

#include <charconv>

#include "backend/imap_args.h"

namespace basalt::store::local {

namespace {

using Kind = FetchItem::Kind;

std::optional<std::pair<uint64_t, uint64_t>> parse_partial(std::string_view t) {
  // "<offset.length>"
  if (t.size() < 5 || t.front() != '<' || t.back() != '>') return std::nullopt;
  t = t.substr(1, t.size() - 2);
  size_t dot = t.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  uint64_t a = 0, b = 0;
  auto r1 = std::from_chars(t.data(), t.data() + dot, a);
  auto r2 = std::from_chars(t.data() + dot + 1, t.data() + t.size(), b);
  if (r1.ptr != t.data() + dot || r2.ptr != t.data() + t.size() || b == 0) return std::nullopt;
  return std::make_pair(a, b);
}

// "BODY[...]<...>" / "BODY.PEEK[...]" with the section text as one atom.
std::optional<FetchItem> parse_section(const std::string& atom) {
  std::string up = ascii_upper(atom);
  FetchItem it;
  it.kind = Kind::kSection;
  size_t open = up.find('['), close = up.rfind(']');
  if (open == std::string::npos || close == std::string::npos || close < open) return std::nullopt;
  std::string head = up.substr(0, open);
  if (head != "BODY" && head != "BODY.PEEK") return std::nullopt;
  it.peek = head == "BODY.PEEK";
  std::string sec = up.substr(open + 1, close - open - 1);
  std::string tail = atom.substr(close + 1);
  if (!tail.empty()) {
    it.partial = parse_partial(tail);
    if (!it.partial) return std::nullopt;
  }
  size_t paren = sec.find(" (");
  it.section = sec.substr(0, paren);
  if (it.section == "HEADER.FIELDS" || it.section == "HEADER.FIELDS.NOT") {
    if (paren == std::string::npos || sec.back() != ')') return std::nullopt;
    std::string list = sec.substr(paren + 2, sec.size() - paren - 3);
    for (size_t p = 0; p <= list.size();) {
      size_t sp = list.find(' ', p);
      std::string f = list.substr(p, sp == std::string::npos ? std::string::npos : sp - p);
      if (!f.empty()) it.fields.push_back(f);
      if (sp == std::string::npos) break;
      p = sp + 1;
    }
    if (it.fields.empty()) return std::nullopt;
  } else if (it.section != "" && it.section != "HEADER" && it.section != "TEXT") {
    return std::nullopt;
  }
  it.name = "BODY[" + sec + "]";
  return it;
}

std::optional<FetchItem> parse_item(const std::string& atom) {
  std::string up = ascii_upper(atom);
  static const std::pair<std::string_view, Kind> kSimple[] = {
      {"FLAGS", Kind::kFlags},       {"UID", Kind::kUid},
      {"INTERNALDATE", Kind::kInternalDate}, {"RFC822.SIZE", Kind::kSize},
      {"ENVELOPE", Kind::kEnvelope}, {"BODYSTRUCTURE", Kind::kBodyStructure},
      {"BODY", Kind::kBody}};
  for (const auto& [name, kind] : kSimple) {
    if (up == name) return FetchItem{kind, {}, {}, {}, false, {}};
  }
  if (up == "RFC822") return FetchItem{Kind::kSection, "RFC822", "", {}, false, {}};
  if (up == "RFC822.HEADER") return FetchItem{Kind::kSection, "RFC822.HEADER", "HEADER", {}, true, {}};
  if (up == "RFC822.TEXT") return FetchItem{Kind::kSection, "RFC822.TEXT", "TEXT", {}, false, {}};
  return parse_section(atom);
}

bool add_items(FetchRequest& req, const basalt::imap::Arg& arg) {
  std::vector<std::string> names;
  if (arg.kind == basalt::imap::ArgKind::kList) {
    for (const basalt::imap::Arg& a : arg.items) {
      if (a.kind != basalt::imap::ArgKind::kAtom) return false;
      names.push_back(a.text);
    }
  } else if (arg.kind == basalt::imap::ArgKind::kAtom) {
    std::string up = ascii_upper(arg.text);
    if (up == "ALL") names = {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"};
    else if (up == "FAST") names = {"FLAGS", "INTERNALDATE", "RFC822.SIZE"};
    else if (up == "FULL") names = {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"};
    else names = {arg.text};
  } else {
    return false;
  }
  for (const std::string& n : names) {
    auto item = parse_item(n);
    if (!item) return false;
    req.items.push_back(std::move(*item));
  }
  return true;
}

bool field_listed(std::string_view line, const std::vector<std::string>& fields) {
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return false;
  std::string_view name = line.substr(0, colon);
  while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
  for (const std::string& f : fields) {
    if (iequals(f, name)) return true;
  }
  return false;
}

// The header fields (with their continuation lines) named, or not named, in `fields`.
std::string header_fields(std::string_view header, const std::vector<std::string>& fields, bool negate) {
  std::string out;
  bool keep = false;
  for (size_t p = 0; p < header.size();) {
    size_t eol = header.find('\n', p);
    size_t end = eol == std::string_view::npos ? header.size() : eol + 1;
    std::string_view line = header.substr(p, end - p);
    p = end;
    if (line == "\r\n" || line == "\n") break;
    if (line[0] != ' ' && line[0] != '\t') keep = field_listed(line, fields) != negate;
    if (keep) out.append(line);
  }
  return out + "\r\n";
}

std::string section_data(const FetchItem& it, const index::CachedMessage& c, const std::string* raw) {
  const std::string& header = c.summary.header;
  if (it.section == "HEADER") return header;
  if (it.section == "HEADER.FIELDS") return header_fields(header, it.fields, false);
  if (it.section == "HEADER.FIELDS.NOT") return header_fields(header, it.fields, true);
  if (!raw) return {};
  if (it.section == "TEXT") return raw->size() > header.size() ? raw->substr(header.size()) : std::string();
  return *raw;
}

void append_section(std::string& out, const FetchItem& it, const index::CachedMessage& c, const std::string* raw) {
  std::string data = section_data(it, c, raw);
  std::string name = it.name;
  if (it.partial) {
    auto [offset, length] = *it.partial;
    data = offset >= data.size() ? std::string() : data.substr(offset, length);
    name += "<" + std::to_string(offset) + ">";
  }
  out += name + " {" + std::to_string(data.size()) + "}\r\n" + data;
}

}  // namespace

std::optional<FetchRequest> parse_fetch(const std::vector<basalt::imap::Arg>& args, bool uid) {
  FetchRequest req;
  if (args.size() != 1 || !add_items(req, args[0])) return std::nullopt;
  bool has_uid = false;
  for (const FetchItem& it : req.items) {
    has_uid |= it.kind == Kind::kUid;
    req.has_flags |= it.kind == Kind::kFlags;
    if (it.kind != Kind::kSection) continue;
    req.sets_seen |= !it.peek;
    req.needs_body |= it.section == "" || it.section == "TEXT";
  }
  if (uid && !has_uid) req.items.insert(req.items.begin(), FetchItem{Kind::kUid, {}, {}, {}, false, {}});
  return req;
}

std::string render_fetch(const FetchRequest& req, size_t seq, const ViewMessage& m,
                         const index::CachedMessage& cached, const std::string* raw, bool add_flags) {
  std::string out = "* " + std::to_string(seq) + " FETCH (";
  size_t start = out.size();
  auto sep = [&] {
    if (out.size() > start) out += ' ';
  };
  const MessageMeta& meta = m.meta;
  for (const FetchItem& it : req.items) {
    sep();
    switch (it.kind) {
      case Kind::kFlags: out += "FLAGS (" + format_flags(meta.flags, meta.keywords, m.recent) + ")"; break;
      case Kind::kUid: out += "UID " + std::to_string(meta.uid); break;
      case Kind::kInternalDate:
        out += "INTERNALDATE " + format_date_time(meta.internal_date, cached.internal_date.tz_offset_minutes);
        break;
      case Kind::kSize: out += "RFC822.SIZE " + std::to_string(cached.summary.size); break;
      case Kind::kEnvelope: out += "ENVELOPE " + cached.summary.envelope; break;
      case Kind::kBodyStructure: out += "BODYSTRUCTURE " + cached.summary.bodystructure; break;
      case Kind::kBody: out += "BODY " + cached.summary.body; break;
      case Kind::kSection: append_section(out, it, cached, raw); break;
    }
  }
  if (add_flags) {
    sep();
    out += "FLAGS (" + format_flags(meta.flags, meta.keywords, m.recent) + ")";
  }
  return out + ")\r\n";
}

}  // namespace basalt::store::local
