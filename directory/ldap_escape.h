// Escaping of user-supplied text before it reaches LDAP: RFC 4515 filter values, RFC 4514 DN
// attribute values, and the user-filter template ("(uid=%u)").
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/result.h"

namespace basalt::directory {

// Longest user name accepted; longer input is refused before any LDAP traffic.
inline constexpr size_t kMaxUserNameLength = 256;

// Refuses user names that are empty, longer than kMaxUserNameLength bytes, contain a NUL, CR,
// LF or any other control byte (0x00-0x1f, 0x7f), or are not valid UTF-8. Such names cannot
// belong to a real account; refusing them early keeps them out of filters and logs.
Result<void> validate_user_name(std::string_view user);

// RFC 4515 section 3: escapes '*', '(', ')', '\', NUL and every byte outside printable ASCII
// (control bytes and all 8-bit bytes) as "\xx" (two lowercase hex digits).
std::string escape_filter_value(std::string_view value);

// RFC 4514 section 2.4: escapes a string for use as an attribute value inside a DN.
std::string escape_dn_value(std::string_view value);

// Checks a filter template at configuration time: parenthesised, balanced, at least one "%u",
// and no '%' other than "%u" and "%%".
Result<void> validate_filter_template(std::string_view filter_template);

// Renders `filter_template`, replacing "%u" with the escaped user name and "%%" with '%'.
// Fails when the user name is refused by validate_user_name or the template is malformed.
Result<std::string> render_filter(std::string_view filter_template, std::string_view user);

}  // namespace basalt::directory
