#include "directory/ldap_escape.h"

namespace basalt::directory {
namespace {

constexpr char kHex[] = "0123456789abcdef";

void append_hex_escape(std::string& out, unsigned char c) {
  out.push_back('\\');
  out.push_back(kHex[c >> 4]);
  out.push_back(kHex[c & 0x0f]);
}

bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

// Length of the UTF-8 sequence starting at s[i], or 0 when it is malformed (overlong forms,
// surrogates and code points above U+10FFFF included).
size_t utf8_sequence_length(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xbf) return 0;
  }
  return n;
}

}  // namespace

Result<void> validate_user_name(std::string_view user) {
  if (user.empty()) return make_error("empty user name");
  if (user.size() > kMaxUserNameLength) {
    return make_error("user name longer than " + std::to_string(kMaxUserNameLength) + " bytes");
  }
  for (size_t i = 0; i < user.size();) {
    auto c = static_cast<unsigned char>(user[i]);
    if (is_control(c)) return make_error("control byte in user name");
    size_t n = utf8_sequence_length(user, i);
    if (n == 0) return make_error("user name is not valid UTF-8");
    i += n;
  }
  return {};
}

std::string escape_filter_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char ch : value) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '*' || c == '(' || c == ')' || c == '\\' || c < 0x20 || c >= 0x7f) {
      append_hex_escape(out, c);
    } else {
      out.push_back(ch);
    }
  }
  return out;
}

std::string escape_dn_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    auto c = static_cast<unsigned char>(value[i]);
    bool edge_space = c == ' ' && (i == 0 || i + 1 == value.size());
    if (c == '"' || c == '+' || c == ',' || c == ';' || c == '<' || c == '>' || c == '\\' ||
        c == '=' || edge_space || (c == '#' && i == 0)) {
      out.push_back('\\');
      out.push_back(value[i]);
    } else if (is_control(c)) {
      append_hex_escape(out, c);
    } else {
      out.push_back(value[i]);
    }
  }
  return out;
}

Result<void> validate_filter_template(std::string_view filter_template) {
  if (filter_template.size() < 2 || filter_template.front() != '(' ||
      filter_template.back() != ')') {
    return make_error("must be enclosed in parentheses");
  }
  int depth = 0;
  bool has_user = false;
  for (size_t i = 0; i < filter_template.size(); ++i) {
    char c = filter_template[i];
    if (c == '(') ++depth;
    if (c == ')' && --depth < 0) return make_error("unbalanced parentheses");
    if (depth == 0 && i + 1 != filter_template.size()) {
      return make_error("must be a single filter (wrap several in (&...) or (|...))");
    }
    if (c != '%') continue;
    char next = i + 1 < filter_template.size() ? filter_template[i + 1] : '\0';
    if (next == 'u') {
      has_user = true;
    } else if (next != '%') {
      return make_error("unknown placeholder at offset " + std::to_string(i) +
                        " (only %u and %% are allowed)");
    }
    ++i;
  }
  if (depth != 0) return make_error("unbalanced parentheses");
  if (!has_user) return make_error("must contain %u");
  return {};
}

Result<std::string> render_filter(std::string_view filter_template, std::string_view user) {
  if (auto valid = validate_user_name(user); !valid) return valid.error();
  if (auto valid = validate_filter_template(filter_template); !valid) return valid.error();
  const std::string escaped = escape_filter_value(user);
  std::string out;
  out.reserve(filter_template.size() + escaped.size());
  for (size_t i = 0; i < filter_template.size(); ++i) {
    if (filter_template[i] == '%') {
      // validate_filter_template guarantees a following 'u' or '%'.
      out += filter_template[i + 1] == 'u' ? escaped : std::string("%");
      ++i;
    } else {
      out.push_back(filter_template[i]);
    }
  }
  return out;
}

}  // namespace basalt::directory
