#include "backend/imap_mailbox_names.h"

#include <strings.h>

#include <vector>

#include "indexer/imap_quote.h"

namespace basalt::store::imap {

namespace {

constexpr std::string_view kBase64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

bool is_inbox(std::string_view name) { return name.size() == 5 && strncasecmp(name.data(), "INBOX", 5) == 0; }
bool printable(unsigned char c) { return c >= 0x20 && c <= 0x7e; }

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

// One "&...-" run's base64 (without the delimiters) as UTF-8; false if not canonical.
bool decode_run(std::string_view b64, std::string& out) {
  uint32_t bits = 0, nbits = 0, high = 0;
  for (char c : b64) {
    size_t v = kBase64.find(c);
    if (v == std::string_view::npos) return false;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    nbits += 6;
    if (nbits < 16) continue;
    nbits -= 16;
    uint32_t unit = (bits >> nbits) & 0xffff;
    bits &= (1u << nbits) - 1;
    if (high) {
      if (unit < 0xdc00 || unit > 0xdfff) return false;
      append_utf8(out, 0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00));
      high = 0;
    } else if (unit >= 0xd800 && unit <= 0xdbff) {
      high = unit;
    } else if (unit >= 0xdc00 && unit <= 0xdfff) {
      return false;
    } else {
      if (unit < 0x80) return false;  // ASCII must be written as itself (controls are invalid names)
      append_utf8(out, unit);
    }
  }
  return high == 0 && nbits < 6 && bits == 0 && !b64.empty();
}

// The next code point of UTF-8 text at pos (U+FFFD for a bad sequence); advances pos.
uint32_t next_code_point(std::string_view s, size_t& pos) {
  auto c = static_cast<unsigned char>(s[pos++]);
  if (c < 0x80) return c;
  int extra = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : -1;
  if (extra < 0 || c > 0xf4) return 0xfffd;
  uint32_t cp = c & (0x3f >> extra);
  for (int i = 0; i < extra; ++i) {
    if (pos >= s.size() || (static_cast<unsigned char>(s[pos]) & 0xc0) != 0x80) return 0xfffd;
    cp = (cp << 6) | (static_cast<unsigned char>(s[pos++]) & 0x3f);
  }
  return cp > 0x10ffff ? 0xfffd : cp;
}

void flush_run(std::vector<uint16_t>& units, std::string& out) {
  if (units.empty()) return;
  out.push_back('&');
  uint32_t bits = 0, nbits = 0;
  for (uint16_t u : units) {
    bits = (bits << 16) | u;
    nbits += 16;
    while (nbits >= 6) {
      nbits -= 6;
      out.push_back(kBase64[(bits >> nbits) & 0x3f]);
    }
    bits &= (1u << nbits) - 1;
  }
  if (nbits > 0) out.push_back(kBase64[(bits << (6 - nbits)) & 0x3f]);
  out.push_back('-');
  units.clear();
}

// The pattern with a leading INBOX (any case) spelled "INBOX" when the name is INBOX or below it.
std::string inbox_pattern(std::string_view pattern, std::string_view name) {
  bool name_in_inbox = name.substr(0, 5) == "INBOX" && (name.size() == 5 || name[5] == kHierarchyDelimiter);
  if (!name_in_inbox || pattern.size() < 5 || strncasecmp(pattern.data(), "INBOX", 5) != 0) return std::string(pattern);
  return "INBOX" + std::string(pattern.substr(5));
}

}  // namespace

std::string normalize_inbox(std::string_view name) { return is_inbox(name) ? "INBOX" : std::string(name); }

std::optional<std::string> mutf7_to_utf8(std::string_view name) {
  std::string out;
  bool after_run = false;  // two adjacent runs are one run written twice: not canonical
  for (size_t i = 0; i < name.size();) {
    auto c = static_cast<unsigned char>(name[i]);
    if (!printable(c)) return std::nullopt;
    if (c != '&') {
      out.push_back(static_cast<char>(c));
      after_run = false;
      ++i;
      continue;
    }
    size_t dash = name.find('-', i + 1);
    if (dash == std::string_view::npos) return std::nullopt;
    if (dash == i + 1) {
      out.push_back('&');
      after_run = false;
    } else {
      if (after_run || !decode_run(name.substr(i + 1, dash - i - 1), out)) return std::nullopt;
      after_run = true;
    }
    i = dash + 1;
  }
  return out;
}

std::string utf8_to_mutf7(std::string_view utf8) {
  std::string out;
  std::vector<uint16_t> units;
  for (size_t pos = 0; pos < utf8.size();) {
    uint32_t cp = next_code_point(utf8, pos);
    if (cp >= 0x20 && cp <= 0x7e) {
      flush_run(units, out);
      out += cp == '&' ? "&-" : std::string(1, static_cast<char>(cp));
    } else if (cp >= 0x10000) {
      units.push_back(static_cast<uint16_t>(0xd800 + ((cp - 0x10000) >> 10)));
      units.push_back(static_cast<uint16_t>(0xdc00 + ((cp - 0x10000) & 0x3ff)));
    } else {
      units.push_back(static_cast<uint16_t>(cp));
    }
  }
  flush_run(units, out);
  return out;
}

Result<void> validate_mailbox_name(std::string_view name) {
  if (name.empty()) return make_error("empty mailbox name");
  if (name.size() > kMaxMailboxNameBytes) return make_error("mailbox name too long");
  for (char c : name) {
    if (!printable(static_cast<unsigned char>(c)) || c == '*' || c == '%') {
      return make_error("invalid character in mailbox name");
    }
  }
  if (name.front() == kHierarchyDelimiter || name.back() == kHierarchyDelimiter ||
      name.find("//") != std::string_view::npos) {
    return make_error("invalid hierarchy in mailbox name");
  }
  if (!mutf7_to_utf8(name)) return make_error("invalid modified UTF-7 in mailbox name");
  return {};
}

std::string join_list_pattern(std::string_view reference, std::string_view pattern) {
  if (!reference.empty() && reference.back() == kHierarchyDelimiter && !pattern.empty() &&
      pattern.front() == kHierarchyDelimiter) {
    pattern.remove_prefix(1);
  }
  return std::string(reference) + std::string(pattern);
}

bool list_match(std::string_view pattern_in, std::string_view name) {
  std::string pattern = inbox_pattern(pattern_in, name);
  // reach[i]: the pattern read so far can match name[0, i).
  std::vector<char> reach(name.size() + 1, 0), next(name.size() + 1, 0);
  reach[0] = 1;
  for (char p : pattern) {
    std::fill(next.begin(), next.end(), 0);
    bool open = false;  // for '*' / '%': some earlier reachable start can extend to here
    for (size_t i = 0; i <= name.size(); ++i) {
      if (p == '*' || p == '%') {
        if (p == '%' && i > 0 && name[i - 1] == kHierarchyDelimiter) open = false;
        open = open || reach[i];
        next[i] = open;
      } else if (reach[i] && i < name.size() && name[i] == p) {
        next[i + 1] = 1;
      }
    }
    reach.swap(next);
  }
  return reach[name.size()] != 0;
}

void append_mailbox_name(std::string& out, std::string_view name) { index::imap::append_string(out, name); }

}  // namespace basalt::store::imap
