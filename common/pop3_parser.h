// Incremental POP3 command parser (RFC 1939, RFC 2449), no I/O.
//
// Same shape as imap::CommandParser: the caller feeds bytes and gets NeedMore, Command or Error.
// Errors are non-fatal (the bad line has been skipped; answer "-ERR" and feed on), except a line
// that reaches 4 * max_line bytes without a newline, which is fatal.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/line_reader.h"

namespace basalt::pop3 {

using Status = imap::Status;          // never kNeedContinuation
using ParseError = imap::ParseError;  // tag is always empty

struct Limits {
  size_t max_line = 512;  // RFC 2449: 255 octets is the command-line minimum; we accept up to max_line (CRLF included)
  size_t max_args = 2;
};

struct Command {
  std::string name;  // uppercased
  std::vector<std::string> args;
};

class CommandParser {
 public:
  explicit CommandParser(Limits limits = {});

  // Consumes bytes of `input` and sets `consumed`. kNeedMore: all consumed, line incomplete;
  // kCommand: take_command(), bytes after the line are not consumed; kError: see error().
  Status feed(std::string_view input, size_t& consumed);
  Command take_command();
  const ParseError& error() const { return error_; }
  void reset();
  void wipe();  // reset() and zero the line buffer (PASS / AUTH carried a credential)

 private:
  const char* parse(std::string_view line);

  Limits limits_;
  imap::LineReader reader_;
  Command cmd_;
  ParseError error_;
};

}  // namespace basalt::pop3
