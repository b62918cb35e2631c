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

}  // namespace basalt::store
