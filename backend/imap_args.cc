#include "backend/imap_args.h"

#include <strings.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <ctime>

#include "backend/mailbox_state.h"
#include "indexer/imap_quote.h"

namespace basalt::store {

namespace {

constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

std::optional<int> number(std::string_view text, size_t digits) {
  if (text.size() != digits) return std::nullopt;
  int v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

std::optional<int> month(std::string_view text) {
  for (size_t i = 0; i < kMonths.size(); ++i) {
    if (iequals(kMonths[i], text)) return static_cast<int>(i);
  }
  return std::nullopt;
}

// "d-Mon-yyyy" / "dd-Mon-yyyy" -> tm (date fields only).
std::optional<std::tm> parse_day(std::string_view text) {
  size_t d1 = text.find('-');
  if (d1 == std::string_view::npos || d1 == 0 || d1 > 2) return std::nullopt;
  auto day = number(text.substr(0, d1), d1);
  auto mon = month(text.substr(d1 + 1, 3));
  if (text.size() != d1 + 9 || text[d1 + 4] != '-') return std::nullopt;
  auto year = number(text.substr(d1 + 5), 4);
  if (!day || !mon || !year || *day < 1 || *day > 31) return std::nullopt;
  std::tm tm{};
  tm.tm_mday = *day;
  tm.tm_mon = *mon;
  tm.tm_year = *year - 1900;
  return tm;
}

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

std::optional<DateTime> parse_date_time(std::string_view text) {
  if (!text.empty() && text[0] == ' ') text.remove_prefix(1);  // date-day-fixed " d"
  size_t sp = text.find(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  auto tm = parse_day(text.substr(0, sp));
  std::string_view rest = text.substr(sp + 1);
  if (!tm || rest.size() != 14 || rest[2] != ':' || rest[5] != ':' || rest[8] != ' ') return std::nullopt;
  auto h = number(rest.substr(0, 2), 2), m = number(rest.substr(3, 2), 2), s = number(rest.substr(6, 2), 2);
  char sign = rest[9];
  auto zh = number(rest.substr(10, 2), 2), zm = number(rest.substr(12, 2), 2);
  if (!h || !m || !s || !zh || !zm || (sign != '+' && sign != '-') || *h > 23 || *m > 59 || *s > 60 || *zm > 59) {
    return std::nullopt;
  }
  tm->tm_hour = *h;
  tm->tm_min = *m;
  tm->tm_sec = *s;
  int offset = (*zh * 60 + *zm) * (sign == '-' ? -1 : 1);
  return DateTime{static_cast<int64_t>(timegm(&*tm)) - offset * 60, static_cast<int16_t>(offset)};
}

std::optional<int64_t> parse_date(std::string_view text) {
  auto tm = parse_day(text);
  if (!tm) return std::nullopt;
  return static_cast<int64_t>(timegm(&*tm));
}

std::string format_date_time(int64_t seconds, int16_t tz_minutes) {
  time_t local = static_cast<time_t>(seconds + tz_minutes * 60);
  std::tm tm{};
  gmtime_r(&local, &tm);
  int offset = tz_minutes < 0 ? -tz_minutes : tz_minutes;
  char buf[64];
  snprintf(buf, sizeof buf, "\"%02d-%s-%04d %02d:%02d:%02d %c%02d%02d\"", tm.tm_mday,
           std::string(kMonths[static_cast<size_t>(tm.tm_mon)]).c_str(), tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
           tm.tm_sec, tz_minutes < 0 ? '-' : '+', offset / 60, offset % 60);
  return buf;
}

std::string imap_string(std::string_view text) {
  std::string out;
  index::imap::append_string(out, text);
  return out;
}

}  // namespace basalt::store
