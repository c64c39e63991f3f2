#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace oe {

enum class LogLevel { debug, info, warn, error };

/// A field of a log line. Values are written as JSON strings.
using LogField = std::pair<std::string_view, std::string>;

/// Writes one JSON line to stderr: {"ts":…,"level":…,"msg":…,<fields>}. Thread-safe; each
/// line is one write(2), so lines from different threads never interleave.
void log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields = {});

}  // namespace oe
