#include "indexer/envelope.h"

#include <algorithm>
#include <cstring>
#include <strings.h>

#include "indexer/imap_quote.h"

namespace basalt::index {
namespace rfc822 {

bool is_atext(unsigned char c) {
  if (c >= 0x80) return true;
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return c != 0 && std::strchr("!#$%&'*+-/=?^_`{|}~", c) != nullptr;
}

namespace {

// MIME token characters (RFC 2045 §5.1): atext without the tspecials '/', '=' and '?'.
bool is_token_char(unsigned char c) { return is_atext(c) && c != '/' && c != '=' && c != '?'; }

// Appends s[from, to) with a trailing CR dropped: the (CR)LF of a folded line is removed.
void append_line_part(std::string& out, std::string_view s, size_t from, size_t to) {
  if (to > from && s[to - 1] == '\r') --to;
  out.append(s.substr(from, to - from));
}

}  // namespace

int Lexer::skip_comment() {
  if (last_comment_) last_comment_->clear();
  int level = 1;
  size_t start = ++pos_;
  for (; pos_ < s_.size(); ++pos_) {
    char c = s_[pos_];
    if (c == '(') {
      ++level;
    } else if (c == ')') {
      if (--level == 0) {
        if (last_comment_) last_comment_->append(s_.substr(start, pos_ - start));
        ++pos_;
        return at_end() ? 0 : 1;
      }
    } else if (c == '\n') {
      if (last_comment_) append_line_part(*last_comment_, s_, start, pos_);
      start = pos_ + 1;
    } else if (c == '\\') {
      if (last_comment_) last_comment_->append(s_.substr(start, pos_ - start));
      start = pos_ + 1;  // keep the escaped character, drop the backslash
      if (++pos_ >= s_.size()) return -1;
    }
  }
  return -1;  // missing ')'
}

int Lexer::skip_lwsp() {
  while (!at_end()) {
    char c = s_[pos_];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      ++pos_;
      continue;
    }
    if (c != '(') break;
    if (skip_comment() < 0) return -1;
  }
  return at_end() ? 0 : 1;
}

int Lexer::parse_atom(std::string& out) {
  if (at_end() || !is_atext(s_[pos_])) return -1;
  size_t start = pos_++;
  while (!at_end() && is_atext(s_[pos_])) ++pos_;
  out.append(s_.substr(start, pos_ - start));
  return at_end() ? 0 : skip_lwsp();
}

int Lexer::parse_dot_atom(std::string& out) {
  if (at_end() || !is_atext(s_[pos_])) return -1;
  size_t start = pos_++;
  while (!at_end()) {
    if (is_atext(s_[pos_])) {
      ++pos_;
      continue;
    }
    if (start == pos_) return -1;  // a '.' not followed by atext
    out.append(s_.substr(start, pos_ - start));
    int ret = skip_lwsp();
    if (ret <= 0) return ret;
    if (s_[pos_] != '.') return 1;
    ++pos_;
    out.push_back('.');
    if (skip_lwsp() <= 0) return -1;
    start = pos_;
  }
  out.append(s_.substr(start, pos_ - start));
  return 0;
}

int Lexer::parse_mime_token(std::string& out) {
  size_t start = pos_;
  while (!at_end() && (is_token_char(s_[pos_]) || s_[pos_] == '.')) ++pos_;
  out.append(s_.substr(start, pos_ - start));
  return at_end() ? 0 : skip_lwsp();
}

int Lexer::parse_delimited(std::string& out, bool domain_literal) {
  const char close = domain_literal ? ']' : '"';
  size_t start = domain_literal ? pos_ : pos_ + 1;  // a domain-literal keeps its brackets
  for (++pos_; pos_ < s_.size(); ++pos_) {
    char c = s_[pos_];
    if (c == close) {
      out.append(s_.substr(start, pos_ + (domain_literal ? 1 : 0) - start));
      ++pos_;
      return skip_lwsp();
    }
    if (domain_literal && c == '[') return -1;
    if (c == '\n') {
      append_line_part(out, s_, start, pos_);
      start = pos_ + 1;
    } else if (c == '\\') {
      if (++pos_ >= s_.size()) return -1;
      char e = s_[pos_];
      if (e == '\r' || e == '\n' || e == '\0') {
        --pos_;  // a backslash before a line break is kept as a character
        continue;
      }
      if (!domain_literal) {  // the escaped character is kept, the backslash dropped
        out.append(s_.substr(start, pos_ - 1 - start));
        start = pos_;
      }
    }
  }
  return -1;  // missing '"' or ']'
}

int Lexer::parse_quoted_string(std::string& out) { return parse_delimited(out, false); }

int Lexer::parse_atom_or_dot(std::string& out) {
  size_t start = pos_;
  while (!at_end() && (is_atext(s_[pos_]) || s_[pos_] == '.')) ++pos_;
  out.append(s_.substr(start, pos_ - start));
  return at_end() ? 0 : skip_lwsp();
}

int Lexer::parse_phrase(std::string& out) {
  if (at_end()) return 0;
  if (peek() == '.') return -1;
  for (;;) {
    int ret = peek() == '"' ? parse_quoted_string(out) : parse_atom_or_dot(out);
    if (ret <= 0) return ret;
    char c = peek();
    if (!is_atext(c) && c != '"' && c != '.') break;
    out.push_back(' ');
  }
  return skip_lwsp();
}

int Lexer::parse_domain(std::string& out) {
  ++pos_;  // '@'
  if (skip_lwsp() <= 0) return -1;
  return peek() == '[' ? parse_delimited(out, true) : parse_dot_atom(out);
}

int Lexer::parse_content_type(std::string& out) {
  size_t base = out.size();
  if (skip_lwsp() <= 0) return -1;
  if (parse_mime_token(out) <= 0 || out.size() == base) return -1;  // "text" alone is kept
  if (peek() != '/') {
    out.resize(base);
    return -1;
  }
  ++pos_;
  if (skip_lwsp() <= 0) {
    out.resize(base);
    return -1;
  }
  out.push_back('/');
  size_t sub = out.size();
  int ret = parse_mime_token(out);
  if (ret < 0 || out.size() == sub || (!at_end() && peek() != ';')) {
    out.resize(base);
    return -1;
  }
  return ret;
}

int Lexer::parse_content_param(std::string& key, std::string& value) {
  key.clear();
  value.clear();
  if (at_end()) return 0;
  if (peek() != ';') return -1;
  ++pos_;
  if (skip_lwsp() <= 0) return -1;
  if (parse_mime_token(key) <= 0) return -1;
  if (peek() != '=') return -1;
  ++pos_;
  int ret = skip_lwsp();
  if (ret <= 0) {
    // "name=" at the end: an empty value
  } else if (peek() == '"') {
    ret = parse_quoted_string(value);
  } else if (peek() == '=') {
    // Broken but common: name==?utf-8?b?...?= (an unquoted encoded-word).
    while (!at_end() && std::strchr("; \t\r\n", s_[pos_]) == nullptr) value.push_back(s_[pos_++]);
  } else {
    ret = parse_mime_token(value);
  }
  return ret < 0 ? -1 : 1;
}

namespace {

struct Rfc2231Part {
  std::string key, value;
  unsigned idx = 0;
  bool extended = false;
};

// Percent signs of an unencoded segment joined to encoded ones must stay literal.
std::string escape_percent(std::string_view v) {
  std::string r;
  for (char c : v) {
    if (c == '%') r += "%25";
    else r.push_back(c);
  }
  return r;
}

// Merges name*0, name*1*, ... into one "name" or "name*" parameter (RFC 2231 §3, §4.1).
// A group with a missing index is not a continuation: its parts are kept as sent.
void merge_rfc2231(std::vector<Rfc2231Part>& parts, Params& out) {
  std::stable_sort(parts.begin(), parts.end(), [](const Rfc2231Part& a, const Rfc2231Part& b) {
    int c = a.key.compare(b.key);
    return c != 0 ? c < 0 : a.idx < b.idx;
  });
  for (size_t i = 0, next = 0; i < parts.size(); i = next) {
    bool ok = true, have_extended = false;
    unsigned want = 0;
    for (next = i; next < parts.size() && strcasecmp(parts[i].key.c_str(), parts[next].key.c_str()) == 0;
         ++next, ++want) {
      if (parts[next].idx != want) ok = false;
      if (parts[next].extended) have_extended = true;
    }
    if (!ok) {
      for (size_t j = i; j < next; ++j) {
        out.emplace_back(parts[j].key + "*" + std::to_string(parts[j].idx) + (parts[j].extended ? "*" : ""),
                         parts[j].value);
      }
      continue;
    }
    std::string value = !parts[i].extended && have_extended ? "''" : "";
    for (size_t j = i; j < next; ++j) {
      value += !parts[j].extended && have_extended ? escape_percent(parts[j].value) : parts[j].value;
    }
    out.emplace_back(have_extended ? parts[i].key + "*" : parts[i].key, std::move(value));
  }
}

}  // namespace

Params parse_mime_params(Lexer& lex) {
  Params plain;
  std::vector<Rfc2231Part> continued;
  std::string key, value;
  // Like Dovecot, a "name*" without an index inherits the index seen last.
  unsigned idx = 0;
  for (int ret; (ret = lex.parse_content_param(key, value)) != 0;) {
    if (ret < 0) {
      if (lex.at_end()) break;
      lex.advance();  // skip the offending byte and try to go on
      continue;
    }
    size_t star = key.find('*');
    if (star != std::string::npos) {
      size_t p = star;  // "name*" alone: the '*' marks an extended value, no index
      if (star + 1 < key.size()) {
        idx = 0;
        for (p = star + 1; p < key.size() && key[p] >= '0' && key[p] <= '9'; ++p) idx = idx * 10 + unsigned(key[p] - '0');
      }
      bool extended = p < key.size() && key[p] == '*';
      if (extended) ++p;
      if (p == key.size()) {
        continued.push_back({key.substr(0, star), value, idx, extended});
        continue;
      }
    }
    plain.emplace_back(key, value);
  }
  merge_rfc2231(continued, plain);
  return plain;
}

}  // namespace rfc822

