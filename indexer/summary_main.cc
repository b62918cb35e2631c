// basalt-summary FILE...: for the N-th file prints
//   * N FETCH (RFC822.SIZE n ENVELOPE (...) BODYSTRUCTURE (...) BODY (...))\r\n
// exactly as an IMAP server would, so the output can be compared with a server's FETCH
// response by one IMAP parser. With --header, BODY[HEADER] is added.
#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <string_view>

#include "indexer/message_summary.h"

namespace {

bool read_file(const char* path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

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
  int status = 0;
  std::string raw;
  for (int i = first; i < argc; ++i) {
    if (!read_file(argv[i], raw)) {
      std::cerr << argv[i] << ": cannot read\n";
      status = 1;
      continue;
    }
    auto summary = basalt::index::summarize_message(raw);
    if (!summary) {
      std::cerr << argv[i] << ": " << summary.error().message << "\n";
      status = 1;
      continue;
    }
    std::string line = "* " + std::to_string(i - first + 1) + " FETCH (RFC822.SIZE " +
                       std::to_string(summary->size) + " ENVELOPE " + summary->envelope +
                       " BODYSTRUCTURE " + summary->bodystructure + " BODY " + summary->body;
    if (with_header) {
      line += " BODY[HEADER] {" + std::to_string(summary->header.size()) + "}\r\n" + summary->header;
    }
    line += ")\r\n";
    std::fwrite(line.data(), 1, line.size(), stdout);
  }
  return status;
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
