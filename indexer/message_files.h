// The loop of the support CLIs that print one FETCH line per message file (basalt-summary,
// basalt-fetch): read each file, render it, write the line or report the file's error.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace basalt::index {

// Calls render(raw, n) for files argv[first..argc) (n counts from 1) and writes each line to
// stdout; an unreadable file or a render error is reported on stderr as "<path>: <error>".
// Returns the exit status: 0, or 1 when some file failed.
int print_message_files(int argc, char** argv, int first,
                        const std::function<Result<std::string>(std::string_view raw, int n)>& render);

}  // namespace basalt::index
