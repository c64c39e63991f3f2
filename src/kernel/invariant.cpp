#include <oe/kernel/invariant.hpp>

#include <fmt/format.h>

namespace oe {

void invariant_failed(const char* expression, const std::string& message,
                      std::source_location where) {
    throw InvariantViolation(fmt::format("invariant failed: {} ({}) at {}:{}", message, expression,
                                         where.file_name(), where.line()));
}

}  // namespace oe
