// Small helpers for the IMAP server's command arguments and response text (no I/O).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/imap_parser.h"

namespace basalt::store {

std::string ascii_upper(std::string_view text);
bool iequals(std::string_view a, std::string_view b);

// astring (atom, quoted or literal); nullptr for NIL or a list.
const std::string* astring(const basalt::imap::Arg& arg);

// A flag list "(\Seen foo)" or a single flag atom, for STORE and APPEND.
struct FlagSet {
  uint8_t flags = 0;
  std::vector<std::string> keywords;  // sorted, de-duplicated
};
// nullopt for an unknown system flag, \Recent, or a keyword that is not an atom.
std::optional<FlagSet> parse_flags(const basalt::imap::Arg& arg);

// RFC 3501 date-time "dd-Mon-yyyy hh:mm:ss +zzzz" (APPEND) -> seconds since the epoch and the
// zone's offset in minutes.
struct DateTime {
  int64_t seconds = 0;
  int16_t tz_minutes = 0;
};
std::optional<DateTime> parse_date_time(std::string_view text);
// INTERNALDATE as a quoted date-time, in the zone it was given in.
std::string format_date_time(int64_t seconds, int16_t tz_minutes);
// SEARCH date "d-Mon-yyyy" -> seconds of that day's midnight UTC.
std::optional<int64_t> parse_date(std::string_view text);

// A mailbox name or other string as an IMAP string (quoted, or a literal when it must be).
std::string imap_string(std::string_view text);

}  // namespace basalt::store
