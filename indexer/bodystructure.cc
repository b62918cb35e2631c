#include "indexer/bodystructure.h"

#include <strings.h>

#include "indexer/imap_quote.h"

namespace basalt::index {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

void parse_type(ContentFields& c, std::string_view value) {
  rfc822::Lexer lex(value);
  (void)lex.skip_lwsp();
  std::string full;
  int ret = lex.parse_content_type(full);
  size_t slash = full.find('/');
  if (slash == std::string::npos) {
    c.type = full;
  } else {
    c.type = full.substr(0, slash);
    c.subtype = full.substr(slash + 1);
  }
  // A broken Content-Type still names the type as far as it could be read (so "text" stays
  // text), but its parameters are not trusted.
  if (ret >= 0) c.type_params = rfc822::parse_mime_params(lex);
}

void parse_transfer_encoding(ContentFields& c, std::string_view value) {
  rfc822::Lexer lex(value);
  (void)lex.skip_lwsp();
  std::string token;
  if (lex.parse_mime_token(token) >= 0 && lex.skip_lwsp() == 0 && !token.empty()) c.transfer_encoding = token;
}

void parse_disposition(ContentFields& c, std::string_view value) {
  rfc822::Lexer lex(value);
  (void)lex.skip_lwsp();
  std::string token;
  if (lex.parse_mime_token(token) < 0) return;
  c.disposition = token;
  c.disposition_params = rfc822::parse_mime_params(lex);
}

// Content-Language (RFC 3282): a comma-separated list of language tags.
void parse_language(ContentFields& c, std::string_view value) {
  rfc822::Lexer lex(value);
  (void)lex.skip_lwsp();
  std::string tag;
  while (lex.parse_atom(tag) >= 0) {
    c.language.push_back(tag);
    tag.clear();
    if (lex.at_end() || lex.peek() != ',') break;
    lex.advance();
    (void)lex.skip_lwsp();
  }
}

void write_params(std::string& out, const rfc822::Params& params, bool default_charset) {
  if (params.empty() && !default_charset) {
    out += "NIL";
    return;
  }
  out.push_back('(');
  bool seen_charset = false, first = true;
  for (const auto& [name, value] : params) {
    if (!first) out.push_back(' ');
    first = false;
    seen_charset = seen_charset || iequals(name, "charset");
    imap::append_string(out, name);
    out.push_back(' ');
    imap::append_string(out, value);
  }
  if (default_charset && !seen_charset) {
    // RFC 2045 §5.2: text without a charset is us-ascii; RFC 3501 examples show it.
    if (!first) out.push_back(' ');
    out += "\"charset\" \"us-ascii\"";
  }
  out.push_back(')');
}

// body-ext-1part / body-ext-mpart after the MD5 or the parameters.
void write_extension_common(std::string& out, const ContentFields& c) {
  out.push_back(' ');
  if (!c.disposition) {
    out += "NIL";
  } else {
    out.push_back('(');
    imap::append_string(out, *c.disposition);
    out.push_back(' ');
    write_params(out, c.disposition_params, false);
    out.push_back(')');
  }
  out.push_back(' ');
  if (c.language.empty()) {
    out += "NIL";
  } else {
    out.push_back('(');
    for (size_t i = 0; i < c.language.size(); ++i) {
      if (i > 0) out.push_back(' ');
      imap::append_string(out, c.language[i]);
    }
    out.push_back(')');
  }
  out.push_back(' ');
  imap::append_nstring_unfolded(out, c.location);
}

void write_part(std::string& out, const MimePart& part, bool extended);

void write_multipart(std::string& out, const MimePart& part, bool extended) {
  if (part.children.empty()) {
    // A multipart needs at least one body part (RFC 3501 body-type-mpart): an empty
    // text/plain stands in for the missing ones.
    out += extended ? "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)"
                    : "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)";
  }
  for (const MimePart& child : part.children) write_part(out, child, extended);
  out.push_back(' ');
  imap::append_string(out, part.content.subtype.value_or(""));
  if (!extended) return;
  out.push_back(' ');
  write_params(out, part.content.type_params, false);
  write_extension_common(out, part.content);
}

void write_single(std::string& out, const MimePart& part, bool extended) {
  const ContentFields& c = part.content;
  bool text = false;
  if (part.flags & MimePart::kMessage) {
    out += "\"message\" \"rfc822\"";
  } else if (!c.type) {
    text = true;  // RFC 2045 §5.2 default: text/plain; charset=us-ascii
    out += "\"text\" \"plain\"";
  } else {
    text = iequals(*c.type, "text");
    imap::append_string(out, *c.type);
    out.push_back(' ');
    imap::append_string(out, c.subtype.value_or(""));
  }
  out.push_back(' ');
  write_params(out, c.type_params, text);
  out.push_back(' ');
  imap::append_nstring_unfolded(out, c.id);
  out.push_back(' ');
  imap::append_nstring_unfolded(out, c.description);
  out.push_back(' ');
  imap::append_string(out, c.transfer_encoding.value_or("7bit"));
  out += ' ' + std::to_string(part.body_size);
  if (text) {
    out += ' ' + std::to_string(part.body_lines);
  } else if ((part.flags & MimePart::kMessage) && !part.children.empty()) {
    const MimePart& inner = part.children.front();
    out.push_back(' ');
    out += inner.envelope ? inner.envelope->write() : "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)";
    out.push_back(' ');
    write_part(out, inner, extended);
    out += ' ' + std::to_string(part.body_lines);
  }
  if (!extended) return;
  out.push_back(' ');
  imap::append_nstring_unfolded(out, c.md5);
  write_extension_common(out, c);
}

void write_part(std::string& out, const MimePart& part, bool extended) {
  out.push_back('(');
  if (part.flags & MimePart::kMultipart) write_multipart(out, part, extended);
  else write_single(out, part, extended);
  out.push_back(')');
}

}  // namespace

void ContentFields::add_field(std::string_view name, std::string_view value) {
  if (name.size() < 8 || strncasecmp(name.data(), "Content-", 8) != 0) return;
  std::string_view rest = name.substr(8);
  // The first occurrence of each field counts, as in Dovecot.
  if (iequals(rest, "Type")) {
    if (!type) parse_type(*this, value);
  } else if (iequals(rest, "Transfer-Encoding")) {
    if (!transfer_encoding) parse_transfer_encoding(*this, value);
  } else if (iequals(rest, "ID")) {
    if (!id) id = std::string(value);
  } else if (iequals(rest, "MD5")) {
    if (!md5) md5 = std::string(value);
  } else if (iequals(rest, "Description")) {
    if (!description) description = std::string(value);
  } else if (iequals(rest, "Location")) {
    if (!location) location = std::string(value);
  } else if (iequals(rest, "Language")) {
    if (language.empty()) parse_language(*this, value);
  } else if (iequals(rest, "Disposition")) {
    if (disposition_params.empty()) parse_disposition(*this, value);
  }
}

std::string write_bodystructure(const MimePart& part, bool extended) {
  std::string out;
  write_part(out, part, extended);
  return out;
}

}  // namespace basalt::index