namespace {

// An address-list parser that never fails: what cannot be parsed becomes a placeholder
// address, so a broken From: still shows up (RFC 3501 has no way to say "unparsable").
class AddressParser {
 public:
  explicit AddressParser(std::string_view value) : lex_(value, &comment_) {}

  std::vector<Address> parse() {
    if (lex_.skip_lwsp() > 0) parse_list();
    return std::move(out_);
  }

 private:
  void add() {
    out_.push_back(std::move(cur_));
    cur_ = Address{};
  }

  void add_fixed() {
    if (!cur_.mailbox) cur_.mailbox = "MISSING_MAILBOX";
    if (!cur_.domain || cur_.domain->empty()) cur_.domain = "MISSING_DOMAIN";
    add();
  }

  // Local parts like "a." or "a..b" are common in real mail; accept them.
  int parse_loose_dot_atom(std::string& out) {
    int ret = -1;
    do {
      while (lex_.peek() == '.') {
        out.push_back('.');
        lex_.advance();
        if (lex_.at_end()) return 0;
        ret = 1;
      }
      if (lex_.peek() == '@') break;
      ret = lex_.parse_atom(out);
    } while (ret > 0 && lex_.peek() == '.');
    return ret;
  }

  int parse_local_part() {
    str_.clear();
    int ret = lex_.peek() == '"' ? lex_.parse_quoted_string(str_) : parse_loose_dot_atom(str_);
    if (ret < 0) return -1;
    cur_.mailbox = str_;
    return ret;
  }

