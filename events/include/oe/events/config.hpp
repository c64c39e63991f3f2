#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include <oe/events/tier.hpp>

namespace oe::events {

/// A tier's discount and loyalty multiplier changed (ChangeTierConfig, SPEC §5).
/// Version 2 stores the multiplier as the two-place decimal string every config value uses
/// ("loyalty_multiplier":"1.75"); version 1 stored an integer ("loyalty_multiplier_hundredths":
/// 175) and is upcast on read (published_upcasters()).
struct TierConfigChanged {
    static constexpr std::string_view type_name = "TierConfigChanged";
    static constexpr std::uint16_t schema_version = 2;

    Tier tier = Tier::bronze;
    std::int32_t discount_bps = 0;                   // 0..10000.
    std::int32_t loyalty_multiplier_hundredths = 0;  // >= 0; 150 means x1.50.
    std::int64_t changed_at_us = 0;  // When the change was made (UTC µs); the handler's clock.

    bool operator==(const TierConfigChanged&) const = default;
};

/// A config value as stored: an integer, or a decimal with exactly two places ("2.50"), kept as
/// text so no floating point is ever involved.
using ConfigValue = std::variant<std::int64_t, std::string>;

/// True when `text` is a decimal with exactly two places: 1..16 digits, '.', 2 digits ("0.10",
/// "100.00"). No sign, no exponent. Sixteen integer digits keep the value in hundredths
/// within int64.
[[nodiscard]] bool is_two_place_decimal(std::string_view text);

/// A system config key was set (ChangeSystemConfig, SPEC §5). The key's own type and range
/// are the command's business; the event only guarantees the value's shape.
struct SystemConfigChanged {
    static constexpr std::string_view type_name = "SystemConfigChanged";
    static constexpr std::uint16_t schema_version = 1;

    std::string key;
    ConfigValue value = std::int64_t{0};  // A string value is is_two_place_decimal.
    std::int64_t changed_at_us = 0;       // When the change was made (UTC µs).

    bool operator==(const SystemConfigChanged&) const = default;
};

/// A system config key went back to its default.
struct SystemConfigReset {
    static constexpr std::string_view type_name = "SystemConfigReset";
    static constexpr std::uint16_t schema_version = 1;

    std::string key;
    std::int64_t changed_at_us = 0;  // When the reset was made (UTC µs).

    bool operator==(const SystemConfigReset&) const = default;
};

/// Canonical JSON of each event (see partner.hpp).
[[nodiscard]] std::string to_json(const TierConfigChanged& event);
[[nodiscard]] std::string to_json(const SystemConfigChanged& event);
[[nodiscard]] std::string to_json(const SystemConfigReset& event);

}  // namespace oe::events
