// IMAP string writers (RFC 3501 §4.3, §9 string / nstring) for ENVELOPE and BODYSTRUCTURE.
//
// One rule for every string Basalt emits: a quoted string when every byte may appear inside
// one (7-bit, no CR, LF or NUL; '"' and '\' escaped), otherwise a literal {n}\r\n<bytes>.
// Header values can carry 8-bit bytes (RFC 6532, or plain broken mail) and those must reach
// the client unchanged, which only a literal allows.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace basalt::index::imap {

// Appends `s` as a quoted string or a literal. NUL bytes (not allowed in any IMAP string)
// become 0x80, as Dovecot does, so the output stays parseable and the length is kept.
void append_string(std::string& out, std::string_view s);

// NIL for nullopt, else append_string.
void append_nstring(std::string& out, const std::optional<std::string>& s);

// Like append_nstring, but header folding is undone first: CR and LF are dropped, and a
// space is put where a line break was not followed by white space (RFC 5322 §2.2.3).
void append_nstring_unfolded(std::string& out, const std::optional<std::string>& s);

// For text shown to people (Subject, display names): CR/LF/TAB count as white space, runs
// of white space become one space, leading and trailing white space is dropped. This is
// what Dovecot sends, and clients that cached a Dovecot ENVELOPE see the same string.
void append_string_for_humans(std::string& out, std::string_view s);

// The unfolded form used by append_nstring_unfolded (exposed for tests).
std::string unfold(std::string_view s);

}  // namespace basalt::index::imap
