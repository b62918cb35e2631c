// libFuzzer target for imap::CommandParser and imap::LineReader. The first byte picks the limits,
// the rest is a client byte stream. It is fed whole, cut at input-derived positions and (when
// short) byte by byte: all feedings must give identical events, every feed() must keep its
// contract, and every parsed command must respect the grammar and the limits.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/imap_parser.h"
#include "tests/fuzz/fuzz_split.h"

namespace {

using basalt::fuzz::check;
using basalt::fuzz::cuts_for;
using basalt::fuzz::every_byte;
using namespace basalt::imap;

Limits pick_limits(uint8_t selector) {
  Limits limits;
  if (selector & 1) {  // small limits, so short inputs reach every limit and its neighbours
    limits.max_line = 8 + (selector >> 1) % 40;
    limits.max_tag = 1 + (selector >> 2) % 8;
    limits.max_args = (selector >> 3) % 5;
    limits.max_list_items = (selector >> 4) % 5;
    limits.max_list_depth = (selector >> 5) % 3;
    limits.max_literal = (selector >> 1) % 24;
    limits.max_nonsync_literal = (selector >> 2) % 12;
    limits.max_command = 16 + (selector >> 3) % 64;
  } else if (selector & 2) {  // the store's server grammar: "*", "%", flags, sections, deep lists
    limits.server_grammar = true;
    limits.max_args = 16;
    limits.max_list_depth = 16;
  }
  return limits;
}

// Atoms and quoted strings are 7-bit without NUL, CR and LF; only literals carry other bytes.
bool plain_text(const std::string& text) {
  return std::none_of(text.begin(), text.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u == 0 || u >= 0x80 || c == '\r' || c == '\n';
  });
}

bool valid_tag(const std::string& tag, const Limits& limits) {
  if (tag.size() > limits.max_tag) return false;
  return std::none_of(tag.begin(), tag.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u >= 0x7f || std::string_view("(){%*\"\\+").find(c) != std::string_view::npos;
  });
}

void describe(const Arg& arg, const Limits& limits, size_t depth, std::string& out, size_t& bytes) {
  out += static_cast<char>('0' + static_cast<int>(arg.kind));
  out += std::to_string(arg.text.size()) + ':' + arg.text;
  bytes += arg.text.size();
  switch (arg.kind) {
    case ArgKind::kAtom:
      // Only a server-grammar section ("BODY[HEADER.FIELDS (A B)]") may hold a space.
      check(!arg.text.empty() && plain_text(arg.text) &&
            (arg.text.find(' ') == std::string::npos || (limits.server_grammar && arg.text.find('[') < arg.text.find(' '))));
      break;
    case ArgKind::kNil:
      check(arg.text.size() == 3);
      break;
    case ArgKind::kQuoted:
      check(plain_text(arg.text));
      break;
    case ArgKind::kLiteral:
      check(arg.text.size() <= std::max(limits.max_literal, limits.max_nonsync_literal));
      break;
    case ArgKind::kList:
      check(depth < limits.max_list_depth && arg.items.size() <= limits.max_list_items);
      out += '(';
      for (const Arg& item : arg.items) describe(item, limits, depth + 1, out, bytes);
      out += ')';
      break;
  }
  if (arg.kind != ArgKind::kList) check(arg.items.empty());
}

std::string describe(const Command& command, const Limits& limits) {
  check(!command.tag.empty() && valid_tag(command.tag, limits) && !command.name.empty());
  check(command.args.size() <= limits.max_args);
  check(std::none_of(command.name.begin(), command.name.end(), [](char c) { return c >= 'a' && c <= 'z'; }));
  std::string out = "C" + command.tag + ' ' + command.name + ' ';
  size_t bytes = 0;
  for (const Arg& arg : command.args) describe(arg, limits, 0, out, bytes);
  check(bytes <= limits.max_command);
  return out;
}

// Feeds `input` cut at `cuts` and returns the events, each with the offset consumed up to.
template <class Parser, class Take>
std::vector<std::string> drive(Parser& parser, std::string_view input, const std::vector<size_t>& cuts,
                               const Limits& limits, Take take) {
  std::vector<std::string> events;
  size_t begin = 0;
  for (size_t i = 0; i <= cuts.size(); ++i) {
    size_t end = i < cuts.size() ? cuts[i] : input.size();
    size_t offset = begin;
    for (;;) {
      size_t consumed = SIZE_MAX;
      Status status = parser.feed(input.substr(offset, end - offset), consumed);
      check(consumed <= end - offset);
      offset += consumed;
      std::string at = '@' + std::to_string(offset);
      if (status == Status::kNeedMore) {
        check(offset == end);
        break;
      }
      // Every other outcome ends at a byte of this piece (no livelock); only a fatal error may
      // come before any byte, when the previous piece ended right at the overlong-line cap.
      check(consumed > 0 || (status == Status::kError && parser.error().fatal));
      if (status == Status::kCommand) events.push_back(take(parser) + at);
      if (status == Status::kNeedContinuation) events.push_back("+" + at);
      if (status == Status::kError) {
        const ParseError& error = parser.error();
        check(!error.message.empty() && valid_tag(error.tag, limits));
        events.push_back(std::string(error.fatal ? "F" : "E") + error.tag + ' ' + error.message + at);
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

  auto commands = [&](const std::vector<size_t>& cuts) {
    CommandParser parser(limits);
    return drive(parser, input, cuts, limits, [&](CommandParser& p) { return describe(p.take_command(), limits); });
  };
  const std::vector<std::string> whole = commands({});
  check(commands(cuts_for(input, 1)) == whole);
  if (input.size() <= 256) check(commands(every_byte(input.size())) == whole);

  const size_t max_line = 1 + data[0] % 48;
  auto lines = [&](const std::vector<size_t>& cuts) {
    LineReader reader(max_line, 4 * max_line);
    return drive(reader, input, cuts, limits, [&](LineReader& r) {
      std::string line = r.take_line();
      check(line.size() < max_line && line.find('\n') == std::string::npos);
      return "L" + line;
    });
  };
  check(lines({}) == lines(cuts_for(input, 2)));
  return 0;
}
