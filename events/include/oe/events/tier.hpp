#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace oe::events {

/// A partner's commercial tier (SPEC §4). The wire form is the upper-case name ("GOLD").
/// Values are stable; never renumber.
enum class Tier : std::uint8_t { bronze, silver, gold, platinum };

/// Every tier, lowest first, for code that walks all of them (defaults, config keys).
inline constexpr std::array<Tier, 4> all_tiers{Tier::bronze, Tier::silver, Tier::gold,
                                               Tier::platinum};

/// "BRONZE", "SILVER", "GOLD" or "PLATINUM". A value outside the enum is a bug (invariant).
[[nodiscard]] std::string_view to_string(Tier tier);

/// The tier named exactly "BRONZE", "SILVER", "GOLD" or "PLATINUM" (case-sensitive, as on the
/// wire), or nothing.
[[nodiscard]] std::optional<Tier> parse_tier(std::string_view text);

}  // namespace oe::events
