#include "backend/imap_sequence.h"

#include <algorithm>
#include <optional>
#include <utility>

namespace basalt::store::imap {

namespace {

constexpr uint64_t kMaxNumber = 4294967295u;

Error syntax_error() { return make_error("invalid sequence set", static_cast<int>(SeqErrc::kSyntax)); }

// seq-number = nz-number / "*"; nz-number has no leading zero and fits in 32 bits.
std::optional<uint32_t> parse_value(std::string_view text) {
  if (text == "*") return kSeqStar;
  if (text.empty() || text.size() > 10 || text[0] < '1' || text[0] > '9') return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (value > kMaxNumber) return std::nullopt;
  return static_cast<uint32_t>(value);
}

std::optional<SeqRange> parse_range(std::string_view text) {
  size_t colon = text.find(':');
  auto first = parse_value(text.substr(0, colon));
  if (!first) return std::nullopt;
  if (colon == std::string_view::npos) return SeqRange{*first, *first};
  auto last = parse_value(text.substr(colon + 1));  // a second ':' makes this fail
  if (!last) return std::nullopt;
  return SeqRange{*first, *last};
}

// The range with "*" replaced by `star`, as [low, high].
std::pair<uint32_t, uint32_t> bounds(const SeqRange& range, uint32_t star) {
  uint32_t a = range.first == kSeqStar ? star : range.first;
  uint32_t b = range.last == kSeqStar ? star : range.last;
  return std::minmax(a, b);
}

// Half-open position intervals, merged and expanded into ascending unique positions.
std::vector<uint32_t> expand(std::vector<std::pair<uint32_t, uint32_t>> intervals) {
  std::sort(intervals.begin(), intervals.end());
  std::vector<uint32_t> out;
  uint32_t next = 0;  // positions below this are already emitted
  for (auto [begin, end] : intervals) {
    for (uint32_t i = std::max(begin, next); i < end; ++i) out.push_back(i);
    next = std::max(next, end);
  }
  return out;
}

}  // namespace

Result<SequenceSet> parse_sequence_set(std::string_view text) {
  SequenceSet set;
  size_t start = 0;
  for (;;) {
    size_t comma = text.find(',', start);
    auto range = parse_range(text.substr(start, comma == std::string_view::npos ? comma : comma - start));
    if (!range) return syntax_error();
    set.ranges.push_back(*range);
    if (comma == std::string_view::npos) return set;
    start = comma + 1;
  }
}

Result<std::vector<uint32_t>> resolve_seqnums(const SequenceSet& set, uint32_t count) {
  std::vector<std::pair<uint32_t, uint32_t>> intervals;
  intervals.reserve(set.ranges.size());
  for (const SeqRange& range : set.ranges) {
    auto [low, high] = bounds(range, count);
    if (low == 0 || high > count) {  // low == 0 only when "*" met an empty mailbox
      return make_error("invalid message sequence number", static_cast<int>(SeqErrc::kOutOfRange));
    }
    intervals.emplace_back(low - 1, high);
  }
  return expand(std::move(intervals));
}

std::vector<uint32_t> resolve_uids(const SequenceSet& set, std::span<const uint32_t> uids) {
  if (uids.empty()) return {};
  std::vector<std::pair<uint32_t, uint32_t>> intervals;
  intervals.reserve(set.ranges.size());
  for (const SeqRange& range : set.ranges) {
    auto [low, high] = bounds(range, uids.back());
    auto begin = std::lower_bound(uids.begin(), uids.end(), low);
    auto end = std::upper_bound(begin, uids.end(), high);
    intervals.emplace_back(static_cast<uint32_t>(begin - uids.begin()), static_cast<uint32_t>(end - uids.begin()));
  }
  return expand(std::move(intervals));
}

bool set_contains(const SequenceSet& set, uint32_t value, uint32_t star) {
  return std::any_of(set.ranges.begin(), set.ranges.end(), [&](const SeqRange& range) {
    auto [low, high] = bounds(range, star);
    return value >= low && value <= high;
  });
}

std::string format_uid_set(std::span<const uint32_t> ascending_uids) {
  std::string out;
  size_t i = 0;
  while (i < ascending_uids.size()) {
    uint32_t first = ascending_uids[i];
    uint32_t last = first;
    // Extend the run over duplicates and consecutive values.
    while (++i < ascending_uids.size() && uint64_t{ascending_uids[i]} <= uint64_t{last} + 1) {
      last = std::max(last, ascending_uids[i]);
    }
    if (!out.empty()) out += ',';
    out += std::to_string(first);
    if (last != first) out += ':' + std::to_string(last);
  }
  return out;
}

}  // namespace basalt::store::imap
