#include "common/imap_parser.h"

#include "common/sasl.h"

#include <algorithm>
#include <array>
#include <utility>

namespace basalt::imap {

namespace {

// Messages go to the client verbatim ("<tag> BAD <message>"), so they never contain input.
constexpr const char* kEmptyLine = "empty command line";
constexpr const char* kBadTag = "invalid tag";
constexpr const char* kNoName = "missing command name";
constexpr const char* kBadName = "invalid command name";
constexpr const char* kSyntax = "syntax error";
constexpr const char* kBadQuotedChar = "invalid character in quoted string";
constexpr const char* kBadEscape = "invalid escape in quoted string";
constexpr const char* kUnterminatedQuote = "unterminated quoted string";
constexpr const char* kBadLiteral = "invalid literal";
constexpr const char* kLiteralTooLarge = "literal too large";
constexpr const char* kTooManyArgs = "too many arguments";
constexpr const char* kTooManyItems = "too many list items";
constexpr const char* kTooDeep = "lists nested too deeply";
constexpr const char* kUnterminatedList = "unterminated list";
constexpr const char* kLineTooLong = "line too long";
constexpr const char* kCommandTooLong = "command too long";
constexpr const char* kUnterminatedSection = "unterminated section";

// RFC 3501 number: an unsigned 32-bit value. Larger sizes are rejected, which also keeps the
// digit accumulator from overflowing.
constexpr uint64_t kMaxNumber = 4294967295u;

enum : uint8_t { kAtomChar = 1, kAstringChar = 2, kTagChar = 4, kServerAtomChar = 8 };

// RFC 3501: ATOM-CHAR is any CHAR except atom-specials ("(" ")" "{" SP CTL "%" "*" DQUOTE "\"
// "]"); ASTRING-CHAR adds "]"; a tag is ASTRING-CHARs except "+". The server grammar's atoms
// (sequence sets, list-mailbox) are ASTRING-CHARs plus "*" and "%". A table keeps this per-byte
// test to one load.
constexpr std::array<uint8_t, 256> make_char_classes() {
  std::array<uint8_t, 256> classes{};
  for (int c = 0x21; c < 0x7f; ++c) {
    if (c == '%' || c == '*') classes[c] |= kServerAtomChar;
    if (c == '(' || c == ')' || c == '{' || c == '%' || c == '*' || c == '"' || c == '\\') continue;
    classes[c] |= kAstringChar | kServerAtomChar;
    if (c != ']') classes[c] |= kAtomChar;
    if (c != '+') classes[c] |= kTagChar;
  }
  return classes;
}
constexpr std::array<uint8_t, 256> kCharClasses = make_char_classes();

bool has_class(char c, uint8_t cls) { return (kCharClasses[static_cast<unsigned char>(c)] & cls) != 0; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
size_t sat_sub(size_t a, size_t b) { return a > b ? a - b : 0; }
char ascii_upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

bool valid_tag(std::string_view tag, size_t max_tag) {
  if (tag.empty() || tag.size() > max_tag) return false;
  return std::all_of(tag.begin(), tag.end(), [](char c) { return has_class(c, kTagChar); });
}

bool is_nil(std::string_view atom) {
  return atom.size() == 3 && ascii_upper(atom[0]) == 'N' && ascii_upper(atom[1]) == 'I' &&
         ascii_upper(atom[2]) == 'L';
}

}  // namespace

void CommandParser::LiteralTrailer::push(char c) {
  if (c == '{') {
    state_ = kOpen;
    size_ = 0;
    nonsync_ = false;
    return;
  }
  switch (state_) {
    case kOpen:
    case kDigits:
      if (is_digit(c)) {
        if (size_ <= kMaxNumber) size_ = size_ * 10 + static_cast<uint64_t>(c - '0');
        state_ = kDigits;
        return;
      }
      if (state_ == kDigits && (c == '+' || c == '}')) {
        nonsync_ = c == '+';
        state_ = c == '+' ? kPlus : kClose;
        return;
      }
      break;
    case kPlus:
      if (c == '}') {
        state_ = kClose;
        return;
      }
      break;
    case kClose:
      if (c == '\r') {
        state_ = kCloseCr;
        return;
      }
      break;
    case kNone:
    case kCloseCr:
      break;
  }
  state_ = kNone;
}

CommandParser::CommandParser(Limits limits) : limits_(limits) {}

Command CommandParser::take_command() {
  if (in_command_) return {};  // nothing finished; leave the partial command alone
  return std::exchange(cmd_, {});
}

void CommandParser::wipe() {
  sasl::wipe(seg_);
  reset();
}

void CommandParser::reset() {
  state_ = State::kLine;
  stage_ = Stage::kTag;
  in_command_ = want_sep_ = list_open_ = literal_pending_ = false;
  depth_ = line_bytes_ = total_ = remaining_ = skipped_ = 0;
  seg_.clear();
  trailer_.reset();
  cmd_ = {};
  error_ = {};
}

Status CommandParser::feed(std::string_view input, size_t& consumed) {
  consumed = 0;
  Status status = Status::kNeedMore;
  for (;;) {
    std::string_view rest = input.substr(consumed);
    bool done = false;
    switch (state_) {
      case State::kLine: done = step_line(rest, consumed, &status); break;
      case State::kLiteral: done = step_literal(rest, consumed, &status); break;
      case State::kSkipLine: done = step_skip_line(rest, consumed, &status); break;
      case State::kSkipLiteral: done = step_skip_literal(rest, consumed, &status); break;
      case State::kFatal: return Status::kError;
    }
    if (done) return status;
  }
}

void CommandParser::begin_command() {
  cmd_ = {};
  in_command_ = true;
  stage_ = Stage::kTag;
  want_sep_ = list_open_ = literal_pending_ = false;
  depth_ = line_bytes_ = total_ = 0;
  seg_.clear();
}

bool CommandParser::step_line(std::string_view rest, size_t& consumed, Status* status) {
  if (rest.empty()) {
    *status = Status::kNeedMore;
    return true;
  }
  if (!in_command_) begin_command();
  // Look for the LF only within what the limits still allow, so nothing beyond them is buffered.
  size_t line_room = sat_sub(limits_.max_line, line_bytes_);
  size_t command_room = sat_sub(limits_.max_command, total_);
  size_t room = std::min(line_room, command_room);
  std::string_view window = rest.substr(0, room);
  size_t lf = window.find('\n');
  size_t take = lf == std::string_view::npos ? window.size() : lf + 1;
  seg_.append(window.substr(0, lf == std::string_view::npos ? take : lf));
  consumed += take;
  line_bytes_ += take;
  total_ += take;
  if (lf != std::string_view::npos) {
    if (!seg_.empty() && seg_.back() == '\r') seg_.pop_back();
    return end_of_segment(status);
  }
  if (rest.size() <= room) {
    *status = Status::kNeedMore;
    return true;
  }
  // The line outgrew its budget: skip to its end. The buffered part may already hold the start
  // of a "{n+}" announcement, so run it through the trailer scanner first.
  fail(line_room <= command_room ? kLineTooLong : kCommandTooLong);
  trailer_.reset();
  for (char c : seg_) trailer_.push(c);
  seg_.clear();
  skipped_ = 0;
  state_ = State::kSkipLine;
  return false;
}

bool CommandParser::step_literal(std::string_view rest, size_t& consumed, Status* status) {
  size_t n = std::min(remaining_, rest.size());
  if (n > 0) container().back().text.append(rest.substr(0, n));
  consumed += n;
  total_ += n;
  remaining_ -= n;
  if (remaining_ > 0) {
    *status = Status::kNeedMore;
    return true;
  }
  state_ = State::kLine;  // the command line continues after the payload
  return false;
}

bool CommandParser::step_skip_line(std::string_view rest, size_t& consumed, Status* status) {
  // Byte by byte, but only for input already known to be bad.
  for (char c : rest) {
    if (c != '\n' && skipped_ >= limits_.max_command) {
      fail_fatal(kLineTooLong);  // no end in sight: the peer is not speaking IMAP
      *status = Status::kError;
      return true;
    }
    ++skipped_;
    ++consumed;
    if (c == '\n') return end_of_skipped_line(status);
    trailer_.push(c);
  }
  *status = Status::kNeedMore;
  return true;
}

bool CommandParser::step_skip_literal(std::string_view rest, size_t& consumed, Status* status) {
  size_t n = std::min(remaining_, rest.size());
  consumed += n;
  skipped_ += n;
  remaining_ -= n;
  if (remaining_ > 0) {
    *status = Status::kNeedMore;
    return true;
  }
  trailer_.reset();
  state_ = State::kSkipLine;
  return false;
}

bool CommandParser::end_of_segment(Status* status) {
  literal_pending_ = false;
  if (const char* error = parse_segment()) {
    fail(error);
    return after_bad_segment(status);
  }
  seg_.clear();
  if (literal_pending_) {
    state_ = State::kLiteral;
    if (!literal_sync_) return false;  // LITERAL+: the payload follows without a "+"
    *status = Status::kNeedContinuation;
    return true;
  }
  in_command_ = false;
  *status = Status::kCommand;
  return true;
}

bool CommandParser::after_bad_segment(Status* status) {
  // Whatever made the line bad, a "{n+}" at its end means the client sends n bytes regardless.
  trailer_.reset();
  for (char c : seg_) trailer_.push(c);
  bool literal = trailer_.present() && !seg_.empty() && seg_.back() == '}';  // CR already stripped
  seg_.clear();
  skipped_ = 0;
  if (literal && trailer_.nonsync()) return skip_literal(status);
  return report_error(status);
}

bool CommandParser::end_of_skipped_line(Status* status) {
  if (trailer_.present() && trailer_.nonsync()) return skip_literal(status);
  return report_error(status);
}

bool CommandParser::skip_literal(Status* status) {
  uint64_t size = trailer_.size();
  if (size > limits_.max_nonsync_literal || size > sat_sub(limits_.max_command, skipped_)) {
    fail_fatal(kLiteralTooLarge);  // the payload is on its way and we will not read it
    *status = Status::kError;
    return true;
  }
  remaining_ = static_cast<size_t>(size);
  state_ = State::kSkipLiteral;
  return false;
}

bool CommandParser::report_error(Status* status) {
  // A synchronizing literal at the end of a bad line gets no "+", so the command ends here.
  state_ = State::kLine;
  in_command_ = false;
  *status = Status::kError;
  return true;
}

void CommandParser::fail(std::string_view message) {
  error_.fatal = false;
  if (cmd_.tag.empty() && stage_ == Stage::kTag) {
    error_.tag.assign(tag_in_segment());
  } else {
    error_.tag = cmd_.tag;
  }
  error_.message.assign(message);
}

void CommandParser::fail_fatal(std::string_view message) {
  error_.fatal = true;  // keeps the tag set by the fail() that started the skip
  error_.message.assign(message);
  state_ = State::kFatal;
}

std::string_view CommandParser::tag_in_segment() const {
  size_t sp = seg_.find(' ');
  if (sp == std::string::npos) return {};
  std::string_view tag(seg_.data(), sp);
  return valid_tag(tag, limits_.max_tag) ? tag : std::string_view{};
}

std::vector<Arg>& CommandParser::container() {
  // The open lists are always the last element of their parent.
  std::vector<Arg>* items = &cmd_.args;
  for (size_t i = 0; i < depth_; ++i) items = &items->back().items;
  return *items;
}

const char* CommandParser::parse_segment() {
  size_t pos = 0;
  if (stage_ == Stage::kTag) {
    if (seg_.empty()) return kEmptyLine;
    if (const char* error = parse_tag(pos)) return error;
  }
  if (stage_ == Stage::kName) {
    if (const char* error = parse_name(pos)) return error;
  }
  return parse_args(pos);
}

const char* CommandParser::parse_tag(size_t& pos) {
  size_t sp = seg_.find(' ');
  std::string_view tag = std::string_view(seg_).substr(0, sp);
  if (!valid_tag(tag, limits_.max_tag)) return kBadTag;
  cmd_.tag.assign(tag);
  if (sp == std::string::npos) return kNoName;
  pos = sp + 1;
  stage_ = Stage::kName;
  return nullptr;
}

const char* CommandParser::parse_name(size_t& pos) {
  size_t start = pos;
  while (pos < seg_.size() && has_class(seg_[pos], kAtomChar)) ++pos;
  bool at_separator = pos == seg_.size() || seg_[pos] == ' ';
  if (pos == start) return at_separator ? kNoName : kBadName;
  if (!at_separator) return kBadName;
  cmd_.name.assign(seg_, start, pos - start);
  for (char& c : cmd_.name) c = ascii_upper(c);
  stage_ = Stage::kArgs;
  want_sep_ = true;
  return nullptr;
}

const char* CommandParser::parse_args(size_t& pos) {
  while (pos < seg_.size()) {
    char c = seg_[pos];
    if (want_sep_) {
      if (c == ' ') {
        want_sep_ = list_open_ = false;
      } else if (c == ')' && depth_ > 0) {
        --depth_;
      } else {
        return kSyntax;
      }
      ++pos;
    } else if (c == ')') {
      if (!list_open_) return kSyntax;  // ")" right after a separator
      --depth_;
      list_open_ = false;
      want_sep_ = true;
      ++pos;
    } else if (const char* error = parse_item(pos)) {
      return error;
    }
  }
  if (literal_pending_) return nullptr;  // the line goes on after the payload
  if (!want_sep_) return kSyntax;        // trailing SP, or "(" at the end of the line
  return depth_ > 0 ? kUnterminatedList : nullptr;
}

const char* CommandParser::parse_item(size_t& pos) {
  std::vector<Arg>& items = container();
  if (depth_ == 0 && items.size() >= limits_.max_args) return kTooManyArgs;
  if (depth_ > 0 && items.size() >= limits_.max_list_items) return kTooManyItems;
  char c = seg_[pos];
  if (c == '(') {
    if (depth_ >= limits_.max_list_depth) return kTooDeep;
    items.push_back(Arg{ArgKind::kList, {}, {}});
    ++depth_;
    ++pos;
    list_open_ = true;
    return nullptr;
  }
  if (c == '{') return parse_literal(pos);
  if (c == '"') {
    items.push_back(Arg{ArgKind::kQuoted, {}, {}});
    want_sep_ = true;
    return parse_quoted(pos, items.back().text);
  }
  size_t start = pos;
  if (const char* error = limits_.server_grammar ? scan_server_atom(pos) : scan_atom(pos)) return error;
  std::string_view atom(seg_.data() + start, pos - start);
  items.push_back(Arg{is_nil(atom) ? ArgKind::kNil : ArgKind::kAtom, std::string(atom), {}});
  want_sep_ = true;
  return nullptr;
}

const char* CommandParser::scan_atom(size_t& pos) {
  size_t start = pos;
  while (pos < seg_.size() && has_class(seg_[pos], kAstringChar)) ++pos;
  return pos == start ? kSyntax : nullptr;
}

const char* CommandParser::scan_server_atom(size_t& pos) {
  if (seg_[pos] == '\\') ++pos;  // a flag: "\" must be followed by an atom
  size_t start = pos;
  while (pos < seg_.size()) {
    if (seg_[pos] == '[') {
      if (const char* error = scan_section(pos)) return error;
    } else if (has_class(seg_[pos], kServerAtomChar)) {
      ++pos;
    } else {
      break;
    }
  }
  return pos == start ? kSyntax : nullptr;
}

const char* CommandParser::scan_section(size_t& pos) {
  std::string scratch;  // quoted strings stay verbatim in the atom; this only validates them
  for (++pos; pos < seg_.size();) {
    char c = seg_[pos];
    if (c == ']') {
      ++pos;
      return nullptr;
    }
    if (c == '"') {
      if (const char* error = parse_quoted(pos, scratch)) return error;
    } else if (c == ' ' || c == '(' || c == ')' || has_class(c, kServerAtomChar)) {
      ++pos;
    } else {
      return kSyntax;  // CTL, 8-bit, a backslash outside quotes or a literal's "{"
    }
  }
  return kUnterminatedSection;
}

const char* CommandParser::parse_quoted(size_t& pos, std::string& out) {
  ++pos;  // the opening DQUOTE
  while (pos < seg_.size()) {
    auto c = static_cast<unsigned char>(seg_[pos++]);
    if (c == '"') return nullptr;
    if (c == '\\') {
      if (pos == seg_.size()) break;
      char escaped = seg_[pos++];
      if (escaped != '"' && escaped != '\\') return kBadEscape;
      out.push_back(escaped);
      continue;
    }
    // TEXT-CHAR is 7-bit without NUL, CR and LF (an LF cannot occur: it ended the segment).
    if (c == 0 || c >= 0x80 || c == '\r') return kBadQuotedChar;
    out.push_back(static_cast<char>(c));
  }
  return kUnterminatedQuote;
}

const char* CommandParser::parse_literal(size_t& pos) {
  size_t p = pos + 1;
  uint64_t size = 0;
  bool digits = false;
  for (; p < seg_.size() && is_digit(seg_[p]); ++p) {
    if (size <= kMaxNumber) size = size * 10 + static_cast<uint64_t>(seg_[p] - '0');
    digits = true;
  }
  bool nonsync = p < seg_.size() && seg_[p] == '+';
  if (nonsync) ++p;
  // The announcement must end the line: its CRLF has been seen, the payload comes next.
  if (!digits || p + 1 != seg_.size() || seg_[p] != '}') return kBadLiteral;
  size_t limit = nonsync ? limits_.max_nonsync_literal : limits_.max_literal;
  if (size > kMaxNumber || size > limit) return kLiteralTooLarge;
  // The payload must leave room in the command budget for at least the CRLF that ends it.
  if (size + 2 > sat_sub(limits_.max_command, total_)) return kCommandTooLong;
  std::vector<Arg>& items = container();
  items.push_back(Arg{ArgKind::kLiteral, {}, {}});
  items.back().text.reserve(static_cast<size_t>(size));
  remaining_ = static_cast<size_t>(size);
  literal_pending_ = true;
  literal_sync_ = !nonsync;
  want_sep_ = true;
  pos = seg_.size();
  return nullptr;
}

}  // namespace basalt::imap
