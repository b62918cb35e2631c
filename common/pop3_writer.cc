#include "common/pop3_writer.h"

#include <cstring>

namespace basalt::pop3 {

void DotStuffer::feed(std::string_view in, std::string& out) {
  size_t pos = 0;
  while (pos < in.size()) {
    if (line_start_ && in[pos] == '.') out.push_back('.');
    line_start_ = false;
    const void* lf = std::memchr(in.data() + pos, '\n', in.size() - pos);
    size_t end = lf ? static_cast<size_t>(static_cast<const char*>(lf) - in.data()) : in.size();
    out.append(in.data() + pos, end - pos);
    if (end > pos) after_cr_ = in[end - 1] == '\r';
    if (!lf) return;
    out.append(after_cr_ ? "\n" : "\r\n");
    after_cr_ = false;
    line_start_ = true;
    pos = end + 1;
  }
}

void DotStuffer::finish(std::string& out) {
  if (!line_start_) out.append(after_cr_ ? "\n" : "\r\n");
  out.append(".\r\n");
  *this = DotStuffer{};
}

std::string_view message_top(std::string_view raw, uint64_t lines) {
  // The header ends after the first empty line ("\n" or "\r\n" alone).
  size_t pos = 0;
  while (pos < raw.size()) {
    size_t lf = raw.find('\n', pos);
    if (lf == std::string_view::npos) return raw;
    bool empty = lf == pos || (lf == pos + 1 && raw[pos] == '\r');
    pos = lf + 1;
    if (empty) break;
  }
  for (; lines > 0 && pos < raw.size(); --lines) {
    size_t lf = raw.find('\n', pos);
    if (lf == std::string_view::npos) return raw;
    pos = lf + 1;
  }
  return raw.substr(0, pos);
}

}  // namespace basalt::pop3
