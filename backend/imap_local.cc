#include "backend/imap_local.h"

namespace basalt::store::local {

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
