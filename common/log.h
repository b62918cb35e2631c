// Named spdlog loggers, one per component.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

namespace basalt {

// Returns the logger for `component` ("proxy", "directory", ...), creating it on first use.
std::shared_ptr<spdlog::logger> logger(const std::string& component);

// Sets the level of every logger ("trace", "debug", "info", "warn", "error").
void set_log_level(std::string_view level);

// Client-supplied text made safe for a log line: control and 8-bit bytes as \xNN, cut at `max`.
std::string log_safe(std::string_view text, size_t max = 64);

}  // namespace basalt
