// IMAP dates (RFC 3501 §9 date, date-time), pure functions, no I/O and no locale or time
// zone database: the calendar arithmetic is proleptic Gregorian on days since 1970-01-01.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace basalt::store::imap {

struct DateTime {
  int64_t unix_seconds = 0;
  int tz_offset_minutes = 0;  // east of UTC: "+0200" = 120
  bool operator==(const DateTime&) const = default;
};

// INTERNALDATE text without quotes: "dd-Mon-yyyy hh:mm:ss +zzzz", the wall time in the
// stored zone (Dovecot's spelling: the day zero-padded).
std::string format_date_time(const DateTime& when);

// APPEND's date-time (without the quotes): day as " d" or "dd" (also a bare "d", which
// clients send), case-insensitive month, four-digit year, zone within +-99:59.
std::optional<DateTime> parse_date_time(std::string_view text);

// SEARCH's date ("d-Mon-yyyy" or "dd-Mon-yyyy", month case-insensitive), as days since
// 1970-01-01. Years 1..9999.
std::optional<int64_t> parse_search_date(std::string_view text);

// The calendar day (days since 1970-01-01) of an instant seen in a zone.
int64_t local_day(int64_t unix_seconds, int tz_offset_minutes);

// Days since 1970-01-01 of a proleptic Gregorian date (month 1..12).
int64_t days_from_civil(int64_t year, unsigned month, unsigned day);

// The month number (1..12) of a three-letter English abbreviation, case-insensitive; 0 if none.
unsigned month_from_name(std::string_view name);

}  // namespace basalt::store::imap
