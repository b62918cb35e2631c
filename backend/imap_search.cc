#include "backend/imap_search.h"

#include <algorithm>
#include <array>
#include <optional>
#include <strings.h>

#include "backend/imap_section.h"
#include "backend/imap_text.h"
#include "backend/mailbox_state.h"

namespace basalt::store::imap {

namespace {

using basalt::imap::Arg;
using basalt::imap::ArgKind;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

Error syntax(const char* message) { return make_error(message, static_cast<int>(SearchErrc::kSyntax)); }

SearchKey leaf(SearchOp op) {
  SearchKey key;
  key.op = op;
  return key;
}

SearchKey flag_key(SearchOp op, uint8_t flag) {
  SearchKey key = leaf(op);
  key.flag = flag;
  return key;
}

// Keys without an argument.
struct Simple {
  const char* name;
  SearchOp op;
  uint8_t flag;
};
constexpr std::array<Simple, 14> kSimpleKeys = {{
    {"ALL", SearchOp::kAll, 0},
    {"ANSWERED", SearchOp::kFlag, kFlagAnswered},
    {"DELETED", SearchOp::kFlag, kFlagDeleted},
    {"DRAFT", SearchOp::kFlag, kFlagDraft},
    {"FLAGGED", SearchOp::kFlag, kFlagFlagged},
    {"SEEN", SearchOp::kFlag, kFlagSeen},
    {"UNANSWERED", SearchOp::kNoFlag, kFlagAnswered},
    {"UNDELETED", SearchOp::kNoFlag, kFlagDeleted},
    {"UNDRAFT", SearchOp::kNoFlag, kFlagDraft},
    {"UNFLAGGED", SearchOp::kNoFlag, kFlagFlagged},
    {"UNSEEN", SearchOp::kNoFlag, kFlagSeen},
    {"NEW", SearchOp::kNew, 0},
    {"OLD", SearchOp::kOld, 0},
    {"RECENT", SearchOp::kRecent, 0},
}};

// Keys with one argument: a string, a date or a number.
enum class ArgType { kString, kFlagAtom, kDate, kNumber };
struct WithArg {
  const char* name;
  SearchOp op;
  ArgType type;
  const char* header;  // the field a header key searches
};
constexpr std::array<WithArg, 18> kArgKeys = {{
    {"BCC", SearchOp::kHeader, ArgType::kString, "Bcc"},
    {"CC", SearchOp::kHeader, ArgType::kString, "Cc"},
    {"FROM", SearchOp::kHeader, ArgType::kString, "From"},
    {"SUBJECT", SearchOp::kHeader, ArgType::kString, "Subject"},
    {"TO", SearchOp::kHeader, ArgType::kString, "To"},
    {"BODY", SearchOp::kBody, ArgType::kString, nullptr},
    {"TEXT", SearchOp::kText, ArgType::kString, nullptr},
    {"KEYWORD", SearchOp::kKeyword, ArgType::kFlagAtom, nullptr},
    {"UNKEYWORD", SearchOp::kNoKeyword, ArgType::kFlagAtom, nullptr},
    {"BEFORE", SearchOp::kBefore, ArgType::kDate, nullptr},
    {"ON", SearchOp::kOn, ArgType::kDate, nullptr},
    {"SINCE", SearchOp::kSince, ArgType::kDate, nullptr},
    {"SENTBEFORE", SearchOp::kSentBefore, ArgType::kDate, nullptr},
    {"SENTON", SearchOp::kSentOn, ArgType::kDate, nullptr},
    {"SENTSINCE", SearchOp::kSentSince, ArgType::kDate, nullptr},
    {"LARGER", SearchOp::kLarger, ArgType::kNumber, nullptr},
    {"SMALLER", SearchOp::kSmaller, ArgType::kNumber, nullptr},
    {"UID", SearchOp::kUid, ArgType::kString, nullptr},
}};

bool is_string(const Arg& arg) { return arg.kind != ArgKind::kList; }  // atom, NIL, quoted, literal

std::optional<int64_t> parse_number(std::string_view text) {
  if (text.empty() || text.size() > 10) return std::nullopt;
  int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value <= 4294967295 ? std::optional<int64_t>(value) : std::nullopt;
}

class KeyParser {
 public:
  explicit KeyParser(std::span<const Arg> args, size_t depth = 0) : args_(args), depth_(depth) {}

  bool at_end() const { return pos_ >= args_.size(); }
  Result<SearchKey> keys();  // one or more, ANDed
  Result<SearchKey> key();

 private:
  Result<SearchKey> named_key(std::string_view name);
  Result<SearchKey> arg_key(const WithArg& spec);
  Result<SearchKey> list_key(const Arg& list);
  Result<SearchKey> set_key(SearchOp op, std::string_view text);
  const Arg* next_string() { return !at_end() && is_string(args_[pos_]) ? &args_[pos_++] : nullptr; }