  int parse_domain() {
    str_.clear();
    int ret = lex_.parse_domain(str_);
    if (ret < 0) return -1;
    cur_.domain = str_;
    return ret;
  }

  // obs-domain-list (RFC 5322 §4.4): "@a,@b:" before the mailbox.
  int parse_route() {
    std::string route;
    for (;;) {
      if (lex_.at_end()) return 0;
      if (lex_.peek() != '@') break;
      if (!route.empty()) route.push_back(',');
      route.push_back('@');
      int ret = lex_.parse_domain(route);
      if (ret <= 0) return ret;
      while (lex_.skip_lwsp() > 0 && lex_.peek() == ',') lex_.advance();
    }
    cur_.route = std::move(route);
    return 1;
  }

  int parse_angle_addr() {
    lex_.advance();  // '<'
    if (lex_.skip_lwsp() <= 0) return -1;
    if (lex_.peek() == '@') {
      if (parse_route() > 0 && lex_.peek() == ':') {
        lex_.advance();
      } else {
        cur_.route = "INVALID_ROUTE";
        if (lex_.at_end()) return -1;
      }
      if (lex_.skip_lwsp() <= 0) return -1;
    }
    if (lex_.peek() != '>') {  // "<>" has neither mailbox nor domain
      if (parse_local_part() <= 0) return -1;
      if (lex_.peek() == '@' && parse_domain() <= 0) return -1;
    }
    if (lex_.peek() != '>') return -1;
    lex_.advance();
    return lex_.skip_lwsp();
  }

