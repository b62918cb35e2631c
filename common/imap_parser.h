// Incremental IMAP command parser (RFC 3501 + RFC 7888 LITERAL+), no I/O.
//
// The caller feeds whatever bytes it has read; the parser returns NeedMore, Command,
// NeedContinuation or Error. Every limit is checked before anything is allocated for it.
// After a non-fatal error the parser has already skipped to the end of the bad command (including
// a LITERAL+ payload the client sends regardless), so the caller answers "<tag> BAD" and feeds on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/line_reader.h"

namespace basalt::imap {

struct Limits {
  size_t max_line = 8192;           // bytes of one command line, excluding literal payloads, including CRLF
  size_t max_tag = 64;
  size_t max_args = 3;              // top-level arguments after the command name
  size_t max_list_items = 64;       // items in one parenthesized list (ID has up to 30 pairs)
  size_t max_list_depth = 1;        // lists may not nest deeper
  size_t max_literal = 65536;       // one synchronizing literal's payload
  size_t max_nonsync_literal = 4096;// LITERAL+ {n+} payload
  size_t max_command = 131072;      // total bytes of one command including literals
  // The full client grammar a server needs (off for the proxy's pre-auth commands). Atoms may then
  // hold "*" and "%" (sequence sets, LIST patterns) and start with "\" (flags), and a "[" in an
  // atom opens a section running to its "]" that may hold SP, parentheses and quoted strings, all
  // kept verbatim: `BODY.PEEK[HEADER.FIELDS (From "X-Y")]<0.100>` is one atom. A section cannot
  // hold a literal; an unterminated one is a non-fatal error.
  bool server_grammar = false;
};

enum class ArgKind { kAtom, kQuoted, kLiteral, kList, kNil };

// text: the unescaped value (for kNil the atom as sent, e.g. "nil", so astring users still see it);
// items: the elements of a kList.
struct Arg {
  ArgKind kind;
  std::string text;
  std::vector<Arg> items;
};

struct Command {
  std::string tag;
  std::string name;  // uppercased ASCII
  std::vector<Arg> args;
};

class CommandParser {
 public:
  explicit CommandParser(Limits limits = {});

  // Consumes bytes of `input` (possibly only part of it) and sets `consumed`. Returns:
  //  kNeedMore: all of input consumed, command incomplete;
  //  kCommand: a whole command parsed (take it with take_command()); bytes after it are NOT consumed;
  //  kNeedContinuation: a synchronizing literal {n} passed the limits; caller must send "+ ..."
  //    then feed more (bytes after the CRLF that ends "{n}" are not consumed);
  //  kError: see error(). Non-fatal: the bad command has been skipped, answer and feed on.
  //    Fatal: close the connection; further feeds return kError and consume nothing.
  // Lines may be long (up to max_line + max_command bytes) before a non-fatal error turns fatal:
  // after an error at most max_command further bytes are skipped looking for the command's end.
  Status feed(std::string_view input, size_t& consumed);
  Command take_command();
  const ParseError& error() const { return error_; }
  void set_limits(const Limits& limits) { limits_ = limits; }  // e.g. different limits after authentication
  void reset();
  void wipe();  // reset() and zero the line buffer (the last command carried a credential)

 private:
  enum class State : uint8_t { kLine, kLiteral, kSkipLine, kSkipLiteral, kFatal };
  enum class Stage : uint8_t { kTag, kName, kArgs };

  // Recognizes a "{n}" / "{n+}" literal announcement at the end of a line, one byte at a time,
  // so a bad line that is skipped (never buffered) still tells us whether a payload follows.
  class LiteralTrailer {
   public:
    void push(char c);
    void reset() { state_ = kNone; }
    bool present() const { return state_ == kClose || state_ == kCloseCr; }
    bool nonsync() const { return nonsync_; }
    uint64_t size() const { return size_; }

   private:
    enum : uint8_t { kNone, kOpen, kDigits, kPlus, kClose, kCloseCr } state_ = kNone;
    bool nonsync_ = false;
    uint64_t size_ = 0;  // stops growing past 2^32, so it cannot overflow
  };

  // One step of feed(); returns true (and sets *status) when feed() must return.
  bool step_line(std::string_view rest, size_t& consumed, Status* status);
  bool step_literal(std::string_view rest, size_t& consumed, Status* status);
  bool step_skip_line(std::string_view rest, size_t& consumed, Status* status);
  bool step_skip_literal(std::string_view rest, size_t& consumed, Status* status);

  void begin_command();
  bool end_of_segment(Status* status);
  bool after_bad_segment(Status* status);
  bool end_of_skipped_line(Status* status);
  bool skip_literal(Status* status);
  bool report_error(Status* status);
  void fail(std::string_view message);
  void fail_fatal(std::string_view message);

  // Parsing one complete line segment (seg_) with the state kept across literals.
  const char* parse_segment();
  const char* parse_tag(size_t& pos);
  const char* parse_name(size_t& pos);
  const char* parse_args(size_t& pos);
  const char* parse_item(size_t& pos);
  const char* scan_atom(size_t& pos);
  const char* scan_server_atom(size_t& pos);
  const char* scan_section(size_t& pos);
  const char* parse_quoted(size_t& pos, std::string& out);
  const char* parse_literal(size_t& pos);
  std::vector<Arg>& container();
  std::string_view tag_in_segment() const;

  Limits limits_;
  State state_ = State::kLine;
  Stage stage_ = Stage::kTag;
  bool in_command_ = false;     // some byte of the current command has been consumed
  bool want_sep_ = false;       // an item just ended: SP, ")" or end of line must follow
  bool list_open_ = false;      // "(" just read: ")" may close an empty list
  bool literal_pending_ = false;
  bool literal_sync_ = false;
  size_t depth_ = 0;            // open lists
  size_t line_bytes_ = 0;       // non-literal bytes of this command so far, CRLFs included
  size_t total_ = 0;            // all bytes of this command so far
  size_t remaining_ = 0;        // literal payload bytes still to read or skip
  size_t skipped_ = 0;          // bytes skipped since the current error was detected
  std::string seg_;             // the current line segment (reused, so no per-command allocation)
  LiteralTrailer trailer_;
  Command cmd_;
  ParseError error_;
};

}  // namespace basalt::imap
