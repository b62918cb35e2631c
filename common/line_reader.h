// Wire-parser result types shared by the IMAP and POP3 parsers, and LineReader: one CRLF- (or
// bare LF-) terminated line, used for SASL continuation responses and by the POP3 parser.
// No I/O: the caller feeds the bytes it has read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace basalt::imap {

enum class Status { kNeedMore, kCommand, kNeedContinuation, kError };

struct ParseError {
  bool fatal = false;      // fatal: the connection must be closed after "* BYE"
  std::string tag;         // the command's tag if it was read and valid, else empty (never echo an invalid tag)
  std::string message;     // short human text, safe to send to the client (no raw input echoed)
};

// Returns kNeedMore (all input consumed), kCommand (a line is ready: line() / take_line(); bytes
// after its LF are not consumed) or kError. A line longer than `max_line` bytes (counting its CRLF)
// is skipped up to its LF and then reported as a non-fatal kError, so the caller can answer and
// hand the next bytes to whichever parser comes next. If the overlong line reaches
// `max_overlong` bytes with no LF the error is fatal instead (default: never).
class LineReader {
 public:
  explicit LineReader(size_t max_line, size_t max_overlong = SIZE_MAX);

  Status feed(std::string_view input, size_t& consumed);
  std::string_view line() const { return line_; }  // valid until the next feed/take_line/reset
  std::string take_line();
  const ParseError& error() const { return error_; }
  void reset();
  void wipe();  // reset() and zero the line buffer (it held a credential)

 private:
  size_t max_line_;
  size_t max_overlong_;
  std::string line_;
  size_t overlong_length_ = 0;  // bytes of the overlong line seen so far (no LF yet)
  bool skipping_ = false;
  bool line_ready_ = false;      // line_ holds a finished line; cleared when the next one starts
  bool fatal_ = false;
  ParseError error_;
};

}  // namespace basalt::imap