  int parse_name_addr() {
    str_.clear();
    if (lex_.parse_phrase(str_) <= 0 || lex_.peek() != '<') return -1;
    if (!str_.empty()) cur_.name = str_;
    if (parse_angle_addr() < 0) cur_.domain = "SYNTAX_ERROR";
    return lex_.at_end() ? 0 : 1;
  }

  int parse_addr_spec() {
    comment_.clear();
    bool quoted = lex_.peek() == '"';
    int ret = parse_local_part(), ret2 = -2;
    if (ret != 0 && !lex_.at_end() && lex_.peek() == '@') {
      ret2 = parse_domain();
      if (ret2 <= 0) ret = ret2;
    }
    if (!comment_.empty()) {
      cur_.name = comment_;  // "user@host (Real Name)"
    } else if (ret2 == -2) {
      // No @domain: a lone word is a mailbox, more words make it a display name.
      str_.push_back(' ');
      size_t before = str_.size();
      (void)lex_.parse_phrase(str_);
      if (str_.size() != before) {
        cur_.mailbox.reset();
        cur_.name = str_;
      } else if (!quoted) {
        cur_.domain = "";
      }
      ret = -1;
    }
    return ret;
  }

  int parse_mailbox() {
    size_t start = lex_.pos();
    int ret = parse_name_addr();
    if (ret < 0) {
      lex_.set_pos(start);
      cur_ = Address{};
      ret = parse_addr_spec();
    }
    add_fixed();
    return ret;
  }

  int parse_group() {
    str_.clear();
    if (lex_.parse_phrase(str_) <= 0 || lex_.peek() != ':') return -1;
    // From here on this is a group, even if what follows is broken.
    lex_.advance();
    int ret = lex_.skip_lwsp();
    cur_.mailbox = str_;
    add();
    if (ret > 0 && lex_.peek() != ';') {
      for (;;) {
        (void)parse_mailbox();
        if (lex_.at_end() || lex_.peek() != ',') break;
        lex_.advance();
        if (lex_.skip_lwsp() <= 0) {
          ret = -1;
          break;
        }
      }
    }
    if (ret >= 0) {
      if (lex_.at_end() || lex_.peek() != ';') {
        ret = -1;
      } else {
        lex_.advance();
        ret = lex_.skip_lwsp();
      }
    }
    add();  // the group end marker
    return ret == 0 ? 0 : 1;
  }

