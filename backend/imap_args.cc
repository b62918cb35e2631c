#include "backend/imap_args.h"

#include <strings.h>

#include <algorithm>

#include "backend/mailbox_state.h"

namespace basalt::store {

namespace {

bool is_atom_text(std::string_view s) {
  return !s.empty() && s.size() <= kMaxKeywordBytes && std::all_of(s.begin(), s.end(), [](char c) {
    return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '%' && c != '*' && c != '"' &&
           c != '\\' && c != ']';
  });
}

bool add_flag(FlagSet& set, const std::string& flag) {
  static constexpr std::pair<std::string_view, uint8_t> kSystem[] = {
      {"\\Seen", kFlagSeen}, {"\\Answered", kFlagAnswered}, {"\\Flagged", kFlagFlagged},
      {"\\Deleted", kFlagDeleted}, {"\\Draft", kFlagDraft}};
  if (!flag.empty() && flag[0] == '\\') {
    for (const auto& [name, bit] : kSystem) {
      if (iequals(name, flag)) {
        set.flags |= bit;
        return true;
      }
    }
    return false;  // \Recent and unknown system flags cannot be set
  }
  if (!is_atom_text(flag)) return false;
  set.keywords.push_back(flag);
  return true;
}

}  // namespace

std::string ascii_upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

const std::string* astring(const basalt::imap::Arg& arg) {
  switch (arg.kind) {
    case basalt::imap::ArgKind::kAtom:
    case basalt::imap::ArgKind::kQuoted:
    case basalt::imap::ArgKind::kLiteral:
      return &arg.text;
    case basalt::imap::ArgKind::kList:
    case basalt::imap::ArgKind::kNil:
      return nullptr;
  }
  return nullptr;
}

std::optional<FlagSet> parse_flags(const basalt::imap::Arg& arg) {
  FlagSet set;
  if (arg.kind == basalt::imap::ArgKind::kList) {
    for (const basalt::imap::Arg& item : arg.items) {
      if (item.kind != basalt::imap::ArgKind::kAtom || !add_flag(set, item.text)) return std::nullopt;
    }
  } else if (arg.kind != basalt::imap::ArgKind::kAtom || !add_flag(set, arg.text)) {
    return std::nullopt;
  }
  if (set.keywords.size() > kMaxKeywordsPerMessage) return std::nullopt;
  std::sort(set.keywords.begin(), set.keywords.end());
  set.keywords.erase(std::unique(set.keywords.begin(), set.keywords.end()), set.keywords.end());
  return set;
}

}  // namespace basalt::store
