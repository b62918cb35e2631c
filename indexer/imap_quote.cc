#include "indexer/imap_quote.h"

namespace basalt::index::imap {
namespace {

bool quotable(std::string_view s) {
  for (unsigned char c : s) {
    if (c == 0 || c == '\r' || c == '\n' || c >= 0x80) return false;
  }
  return true;
}

}  // namespace

void append_string(std::string& out, std::string_view s) {
  if (quotable(s)) {
    out.push_back('"');
    for (char c : s) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
    return;
  }
  out += '{';
  out += std::to_string(s.size());
  out += "}\r\n";
  for (char c : s) out.push_back(c == '\0' ? static_cast<char>(0x80) : c);
}

void append_nstring(std::string& out, const std::optional<std::string>& s) {
  if (!s) {
    out += "NIL";
    return;
  }
  append_string(out, *s);
}

std::string unfold(std::string_view s) {
  std::string r;
  r.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c != '\r' && c != '\n') {
      r.push_back(c);
      continue;
    }
    char next = i + 1 < s.size() ? s[i + 1] : '\0';
    if (next != ' ' && next != '\t' && next != '\r' && next != '\n' && next != '\0') r.push_back(' ');
  }
  return r;
}

void append_nstring_unfolded(std::string& out, const std::optional<std::string>& s) {
  if (!s) {
    out += "NIL";
    return;
  }
  append_string(out, unfold(*s));
}

void append_string_for_humans(std::string& out, std::string_view s) {
  std::string r;
  r.reserve(s.size());
  bool last_space = true;  // true at the start: leading white space is dropped
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      if (!last_space) r.push_back(' ');
      last_space = true;
      continue;
    }
    r.push_back(c == '\0' ? static_cast<char>(0x80) : c);
    last_space = false;
  }
  if (!r.empty() && r.back() == ' ') r.pop_back();
  append_string(out, r);
}

}  // namespace basalt::index::imap
