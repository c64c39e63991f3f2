#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <oe/events/config.hpp>
#include <oe/events/tier.hpp>
#include <oe/kernel/result.hpp>

namespace oe::model {

/// How a config value is typed on the wire (SPEC §5): int keys are JSON numbers, decimal keys
/// are strings with exactly two decimals ("1.50").
enum class ConfigType : std::uint8_t { integer, decimal2 };

/// One row of the defaults table — the only place business numbers live.
struct ConfigKeySpec {
    std::string key;
    ConfigType type = ConfigType::integer;
    std::int64_t min = 0;  // Inclusive; hundredths for decimal2.
    std::int64_t max = 0;  // Inclusive; hundredths for decimal2.
    std::int64_t default_value = 0;
};

/// Every config key with its type, range and default, in a stable order.
[[nodiscard]] const std::vector<ConfigKeySpec>& config_keys();
[[nodiscard]] const ConfigKeySpec* find_config_key(std::string_view key);

/// "tier.GOLD.discount_bps" and "tier.GOLD.loyalty_multiplier" name a tier's terms.
[[nodiscard]] std::string tier_discount_key(events::Tier tier);
[[nodiscard]] std::string tier_multiplier_key(events::Tier tier);
/// The tier a tier.* key is about, if it is one.
[[nodiscard]] std::optional<events::Tier> tier_of_key(std::string_view key);

/// "1.50" for 150. Always two decimals.
[[nodiscard]] std::string format_decimal2(std::int64_t hundredths);
/// 150 for "1.50"; nothing unless the text is digits, a dot and exactly two digits.
[[nodiscard]] std::optional<std::int64_t> parse_decimal2(std::string_view text);

/// A config value as an integer (hundredths for decimal2 keys), when it fits the key's type.
[[nodiscard]] std::optional<std::int64_t> numeric_value(const ConfigKeySpec& spec,
                                                        const events::ConfigValue& value);
/// The wire value of `number` for the key (a number, or a two-decimal string).
[[nodiscard]] events::ConfigValue wire_value(const ConfigKeySpec& spec, std::int64_t number);

}  // namespace oe::model