  std::span<const Arg> args_;
  size_t pos_ = 0;
  size_t depth_;
};

Result<SearchKey> KeyParser::keys() {
  SearchKey all = leaf(SearchOp::kAnd);
  while (!at_end()) {
    auto k = key();
    if (!k) return k;
    all.children.push_back(std::move(*k));
  }
  if (all.children.empty()) return syntax("missing search key");
  if (all.children.size() == 1) return std::move(all.children[0]);
  return all;
}

Result<SearchKey> KeyParser::key() {
  if (at_end()) return syntax("missing search key");
  if (depth_ >= kMaxSearchDepth) return syntax("search too complex");
  const Arg& arg = args_[pos_++];
  if (arg.kind == ArgKind::kList) return list_key(arg);
  if (arg.kind != ArgKind::kAtom) return syntax("unknown search key");
  char first = arg.text[0];
  if ((first >= '0' && first <= '9') || first == '*') return set_key(SearchOp::kSequence, arg.text);
  return named_key(arg.text);
}

Result<SearchKey> KeyParser::list_key(const Arg& list) {
  if (list.items.empty()) return syntax("missing search key");
  return KeyParser(list.items, depth_ + 1).keys();
}

Result<SearchKey> KeyParser::set_key(SearchOp op, std::string_view text) {
  auto set = parse_sequence_set(text);
  if (!set) return syntax("invalid sequence set");
  SearchKey key = leaf(op);
  key.set = std::move(*set);
  return key;
}

Result<SearchKey> KeyParser::named_key(std::string_view name) {
  for (const Simple& s : kSimpleKeys) {
    if (iequals(name, s.name)) return flag_key(s.op, s.flag);
  }
  for (const WithArg& spec : kArgKeys) {
    if (iequals(name, spec.name)) return arg_key(spec);
  }
  if (iequals(name, "NOT") || iequals(name, "OR")) {
    SearchKey key = leaf(iequals(name, "NOT") ? SearchOp::kNot : SearchOp::kOr);
    KeyParser sub(args_.subspan(pos_), depth_ + 1);
    for (size_t i = 0; i < (key.op == SearchOp::kNot ? 1u : 2u); ++i) {
      auto k = sub.key();
      if (!k) return k;
      key.children.push_back(std::move(*k));
    }
    pos_ += sub.pos_;
    return key;
  }
  if (iequals(name, "HEADER")) {
    const Arg* field = next_string();
    const Arg* value = next_string();
    if (!field || !value) return syntax("missing search argument");
    if (field->text.empty()) return syntax("invalid search argument");
    SearchKey key = leaf(SearchOp::kHeader);
    key.name = field->text;
    key.value = fold_case(value->text);
    return key;
  }
  return syntax("unknown search key");
}

Result<SearchKey> KeyParser::arg_key(const WithArg& spec) {
  const Arg* arg = next_string();
  if (!arg) return syntax("missing search argument");
  if (spec.op == SearchOp::kUid) return set_key(SearchOp::kUid, arg->kind == ArgKind::kAtom ? arg->text : "");
  SearchKey key = leaf(spec.op);
  switch (spec.type) {
    case ArgType::kString:
      key.name = spec.header ? spec.header : "";
      key.value = fold_case(arg->text);
      return key;
    case ArgType::kFlagAtom:
      if (arg->kind != ArgKind::kAtom || arg->text[0] == '\\') return syntax("invalid search argument");
      key.name = arg->text;
      return key;
    case ArgType::kDate: {
      if (arg->kind != ArgKind::kAtom && arg->kind != ArgKind::kQuoted) return syntax("invalid search date");
      auto day = parse_search_date(arg->text);
      if (!day) return syntax("invalid search date");
      key.number = *day;
      return key;
    }
    case ArgType::kNumber: {
      auto n = arg->kind == ArgKind::kAtom ? parse_number(arg->text) : std::nullopt;
      if (!n) return syntax("invalid number");
      key.number = *n;
      return key;
    }
  }
  return syntax("unknown search key");
}

Result<void> check_charset(const Arg* charset) {
  if (!charset) return syntax("missing search argument");
  if (iequals(charset->text, "UTF-8") || iequals(charset->text, "US-ASCII")) return {};
  return make_error("unsupported charset", static_cast<int>(SearchErrc::kBadCharset));
}

// Evaluates keys against one message, loading and decoding the body at most once.
class Evaluator {
 public:
  explicit Evaluator(const SearchMessage& m) : m_(m) {}
  bool eval(const SearchKey& key);
  const std::optional<Error>& error() const { return error_; }

