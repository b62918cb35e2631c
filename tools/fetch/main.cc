// basalt-fetch ITEMS FILE...: for the N-th file prints "* N FETCH (...)\r\n" as basalt-store
// renders `FETCH N ITEMS` for that message (UID N, no flags, internal date 0), so section
// answers can be compared with another server's. ITEMS is the FETCH argument as a client
// sends it, e.g. "(BODY.PEEK[1] BODY.PEEK[HEADER.FIELDS (FROM)])".
#include <exception>
#include <iostream>
#include <string>

#include "backend/imap_fetch.h"
#include "common/imap_parser.h"
#include "indexer/message_files.h"
#include "indexer/message_summary.h"

namespace {

using namespace basalt;

// ITEMS through the server's command parser and FETCH grammar, as the store would see them.
Result<store::imap::FetchRequest> parse_items(const std::string& items) {
  imap::Limits limits;
  limits.server_grammar = true;
  limits.max_list_depth = 2;
  imap::CommandParser parser(limits);
  std::string line = "A FETCH 1 " + items + "\r\n";
  size_t consumed = 0;
  if (parser.feed(line, consumed) != imap::Status::kCommand) return make_error("cannot parse the items");
  imap::Command command = parser.take_command();
  if (command.args.size() != 2) return make_error("expected one FETCH argument");
  return store::imap::parse_fetch_items(command.args[1]);
}

Result<std::string> fetch_message(std::string_view raw, uint32_t n, const store::imap::FetchRequest& request) {
  auto summary = index::summarize_message(raw);
  if (!summary) return summary.error();
  store::imap::FetchMessage message;
  message.uid = n;
  message.size = summary->size;
  message.summary = &*summary;
  message.raw = raw;
  std::string out = "* " + std::to_string(n) + " FETCH (";
  if (auto r = store::imap::render_fetch(request, message, out); !r) return r.error();
  return out + ")\r\n";
}

int run(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: basalt-fetch ITEMS FILE...\n";
    return 2;
  }
  auto request = parse_items(argv[1]);
  if (!request) {
    std::cerr << "basalt-fetch: " << request.error().message << "\n";
    return 2;
  }
  return index::print_message_files(argc, argv, 2, [&](std::string_view raw, int n) {
    return fetch_message(raw, static_cast<uint32_t>(n), *request);
  });
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "basalt-fetch: " << e.what() << "\n";
    return 1;
  }
}
