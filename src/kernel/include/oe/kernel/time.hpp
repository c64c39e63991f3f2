#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace oe {

/// Microseconds since the Unix epoch, UTC, from the system clock.
[[nodiscard]] std::int64_t now_us();

/// "2026-11-26T07:24:17.123456Z" (always six fractional digits, always UTC).
[[nodiscard]] std::string format_iso8601_us(std::int64_t us);

/// Parses an ISO 8601 UTC timestamp: "YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|+00:00)". A date alone
/// ("YYYY-MM-DD") means its midnight. Returns nothing when the text is not such a timestamp.
[[nodiscard]] std::optional<std::int64_t> parse_iso8601_us(std::string_view text);

}  // namespace oe