 private:
  bool header_contains(std::string_view field, const std::string& needle);
  bool text_contains(const std::string& needle);
  bool body_contains(const std::string& needle);
  bool has_keyword(std::string_view name) const {
    return std::any_of(m_.keywords.begin(), m_.keywords.end(), [&](const std::string& k) { return iequals(k, name); });
  }
  int64_t day() const { return local_day(m_.internal_date.unix_seconds, m_.internal_date.tz_offset_minutes); }
  std::optional<int64_t> sent() {
    if (!sent_) {
      auto dates = header_values(m_.header, "Date");
      sent_ = dates.empty() ? std::nullopt : sent_day(dates[0]);
    }
    return *sent_;
  }

  const SearchMessage& m_;
  std::optional<std::string> body_;  // folded decoded body text
  std::optional<std::optional<int64_t>> sent_;
  std::optional<Error> error_;
};

bool Evaluator::eval(const SearchKey& key) {
  switch (key.op) {
    case SearchOp::kAll: return true;
    case SearchOp::kAnd:
      return std::all_of(key.children.begin(), key.children.end(), [this](const SearchKey& k) { return eval(k); });
    case SearchOp::kOr: return eval(key.children[0]) || eval(key.children[1]);
    case SearchOp::kNot: return !eval(key.children[0]);
    case SearchOp::kSequence: return set_contains(key.set, m_.seq, m_.count);
    case SearchOp::kUid: return set_contains(key.set, m_.uid, m_.max_uid);
    case SearchOp::kFlag: return (m_.flags & key.flag) != 0;
    case SearchOp::kNoFlag: return (m_.flags & key.flag) == 0;
    case SearchOp::kKeyword: return has_keyword(key.name);
    case SearchOp::kNoKeyword: return !has_keyword(key.name);
    case SearchOp::kRecent: return m_.recent;
    case SearchOp::kNew: return m_.recent && !(m_.flags & kFlagSeen);
    case SearchOp::kOld: return !m_.recent;
    case SearchOp::kBefore: return day() < key.number;
    case SearchOp::kOn: return day() == key.number;
    case SearchOp::kSince: return day() >= key.number;
    case SearchOp::kSentBefore: return sent() && *sent() < key.number;
    case SearchOp::kSentOn: return sent() && *sent() == key.number;
    case SearchOp::kSentSince: return sent() && *sent() >= key.number;
    case SearchOp::kLarger: return m_.size > static_cast<uint64_t>(key.number);
    case SearchOp::kSmaller: return m_.size < static_cast<uint64_t>(key.number);
    case SearchOp::kHeader: return header_contains(key.name, key.value);
    case SearchOp::kBody: return body_contains(key.value);
    case SearchOp::kText: return text_contains(key.value);
  }
  return false;
}

bool Evaluator::header_contains(std::string_view field, const std::string& needle) {
  for (const std::string& value : header_values(m_.header, field)) {
    if (needle.empty() || fold_case(decode_header_value(value)).find(needle) != std::string::npos) return true;
  }
  return false;
}

bool Evaluator::text_contains(const std::string& needle) {
  bool found = false;
  for_each_header_field(m_.header, [&](std::string_view, std::string_view field) {
    found = found || fold_case(decode_header_value(field)).find(needle) != std::string::npos;
  });
  return found || body_contains(needle);
}

bool Evaluator::body_contains(const std::string& needle) {
  if (!body_) {
    if (!m_.load_raw) {
      error_ = make_error("search needs the message body");
      return false;
    }
    auto raw = m_.load_raw();
    if (!raw) {
      error_ = raw.error();
      return false;
    }
    body_ = fold_case(decoded_body_text(*raw));
  }
  return body_->find(needle) != std::string::npos;
}

}  // namespace

Result<SearchKey> parse_search(std::span<const Arg> args) {
  if (!args.empty() && args[0].kind == ArgKind::kAtom && iequals(args[0].text, "CHARSET")) {
    if (auto r = check_charset(args.size() > 1 && is_string(args[1]) ? &args[1] : nullptr); !r) return r.error();
    args = args.subspan(2);
  }
  return KeyParser(args).keys();
}

bool needs_body(const SearchKey& key) {
  if (key.op == SearchOp::kBody || key.op == SearchOp::kText) return true;
  return std::any_of(key.children.begin(), key.children.end(), [](const SearchKey& k) { return needs_body(k); });
}

Result<bool> match(const SearchKey& key, const SearchMessage& message) {
  Evaluator evaluator(message);
  bool matched = evaluator.eval(key);
  if (evaluator.error()) return *evaluator.error();
  return matched;
}

}  // namespace basalt::store::imap
