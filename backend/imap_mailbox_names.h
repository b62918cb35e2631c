// Mailbox names in IMAP (RFC 3501 §5.1, §5.1.3, §6.3.8, §6.3.9): validation, INBOX, LIST /
// LSUB pattern matching and quoting for responses. Pure functions, no I/O.
//
// Basalt's hierarchy delimiter is '/'. Names are stored as the client sends them, in modified
// UTF-7, which validate_mailbox_name() checks strictly (the canonical encoding only), so one
// mailbox never has two spellings.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace basalt::store::imap {

inline constexpr char kHierarchyDelimiter = '/';
inline constexpr size_t kMaxMailboxNameBytes = 1024;

// "inbox" in any case is INBOX (RFC 3501 §5.1); every other name is returned unchanged.
// Children of INBOX ("inbox/x") are case-sensitive, as in Dovecot.
std::string normalize_inbox(std::string_view name);

// Fails with a message for "NO" (after normalize_inbox(); CREATE strips one trailing
// delimiter first, RFC 3501 §6.3.3):
//   "empty mailbox name"; "mailbox name too long" (> 1024 bytes);
//   "invalid character in mailbox name" (a byte outside 0x20-0x7e, or "*" / "%", which would
//     make LIST patterns ambiguous);
//   "invalid hierarchy in mailbox name" (leading or trailing "/", or "//");
//   "invalid modified UTF-7 in mailbox name" (unterminated or empty "&...-" other than "&-",
//     a bad base64 byte, non-zero padding bits, broken UTF-16 surrogates, printable ASCII
//     encoded, or two adjacent encoded runs: anything but the canonical form).
Result<void> validate_mailbox_name(std::string_view name);

// Modified UTF-7 -> UTF-8, strict as above (nullopt when invalid); and back.
std::optional<std::string> mutf7_to_utf8(std::string_view name);
std::string utf8_to_mutf7(std::string_view utf8);

// RFC 3501 §6.3.8: the reference and the pattern joined into one pattern ("" + "*" = "*",
// "a/" + "b%" = "a/b%", "a" + "/b" = "a/b"). An empty pattern is the caller's special case
// (LIST "" "" answers with the delimiter), never passed here.
std::string join_list_pattern(std::string_view reference, std::string_view pattern);

// Whether `name` matches the LIST pattern: "*" matches any run of characters, "%" any run
// without the delimiter; the INBOX part of a pattern matches case-insensitively. Linear in
// pattern length x name length (no backtracking blow-up on "*a*a*a...").
bool list_match(std::string_view pattern, std::string_view name);

// Appends the name as an IMAP string for a response: quoted, or a literal when needed.
void append_mailbox_name(std::string& out, std::string_view name);

}  // namespace basalt::store::imap
