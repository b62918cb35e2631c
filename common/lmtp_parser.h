// Incremental LMTP/SMTP wire parsing (RFC 2033, RFC 5321), no I/O.
//
// CommandReader: command lines (at most Limits::max_line bytes including CRLF, RFC 5321
// 4.5.3.1.4). An overlong line is skipped up to its LF and reported as a non-fatal error
// (answer 500 and feed on). A bare LF ends a line too (lenient, as most MTAs are).
//
// DataReader: the DATA body after "354". Removes dot-stuffing (a leading "." of a line is
// dropped), stops at the final "CRLF.CRLF" (the CRLF before the dot belongs to the message),
// and enforces a message size limit: past it, the body is no longer kept but reading goes on
// to the final dot so the session stays in sync, and too_big() reports it (answer 552).
//
// Both consume only what they need: bytes after a command line or after the final dot are
// left for the caller (pipelining).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/line_reader.h"

namespace basalt::lmtp {

struct Limits {
  size_t max_line = 1000;  // RFC 5321: command line incl. CRLF
  size_t max_message = 50u << 20;
};

enum class Status { kNeedMore, kCommand, kError };

struct Command {
  std::string verb;  // upper-cased: "LHLO", "MAIL", ...
  std::string args;  // the rest of the line after one space, as sent (no CRLF)
};

class CommandReader {
 public:
  explicit CommandReader(Limits limits = {});
  // kNeedMore: all of `input` consumed. kCommand: take_command(); bytes after the line are not
  // consumed. kError: an overlong line was skipped (error_text()).
  Status feed(std::string_view input, size_t& consumed);
  Command take_command();
  const std::string& error_text() const { return error_; }

 private:
  imap::LineReader reader_;
  Command cmd_;
  std::string error_;
};

// "FROM:<a@b> SIZE=123 BODY=8BITMIME" after MAIL, "TO:<x@y>" after RCPT.
struct PathArgument {
  std::string address;  // between the angle brackets ("" for the null reverse-path "<>")
  std::vector<std::pair<std::string, std::string>> params;  // keyword upper-cased, value as sent
};

// Parses `args` that must start with `keyword` ("FROM:" or "TO:", case-insensitive; a space
// after the colon is tolerated). nullopt on a syntax error (answer 501).
std::optional<PathArgument> parse_path_argument(std::string_view args, std::string_view keyword);

class DataReader {
 public:
  explicit DataReader(size_t max_message);
  // Returns true once the final dot has been read (consumed ends after its LF), false when all
  // of `input` was consumed and more is needed.
  bool feed(std::string_view input, size_t& consumed);
  bool done() const { return state_ == State::kDone; }
  bool too_big() const { return too_big_; }
  // The unstuffed message (empty when too_big()).
  const std::string& message() const { return message_; }
  std::string take_message() { return std::move(message_); }
  // Unstuffed bytes seen so far, kept or not.
  size_t size() const { return size_; }

 private:
  enum class State { kLineStart, kMid, kDot, kDotCr, kDone };
  void put(char c);

  size_t max_;
  State state_ = State::kLineStart;
  std::string message_;
  size_t size_ = 0;
  bool too_big_ = false;
};

}  // namespace basalt::lmtp
