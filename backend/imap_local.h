// Stand-in for LIST pattern matching until backend/imap_mailbox_names.h lands.
#pragma once

#include <string_view>

namespace basalt::store::local {

// LIST pattern match: '*' matches anything, '%' anything but the delimiter.
bool list_match(std::string_view pattern, std::string_view name, char delimiter);

}  // namespace basalt::store::local
