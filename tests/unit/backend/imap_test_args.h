// Arguments as the store's IMAP server receives them: `text` after "A1 X " through the
// command parser in server grammar (roomy limits). Empty when the line does not parse.
#pragma once

#include <string>
#include <vector>

#include "common/imap_parser.h"

namespace basalt::store::imap::testing {

inline std::vector<basalt::imap::Arg> server_args(const std::string& text) {
  basalt::imap::Limits limits;
  limits.server_grammar = true;
  limits.max_args = 256;
  limits.max_list_depth = 16;
  basalt::imap::CommandParser parser(limits);
  std::string line = "A1 X " + text + "\r\n";
  size_t consumed = 0;
  if (parser.feed(line, consumed) != basalt::imap::Status::kCommand) return {};
  return parser.take_command().args;
}

}  // namespace basalt::store::imap::testing
