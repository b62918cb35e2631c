#include "common/line_reader.h"

#include "common/sasl.h"

#include <algorithm>
#include <utility>

namespace basalt::imap {

namespace {
constexpr std::string_view kLineTooLong = "line too long";
}  // namespace

LineReader::LineReader(size_t max_line, size_t max_overlong)
    : max_line_(max_line), max_overlong_(max_overlong) {}

std::string LineReader::take_line() {
  line_ready_ = false;
  return std::exchange(line_, {});
}

void LineReader::wipe() {
  sasl::wipe(line_);
  reset();
}

void LineReader::reset() {
  line_.clear();
  overlong_length_ = 0;
  skipping_ = false;
  line_ready_ = false;
  fatal_ = false;
  error_ = {};
}

Status LineReader::feed(std::string_view input, size_t& consumed) {
  consumed = 0;
  if (fatal_) return Status::kError;
  if (line_ready_) {  // the previous line was not taken; drop it (clear keeps the capacity)
    line_.clear();
    line_ready_ = false;
  }
  while (consumed < input.size()) {
    std::string_view rest = input.substr(consumed);
    if (!skipping_) {
      // Only look for the LF inside the bytes the line may still hold, so nothing past the
      // limit is ever buffered.
      size_t room = max_line_ - std::min(max_line_, line_.size());
      std::string_view window = rest.substr(0, room);
      size_t lf = window.find('\n');
      if (lf != std::string_view::npos) {
        line_.append(window.substr(0, lf));
        consumed += lf + 1;
        if (!line_.empty() && line_.back() == '\r') line_.pop_back();
        line_ready_ = true;
        return Status::kCommand;
      }
      if (rest.size() <= room) {
        line_.append(rest);
        consumed += rest.size();
        return Status::kNeedMore;
      }
      overlong_length_ = line_.size() + room;
      consumed += room;
      line_.clear();
      skipping_ = true;
      continue;
    }
    size_t lf = rest.find('\n');
    size_t body = lf == std::string_view::npos ? rest.size() : lf;
    if (body > max_overlong_ - std::min(max_overlong_, overlong_length_)) {
      consumed += max_overlong_ - std::min(max_overlong_, overlong_length_);
      fatal_ = true;
      error_ = ParseError{true, {}, std::string(kLineTooLong)};
      return Status::kError;
    }
    overlong_length_ += body;
    consumed += body;
    if (lf == std::string_view::npos) return Status::kNeedMore;
    ++consumed;
    skipping_ = false;
    overlong_length_ = 0;
    error_ = ParseError{false, {}, std::string(kLineTooLong)};
    return Status::kError;
  }
  return Status::kNeedMore;
}

}  // namespace basalt::imap
