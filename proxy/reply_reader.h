// Reads whole backend replies out of an evbuffer during the backend login (before the relay).
#pragma once

#include <event2/buffer.h>

#include <string>

namespace basalt::proxy {

enum class ReadStatus { kLine, kNeedMore, kTooLong };

// One CRLF/LF-terminated line, without the terminator.
ReadStatus read_line(evbuffer* input, size_t max, std::string& line);

// One IMAP response: a line plus every literal it announces ({n} or {n+} at a line end) and the
// lines that follow them. Literal payloads are kept in place.
ReadStatus read_imap_response(evbuffer* input, size_t max, std::string& response);

// True if `capabilities` (space-separated, as in a CAPABILITY response) has `name`, ignoring case.
bool has_capability(const std::string& capabilities, std::string_view name);

// "[CAPABILITY a b c] text" → "a b c"; "" when the response has no such code.
std::string capability_code(std::string_view response_text);

}  // namespace basalt::proxy