  void parse_list() {
    // Bounded by the input: every round consumes at least one byte or stops.
    for (;;) {
      size_t start = lex_.pos();
      int ret = parse_group();
      if (ret < 0) {
        lex_.set_pos(start);
        cur_ = Address{};
        ret = parse_mailbox();
      }
      if (ret == 0) break;
      if (lex_.at_end() || lex_.peek() != ',') break;
      lex_.advance();
      ret = lex_.skip_lwsp();
      if (ret <= 0) {
        if (ret < 0) add_fixed();  // ends with garbage
        break;
      }
    }
  }

  std::string comment_, str_;
  rfc822::Lexer lex_;
  Address cur_;
  std::vector<Address> out_;
};

enum class Field { kNone, kDate, kSubject, kFrom, kSender, kReplyTo, kTo, kCc, kBcc, kInReplyTo, kMessageId };

Field field_of(std::string_view name) {
  static constexpr std::pair<std::string_view, Field> kFields[] = {
      {"date", Field::kDate}, {"subject", Field::kSubject}, {"from", Field::kFrom},
      {"sender", Field::kSender}, {"reply-to", Field::kReplyTo}, {"to", Field::kTo},
      {"cc", Field::kCc}, {"bcc", Field::kBcc}, {"in-reply-to", Field::kInReplyTo},
      {"message-id", Field::kMessageId}};
  for (const auto& [n, f] : kFields) {
    if (n.size() == name.size() && strncasecmp(n.data(), name.data(), n.size()) == 0) return f;
  }
  return Field::kNone;
}

void write_addresses(std::string& out, const std::vector<Address>& list) {
  if (list.empty()) {
    out += "NIL";
    return;
  }
  out.push_back('(');
  for (const Address& a : list) {
    out.push_back('(');
    if (a.name) imap::append_string_for_humans(out, *a.name);
    else out += "NIL";
    out.push_back(' ');
    imap::append_nstring(out, a.route);
    out.push_back(' ');
    imap::append_nstring(out, a.mailbox);
    out.push_back(' ');
    imap::append_nstring(out, a.domain);
    out.push_back(')');
  }
  out.push_back(')');
}

}  // namespace

std::vector<Address> parse_address_list(std::string_view value) { return AddressParser(value).parse(); }

void EnvelopeBuilder::add_field(std::string_view name, std::string_view value) {
  auto append = [value](std::vector<Address>& list) {
    // Repeated address fields add up (what Dovecot shows for two From: lines).
    for (Address& a : parse_address_list(value)) list.push_back(std::move(a));
  };
  switch (field_of(name)) {
    case Field::kNone: return;
    case Field::kDate: date_ = std::string(value); return;
    case Field::kSubject: subject_ = std::string(value); return;
    case Field::kInReplyTo: in_reply_to_ = std::string(value); return;
    case Field::kMessageId: message_id_ = std::string(value); return;
    case Field::kFrom: append(from_); return;
    case Field::kSender: append(sender_); return;
    case Field::kReplyTo: append(reply_to_); return;
    case Field::kTo: append(to_); return;
    case Field::kCc: append(cc_); return;
    case Field::kBcc: append(bcc_); return;
  }
}

std::string EnvelopeBuilder::write() const {
  std::string out = "(";
  imap::append_nstring_unfolded(out, date_);
  out.push_back(' ');
  if (subject_) imap::append_string_for_humans(out, *subject_);
  else out += "NIL";
  out.push_back(' ');
  write_addresses(out, from_);
  out.push_back(' ');
  // RFC 3501 §7.4.2: a missing Sender or Reply-To is set to From by the server.
  write_addresses(out, sender_.empty() ? from_ : sender_);
  out.push_back(' ');
  write_addresses(out, reply_to_.empty() ? from_ : reply_to_);
  for (const auto* list : {&to_, &cc_, &bcc_}) {
    out.push_back(' ');
    write_addresses(out, *list);
  }
  out.push_back(' ');
  imap::append_nstring_unfolded(out, in_reply_to_);
  out.push_back(' ');
  imap::append_nstring_unfolded(out, message_id_);
  out.push_back(')');
  return out;
}

}  // namespace basalt::index
