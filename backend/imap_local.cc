#include "backend/imap_local.h"

#include <algorithm>
#include <charconv>

namespace basalt::store::local {

namespace {

std::optional<uint32_t> seq_number(std::string_view t) {
  if (t == "*") return 0;
  uint32_t v = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || end != t.data() + t.size() || v == 0) return std::nullopt;
  return v;
}

}  // namespace

std::optional<std::vector<SeqRange>> parse_sequence_set(std::string_view text) {
  std::vector<SeqRange> out;
  while (true) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    size_t colon = item.find(':');
    auto a = seq_number(item.substr(0, colon));
    auto b = colon == std::string_view::npos ? a : seq_number(item.substr(colon + 1));
    if (!a || !b) return std::nullopt;
    out.push_back({*a, *b});
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

std::vector<size_t> resolve(const std::vector<SeqRange>& set, const std::vector<uint32_t>& uids, bool uid) {
  std::vector<bool> chosen(uids.size());
  uint32_t star = uid ? (uids.empty() ? 0 : uids.back()) : static_cast<uint32_t>(uids.size());
  for (SeqRange r : set) {
    uint32_t a = r.first ? r.first : star, b = r.last ? r.last : star;
    if (a > b) std::swap(a, b);
    if (!uid) {
      for (uint32_t s = std::max(a, 1u); s <= b && s <= uids.size(); ++s) chosen[s - 1] = true;
      continue;
    }
    auto lo = std::lower_bound(uids.begin(), uids.end(), a);
    auto hi = std::upper_bound(uids.begin(), uids.end(), b);
    for (auto it = lo; it < hi; ++it) chosen[static_cast<size_t>(it - uids.begin())] = true;
  }
  std::vector<size_t> out;
  for (size_t i = 0; i < chosen.size(); ++i) {
    if (chosen[i]) out.push_back(i);
  }
  return out;
}

bool list_match(std::string_view pattern, std::string_view name, char delimiter) {
  if (pattern.empty()) return name.empty();
  char p = pattern[0];
  if (p == '*' || p == '%') {
    for (size_t i = 0; i <= name.size(); ++i) {
      if (list_match(pattern.substr(1), name.substr(i), delimiter)) return true;
      if (i < name.size() && p == '%' && name[i] == delimiter) return false;
    }
    return false;
  }
  return !name.empty() && name[0] == p && list_match(pattern.substr(1), name.substr(1), delimiter);
}

}  // namespace basalt::store::local
