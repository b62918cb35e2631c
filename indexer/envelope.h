// IMAP ENVELOPE (RFC 3501 §7.4.2) from raw header values, and the RFC 5322 / RFC 2045
// tokenizer it shares with the Content-* header parsing in bodystructure.cc.
//
// Values stay as sent: encoded-words are not decoded, Message-ID and In-Reply-To are passed
// through. Where RFC 3501 leaves a choice (broken addresses, white space, repeated headers)
// we do what Dovecot does, because users move from Dovecot shards to Basalt keeping their
// UIDs, and clients keep the ENVELOPE they cached (docs/compliance-envelope.md).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace basalt::index {

namespace rfc822 {

// RFC 5322 atext (8-bit bytes count as atext, as in RFC 6532).
bool is_atext(unsigned char c);

// A cursor over one header value. Every parse_* returns -1 on a syntax error, 0 when the
// input ended, 1 when more input follows (after skipping white space and comments).
class Lexer {
 public:
  explicit Lexer(std::string_view text, std::string* last_comment = nullptr)
      : s_(text), last_comment_(last_comment) {}

  bool at_end() const { return pos_ >= s_.size(); }
  // The current byte, or NUL at the end (the parsers were written against C strings).
  char peek() const { return at_end() ? '\0' : s_[pos_]; }
  void advance() { ++pos_; }
  size_t pos() const { return pos_; }
  void set_pos(size_t pos) { pos_ = pos; }
  std::string* last_comment() const { return last_comment_; }

  int skip_comment();
  int skip_lwsp();
  int parse_atom(std::string& out);
  int parse_dot_atom(std::string& out);
  int parse_mime_token(std::string& out);
  int parse_quoted_string(std::string& out);
  int parse_atom_or_dot(std::string& out);
  int parse_phrase(std::string& out);
  int parse_domain(std::string& out);  // at '@'
  int parse_content_type(std::string& out);
  int parse_content_param(std::string& key, std::string& value);

 private:
  // A quoted-string (at '"') or a domain-literal (at '['; kept with its brackets, and a '['
  // inside is an error). Folded line breaks are removed; a backslash before CR, LF or NUL is
  // an ordinary character, before anything else it escapes it (and is dropped from a
  // quoted-string, kept in a domain-literal).
  int parse_delimited(std::string& out, bool domain_literal);

  std::string_view s_;
  size_t pos_ = 0;
  std::string* last_comment_;
};

using Params = std::vector<std::pair<std::string, std::string>>;

// The ";"-separated parameters that follow a MIME value, RFC 2231 continuations merged into
// one "name*" parameter whose value stays encoded (IMAP sends parameters as transmitted).
Params parse_mime_params(Lexer& lex);

}  // namespace rfc822

// One ENVELOPE address (RFC 3501 §7.4.2). Group start: mailbox = group name, domain unset;
// group end: all four unset.
struct Address {
  std::optional<std::string> name, route, mailbox, domain;
  bool operator==(const Address&) const = default;
};

// Parses an address-list header value. Broken addresses are kept with MISSING_MAILBOX /
// MISSING_DOMAIN placeholders so that a NIL mailbox still only ever means a group marker.
std::vector<Address> parse_address_list(std::string_view value);

// The ENVELOPE fields of one message header, filled one header field at a time.
class EnvelopeBuilder {
 public:
  // `value` is the field's raw value: text after the colon, leading white space dropped,
  // folded lines joined with "\n". Fields other than the ten ENVELOPE ones are ignored.
  void add_field(std::string_view name, std::string_view value);

  // The ENVELOPE s-expression including the outer parentheses.
  std::string write() const;

 private:
  std::optional<std::string> date_, subject_, in_reply_to_, message_id_;
  std::vector<Address> from_, sender_, reply_to_, to_, cc_, bcc_;
};

}  // namespace basalt::index
