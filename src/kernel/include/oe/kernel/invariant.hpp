#pragma once

#include <source_location>
#include <stdexcept>
#include <string>

namespace oe {

/// Thrown when an invariant fails. In production it fails the one request that hit it (the
/// request boundary catches it and answers 500); in tests it fails the test loudly.
class InvariantViolation : public std::logic_error {
  public:
    using std::logic_error::logic_error;
};

[[noreturn]] void invariant_failed(const char* expression, const std::string& message,
                                   std::source_location where = std::source_location::current());

}  // namespace oe

/// An assertion that stays on in release builds (userver's UINVARIANT).
#define OE_INVARIANT(condition, message)                 \
    do {                                                 \
        if (!(condition)) [[unlikely]] {                 \
            ::oe::invariant_failed(#condition, message); \
        }                                                \
    } while (false)
