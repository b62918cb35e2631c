#include "common/lmtp_parser.h"

#include <algorithm>
#include <cctype>

namespace basalt::lmtp {
namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  return upper(s.substr(0, prefix.size())) == upper(prefix);
}

}  // namespace

CommandReader::CommandReader(Limits limits) : reader_(limits.max_line) {}

Status CommandReader::feed(std::string_view input, size_t& consumed) {
  switch (reader_.feed(input, consumed)) {
    case imap::Status::kNeedMore:
    case imap::Status::kNeedContinuation:
      return Status::kNeedMore;
    case imap::Status::kError:
      error_ = "line too long";
      return Status::kError;
    case imap::Status::kCommand:
      break;
  }
  std::string line = reader_.take_line();
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  size_t space = line.find(' ');
  cmd_.verb = upper(std::string_view(line).substr(0, space));
  cmd_.args = space == std::string::npos ? std::string() : line.substr(space + 1);
  return Status::kCommand;
}

Command CommandReader::take_command() { return std::move(cmd_); }

std::optional<PathArgument> parse_path_argument(std::string_view args, std::string_view keyword) {
  if (!iequals_prefix(args, keyword)) return std::nullopt;
  std::string_view rest = args.substr(keyword.size());
  if (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  if (rest.empty() || rest.front() != '<') return std::nullopt;
  size_t close = rest.find('>');
  if (close == std::string_view::npos) return std::nullopt;
  PathArgument out;
  out.address = std::string(rest.substr(1, close - 1));
  if (out.address.find_first_of("<> \t") != std::string::npos) return std::nullopt;
  rest.remove_prefix(close + 1);
  while (!rest.empty()) {
    if (rest.front() != ' ') return std::nullopt;
    rest.remove_prefix(1);
    if (rest.empty()) break;  // a trailing space is tolerated
    size_t end = std::min(rest.find(' '), rest.size());
    std::string_view param = rest.substr(0, end);
    rest.remove_prefix(end);
    size_t eq = param.find('=');
    std::string key = upper(param.substr(0, eq));
    if (key.empty()) return std::nullopt;
    std::string value = eq == std::string_view::npos ? std::string() : std::string(param.substr(eq + 1));
    out.params.emplace_back(std::move(key), std::move(value));
  }
  return out;
}

DataReader::DataReader(size_t max_message) : max_(max_message) {}

void DataReader::put(char c) {
  ++size_;
  if (size_ > max_) {
    if (!too_big_) {
      too_big_ = true;
      std::string().swap(message_);
    }
    return;
  }
  message_.push_back(c);
}

bool DataReader::feed(std::string_view input, size_t& consumed) {
  consumed = 0;
  while (consumed < input.size() && state_ != State::kDone) {
    char c = input[consumed++];
    switch (state_) {
      case State::kLineStart:
        if (c == '.') {
          state_ = State::kDot;
          break;
        }
        put(c);
        state_ = c == '\n' ? State::kLineStart : State::kMid;
        break;
      case State::kMid:
        put(c);
        if (c == '\n') state_ = State::kLineStart;
        break;
      case State::kDot:  // a line started with '.'
        if (c == '\r') {
          state_ = State::kDotCr;
        } else if (c == '\n') {
          state_ = State::kDone;  // ".LF": lenient end
        } else {
          put(c);  // the stuffing dot is dropped
          state_ = State::kMid;
        }
        break;
      case State::kDotCr:
        if (c == '\n') {
          state_ = State::kDone;
          break;
        }
        put('\r');  // ".\rX": the stuffing dot is dropped, the bare CR kept
        put(c);
        state_ = State::kMid;
        break;
      case State::kDone:
        break;
    }
  }
  return state_ == State::kDone;
}

}  // namespace basalt::lmtp
