#include "backend/imap_date.h"

#include <array>
#include <cstdio>

namespace basalt::store::imap {

namespace {

constexpr std::array<const char*, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Digits of text[pos, pos + n) as a number, or -1.
int digits(std::string_view text, size_t pos, size_t n) {
  if (pos + n > text.size()) return -1;
  int value = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (!is_digit(text[i])) return -1;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

bool leap(int64_t year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

unsigned days_in_month(int64_t year, unsigned month) {
  static constexpr std::array<unsigned, 12> kDays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && leap(year) ? 29 : kDays[month - 1];
}

struct Civil {
  int64_t year;
  unsigned month, day;
};

// Howard Hinnant's civil_from_days.
Civil civil_from_days(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {static_cast<int64_t>(yoe) + era * 400 + (m <= 2), m, d};
}

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// "d-Mon-yyyy" / "dd-Mon-yyyy" at the start of text; sets *end past it.
std::optional<int64_t> parse_day_month_year(std::string_view text, size_t* end) {
  size_t dash = text.find('-');
  if (dash != 1 && dash != 2) return std::nullopt;
  int day = digits(text, 0, dash);
  unsigned month = text.size() >= dash + 4 ? month_from_name(text.substr(dash + 1, 3)) : 0;
  if (day < 1 || month == 0 || text.size() < dash + 9 || text[dash + 4] != '-') return std::nullopt;
  int year = digits(text, dash + 5, 4);
  if (year < 1 || static_cast<unsigned>(day) > days_in_month(year, month)) return std::nullopt;
  *end = dash + 9;
  return days_from_civil(year, month, static_cast<unsigned>(day));
}

// "hh:mm:ss +zzzz" exactly; returns seconds into the day and the zone.
std::optional<std::pair<int, int>> parse_time_zone(std::string_view text) {
  if (text.size() != 14 || text[2] != ':' || text[5] != ':' || text[8] != ' ') return std::nullopt;
  int h = digits(text, 0, 2), m = digits(text, 3, 2), s = digits(text, 6, 2);
  int zh = digits(text, 10, 2), zm = digits(text, 12, 2);
  if (h < 0 || h > 23 || m < 0 || m > 59 || s < 0 || s > 60 || zh < 0 || zm < 0 || zm > 59) return std::nullopt;
  if (text[9] != '+' && text[9] != '-') return std::nullopt;
  int zone = (zh * 60 + zm) * (text[9] == '-' ? -1 : 1);
  return std::make_pair(h * 3600 + m * 60 + s, zone);
}

}  // namespace

unsigned month_from_name(std::string_view name) {
  if (name.size() != 3) return 0;
  for (unsigned i = 0; i < kMonths.size(); ++i) {
    const char* m = kMonths[i];
    if (lower(name[0]) == lower(m[0]) && lower(name[1]) == m[1] && lower(name[2]) == m[2]) return i + 1;
  }
  return 0;
}

int64_t days_from_civil(int64_t year, unsigned month, unsigned day) {
  year -= month <= 2;
  const int64_t era = (year >= 0 ? year : year - 399) / 400;
  const auto yoe = static_cast<unsigned>(year - era * 400);
  const unsigned doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

int64_t local_day(int64_t unix_seconds, int tz_offset_minutes) {
  return floor_div(unix_seconds + int64_t{tz_offset_minutes} * 60, 86400);
}

std::string format_date_time(const DateTime& when) {
  int64_t local = when.unix_seconds + int64_t{when.tz_offset_minutes} * 60;
  int64_t day = floor_div(local, 86400);
  auto secs = static_cast<int>(local - day * 86400);
  Civil c = civil_from_days(day);
  int zone = when.tz_offset_minutes < 0 ? -when.tz_offset_minutes : when.tz_offset_minutes;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%02u-%s-%04lld %02d:%02d:%02d %c%02d%02d", c.day, kMonths[c.month - 1],
                static_cast<long long>(c.year), secs / 3600, secs / 60 % 60, secs % 60,
                when.tz_offset_minutes < 0 ? '-' : '+', zone / 60, zone % 60);
  return buf;
}

std::optional<DateTime> parse_date_time(std::string_view text) {
  if (!text.empty() && text[0] == ' ') text.remove_prefix(1);  // date-day-fixed " d"
  size_t end = 0;
  auto day = parse_day_month_year(text, &end);
  if (!day || end >= text.size() || text[end] != ' ') return std::nullopt;
  auto time = parse_time_zone(text.substr(end + 1));
  if (!time) return std::nullopt;
  return DateTime{*day * 86400 + time->first - int64_t{time->second} * 60, time->second};
}

std::optional<int64_t> parse_search_date(std::string_view text) {
  size_t end = 0;
  auto day = parse_day_month_year(text, &end);
  if (!day || end != text.size()) return std::nullopt;
  return day;
}

}  // namespace basalt::store::imap
