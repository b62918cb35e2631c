// POP3 multi-line response bodies (RFC 1939 section 3), no I/O: CRLF line ends and
// dot-stuffing, produced chunk by chunk so a large message is never copied whole.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace basalt::pop3 {

class DotStuffer {
 public:
  // Appends `in` to `out` with every bare LF sent as CRLF (the RFC822.SIZE rule) and a '.'
  // doubled at the start of a line. Chunks may split lines anywhere, even inside a CRLF.
  void feed(std::string_view in, std::string& out);
  // Ends the response: CRLF if the last line is unterminated, then ".\r\n". Resets.
  void finish(std::string& out);

 private:
  bool line_start_ = true;
  bool after_cr_ = false;  // the last byte fed was CR
};

// What TOP n k sends (before stuffing): the header block through the blank line that ends it,
// then the first `lines` lines of the body. The whole message when it is shorter.
std::string_view message_top(std::string_view raw, uint64_t lines);

}  // namespace basalt::pop3
