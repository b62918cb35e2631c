// libFuzzer target for pop3::CommandParser. The first byte picks the limits, the rest is a client
// byte stream, fed whole, cut at input-derived positions and (when short) byte by byte: all
// feedings must give identical events and every command must respect the grammar and the limits.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/pop3_parser.h"
#include "tests/fuzz/fuzz_split.h"

namespace {

using basalt::fuzz::check;
using basalt::fuzz::cuts_for;
using basalt::fuzz::every_byte;
using namespace basalt::pop3;

Limits pick_limits(uint8_t selector) {
  Limits limits;
  if (selector & 1) limits.max_line = 1 + (selector >> 1) % 48;
  limits.max_args = (selector >> 4) % 4;
  return limits;
}

std::string describe(const Command& command, const Limits& limits) {
  check(!command.name.empty() && command.args.size() <= limits.max_args);
  check(std::all_of(command.name.begin(), command.name.end(),
                    [](char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }));
  std::string out = "C" + command.name;
  size_t length = command.name.size() + 2;  // the line with its CRLF, at least
  for (const std::string& arg : command.args) {
    check(!arg.empty());
    check(std::none_of(arg.begin(), arg.end(), [](char c) {
      auto u = static_cast<unsigned char>(c);
      return u <= 0x20 || u == 0x7f;
    }));
    out += ' ' + std::to_string(arg.size()) + ':' + arg;
    length += arg.size() + 1;
  }
  check(length <= limits.max_line + 1);  // +1: a bare LF ends the line in one byte
  return out;
}

std::vector<std::string> run(const Limits& limits, std::string_view input, const std::vector<size_t>& cuts) {
  CommandParser parser(limits);
  std::vector<std::string> events;
  size_t begin = 0;
  for (size_t i = 0; i <= cuts.size(); ++i) {
    size_t end = i < cuts.size() ? cuts[i] : input.size();
    size_t offset = begin;
    for (;;) {
      size_t consumed = SIZE_MAX;
      Status status = parser.feed(input.substr(offset, end - offset), consumed);
      check(consumed <= end - offset && status != Status::kNeedContinuation);
      offset += consumed;
      std::string at = '@' + std::to_string(offset);
      if (status == Status::kNeedMore) {
        check(offset == end);
        break;
      }
      // Every other outcome ends at a byte of this piece (no livelock); only a fatal error may
      // come before any byte, when the previous piece ended right at the overlong-line cap.
      check(consumed > 0 || (status == Status::kError && parser.error().fatal));
      if (status == Status::kCommand) events.push_back(describe(parser.take_command(), limits) + at);
      if (status == Status::kError) {
        const ParseError& error = parser.error();
        check(!error.message.empty() && error.tag.empty());
        events.push_back(std::string(error.fatal ? "F" : "E") + error.message + at);
        if (error.fatal) {
          size_t again = 1;
          check(parser.feed(input.substr(offset), again) == Status::kError && again == 0);
          return events;
        }
      }
    }
    begin = end;
  }
  return events;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Limits limits = pick_limits(data[0]);
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::vector<std::string> whole = run(limits, input, {});
  check(run(limits, input, cuts_for(input, 1)) == whole);
  if (input.size() <= 256) check(run(limits, input, every_byte(input.size())) == whole);
  return 0;
}
