#include <oe/kernel/log.hpp>

#include <unistd.h>

#include <oe/kernel/json_text.hpp>
#include <oe/kernel/time.hpp>

namespace oe {

namespace {

std::string_view level_name(LogLevel level) {
    switch (level) {
        case LogLevel::debug:
            return "debug";
        case LogLevel::info:
            return "info";
        case LogLevel::warn:
            return "warn";
        case LogLevel::error:
            return "error";
    }
    return "info";
}

}  // namespace

void log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields) {
    std::string line = "{\"ts\":";
    append_json_string(line, format_iso8601_us(now_us()));
    line += ",\"level\":";
    append_json_string(line, level_name(level));
    line += ",\"msg\":";
    append_json_string(line, message);
    for (const auto& [key, value] : fields) {
        line.push_back(',');
        append_json_string(line, key);
        line.push_back(':');
        append_json_string(line, value);
    }
    line += "}\n";
    std::size_t written = 0;
    while (written < line.size()) {
        const ssize_t n = ::write(STDERR_FILENO, line.data() + written, line.size() - written);
        if (n <= 0) {
            return;  // stderr is gone; a log line is not worth failing a request for.
        }
        written += static_cast<std::size_t>(n);
    }
}

}  // namespace oe
