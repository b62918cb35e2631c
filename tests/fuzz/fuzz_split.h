// Helpers shared by the parser fuzz targets: input-derived cut positions and a hard check.
#pragma once

#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

namespace basalt::fuzz {

// A failed check is a finding: trap so libFuzzer saves the input.
inline void check(bool ok) {
  if (!ok) __builtin_trap();
}

// Up to 16 ascending cut positions in [0, size], derived from the input itself so a crash
// reproduces from the saved file alone.
inline std::vector<size_t> cuts_for(std::string_view data, uint64_t salt) {
  uint64_t h = 1469598103934665603ull ^ salt;  // FNV-1a, then xorshift for the positions
  for (char c : data) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  std::vector<size_t> cuts(h % 17);
  for (size_t& cut : cuts) {
    h ^= h << 13;
    h ^= h >> 7;
    h ^= h << 17;
    cut = static_cast<size_t>(h % (data.size() + 1));
  }
  std::sort(cuts.begin(), cuts.end());
  return cuts;
}

inline std::vector<size_t> every_byte(size_t size) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < size; ++i) cuts.push_back(i);
  return cuts;
}

}  // namespace basalt::fuzz
