#include "common/pop3_parser.h"

#include <utility>

namespace basalt::pop3 {

namespace {

constexpr const char* kEmptyLine = "empty command line";
constexpr const char* kBadKeyword = "invalid command";
constexpr const char* kSyntax = "syntax error";
constexpr const char* kBadChar = "invalid character";
constexpr const char* kTooManyArgs = "too many arguments";

// RFC 2449 keywords are short and alphanumeric; a cap keeps garbage out of logs and lookups.
constexpr size_t kMaxKeyword = 32;

bool is_keyword_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// Arguments are any octets but controls and SP: clients send UTF-8 passwords with PASS
// (RFC 6856), so 8-bit bytes are allowed; NUL, CR, TAB and DEL are not.
bool is_arg_char(char c) {
  auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u != 0x7f;
}

}  // namespace

// An overlong line is skipped up to its LF (non-fatal), but only up to 4 * max_line bytes.
CommandParser::CommandParser(Limits limits)
    : limits_(limits), reader_(limits.max_line, 4 * limits.max_line) {}

Command CommandParser::take_command() { return std::exchange(cmd_, {}); }

void CommandParser::wipe() {
  reader_.wipe();
  reset();
}

void CommandParser::reset() {
  reader_.reset();
  cmd_ = {};
  error_ = {};
}

Status CommandParser::feed(std::string_view input, size_t& consumed) {
  Status status = reader_.feed(input, consumed);
  switch (status) {
    case Status::kNeedMore:
      return status;
    case Status::kNeedContinuation:  // LineReader never asks for one
    case Status::kError:
      error_ = reader_.error();
      return Status::kError;
    case Status::kCommand:
      break;
  }
  if (const char* message = parse(reader_.line())) {
    cmd_ = {};
    error_ = ParseError{false, {}, message};
    return Status::kError;
  }
  return Status::kCommand;
}

const char* CommandParser::parse(std::string_view line) {
  cmd_.name.clear();
  cmd_.args.clear();
  if (line.empty()) return kEmptyLine;
  size_t end = line.find(' ');
  std::string_view keyword = line.substr(0, end);
  if (keyword.empty() || keyword.size() > kMaxKeyword) return kBadKeyword;
  for (char c : keyword) {
    if (!is_keyword_char(c)) return kBadKeyword;
    cmd_.name.push_back(c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c);
  }
  if (cmd_.name == "PASS" && end != std::string_view::npos) {
    // RFC 1939: the password is the rest of the line, spaces included.
    std::string_view rest = line.substr(end + 1);
    if (rest.empty()) return kSyntax;
    for (char c : rest) {
      if (c != ' ' && !is_arg_char(c)) return kBadChar;
    }
    cmd_.args.emplace_back(rest);
    return nullptr;
  }
  while (end != std::string_view::npos) {
    size_t start = end + 1;
    end = line.find(' ', start);
    std::string_view arg = line.substr(start, end == std::string_view::npos ? end : end - start);
    if (arg.empty()) return kSyntax;  // two spaces in a row, or a trailing space
    if (cmd_.args.size() >= limits_.max_args) return kTooManyArgs;
    for (char c : arg) {
      if (!is_arg_char(c)) return kBadChar;
    }
    cmd_.args.emplace_back(arg);
  }
  return nullptr;
}

}  // namespace basalt::pop3
