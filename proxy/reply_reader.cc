#include "proxy/reply_reader.h"

#include <strings.h>

#include <cctype>

namespace basalt::proxy {
namespace {

// Size of the literal announced at the end of `line` ({n} or {n+}), or -1.
long long trailing_literal(std::string_view line) {
  if (line.size() < 3 || line.back() != '}') return -1;
  size_t open = line.rfind('{');
  if (open == std::string_view::npos) return -1;
  std::string_view digits = line.substr(open + 1, line.size() - open - 2);
  if (!digits.empty() && digits.back() == '+') digits.remove_suffix(1);
  if (digits.empty() || digits.size() > 9) return -1;
  long long n = 0;
  for (char c : digits) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return -1;
    n = n * 10 + (c - '0');
  }
  return n;
}

}  // namespace

ReadStatus read_line(evbuffer* input, size_t max, std::string& line) {
  size_t eol_len = 0;
  evbuffer_ptr eol = evbuffer_search_eol(input, nullptr, &eol_len, EVBUFFER_EOL_CRLF);
  if (eol.pos < 0) return evbuffer_get_length(input) > max ? ReadStatus::kTooLong : ReadStatus::kNeedMore;
  if (static_cast<size_t>(eol.pos) > max) return ReadStatus::kTooLong;
  line.resize(static_cast<size_t>(eol.pos));
  evbuffer_remove(input, line.data(), line.size());
  evbuffer_drain(input, eol_len);
  return ReadStatus::kLine;
}

ReadStatus read_imap_response(evbuffer* input, size_t max, std::string& response) {
  size_t total = evbuffer_get_length(input);
  size_t start = 0;
  std::string text;
  while (true) {
    evbuffer_ptr from;
    evbuffer_ptr_set(input, &from, start, EVBUFFER_PTR_SET);
    size_t eol_len = 0;
    evbuffer_ptr eol = evbuffer_search_eol(input, &from, &eol_len, EVBUFFER_EOL_CRLF);
    if (eol.pos < 0) return total - start > max || start > max ? ReadStatus::kTooLong : ReadStatus::kNeedMore;
    size_t end = static_cast<size_t>(eol.pos);
    if (end > max) return ReadStatus::kTooLong;
    std::string segment(end - start, '\0');
    evbuffer_copyout_from(input, &from, segment.data(), segment.size());
    text += segment;
    long long literal = trailing_literal(segment);
    size_t next = end + eol_len;
    if (literal < 0) {
      evbuffer_drain(input, next);
      response = std::move(text);
      return ReadStatus::kLine;
    }
    if (next + static_cast<size_t>(literal) > max) return ReadStatus::kTooLong;
    if (next + static_cast<size_t>(literal) > total) return ReadStatus::kNeedMore;
    std::string payload(static_cast<size_t>(literal), '\0');
    evbuffer_ptr_set(input, &from, next, EVBUFFER_PTR_SET);
    evbuffer_copyout_from(input, &from, payload.data(), payload.size());
    text += "\r\n" + payload;
    start = next + static_cast<size_t>(literal);
  }
}

bool has_capability(const std::string& capabilities, std::string_view name) {
  size_t pos = 0;
  while (pos < capabilities.size()) {
    size_t end = capabilities.find(' ', pos);
    if (end == std::string::npos) end = capabilities.size();
    if (end - pos == name.size() && strncasecmp(capabilities.data() + pos, name.data(), name.size()) == 0) {
      return true;
    }
    pos = end + 1;
  }
  return false;
}

std::string capability_code(std::string_view text) {
  constexpr std::string_view kCode = "[CAPABILITY ";
  if (text.size() < kCode.size() || strncasecmp(text.data(), kCode.data(), kCode.size()) != 0) return {};
  size_t close = text.find(']');
  if (close == std::string_view::npos) return {};
  return std::string(text.substr(kCode.size(), close - kCode.size()));
}

}  // namespace basalt::proxy
