// libFuzzer target: the PROXY protocol v1/v2 header parser. Every input either needs more bytes,
// fails, or yields a header whose length fits inside the input; no prefix of a complete header
// may be reported as an error.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/proxy_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace basalt::proxy_protocol;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  Header header;
  std::string error;
  Status status = parse(input, header, error);
  if (status == Status::kDone) {
    if (header.length == 0 || header.length > size) std::abort();
    if (!header.local && (!header.source || !header.destination)) std::abort();
    for (size_t n = 0; n < header.length; ++n) {
      Header partial;
      if (parse(input.substr(0, n), partial, error) != Status::kNeedMore) std::abort();
    }
  }
  if (status == Status::kError && error.empty()) std::abort();
  return 0;
}
