#include "indexer/message_files.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>

namespace basalt::index {

namespace {

bool read_file(const char* path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

}  // namespace

int print_message_files(int argc, char** argv, int first,
                        const std::function<Result<std::string>(std::string_view raw, int n)>& render) {
  int status = 0;
  std::string raw;
  for (int i = first; i < argc; ++i) {
    if (!read_file(argv[i], raw)) {
      std::cerr << argv[i] << ": cannot read\n";
      status = 1;
      continue;
    }
    auto line = render(raw, i - first + 1);
    if (!line) {
      std::cerr << argv[i] << ": " << line.error().message << "\n";
      status = 1;
      continue;
    }
    std::fwrite(line->data(), 1, line->size(), stdout);
  }
  return status;
}

}  // namespace basalt::index
