// basalt-summary FILE...: for the N-th file prints
//   * N FETCH (RFC822.SIZE n ENVELOPE (...) BODYSTRUCTURE (...) BODY (...))\r\n
// exactly as an IMAP server would, so the output can be compared with a server's FETCH
// response by one IMAP parser. With --header, BODY[HEADER] is added.
#include <exception>
#include <iostream>
#include <string>
#include <string_view>

#include "indexer/message_files.h"
#include "indexer/message_summary.h"

namespace {

int run(int argc, char** argv) {
  bool with_header = false;
  int first = 1;
  if (argc > 1 && std::string_view(argv[1]) == "--header") {
    with_header = true;
    first = 2;
  }
  if (first >= argc) {
    std::cerr << "usage: basalt-summary [--header] FILE...\n";
    return 2;
  }
  auto render = [&](std::string_view raw, int n) -> basalt::Result<std::string> {
    auto summary = basalt::index::summarize_message(raw);
    if (!summary) return summary.error();
    std::string line = "* " + std::to_string(n) + " FETCH (RFC822.SIZE " + std::to_string(summary->size) +
                       " ENVELOPE " + summary->envelope + " BODYSTRUCTURE " + summary->bodystructure + " BODY " +
                       summary->body;
    if (with_header) {
      line += " BODY[HEADER] {" + std::to_string(summary->header.size()) + "}\r\n" + summary->header;
    }
    return line + ")\r\n";
  };
  return basalt::index::print_message_files(argc, argv, first, render);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "basalt-summary: " << e.what() << "\n";
    return 1;
  }
}
