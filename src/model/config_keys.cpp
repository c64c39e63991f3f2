#include <oe/model/config_keys.hpp>

#include <charconv>

#include <fmt/format.h>

namespace oe::model {

namespace {

// SPEC §4–§5 defaults: discount in basis points and loyalty multiplier per tier.
struct TierDefault {
    events::Tier tier;
    std::int64_t discount_bps;
    std::int64_t multiplier_hundredths;
};
constexpr TierDefault tier_defaults[] = {
    {events::Tier::bronze, 0, 100},
    {events::Tier::silver, 500, 125},
    {events::Tier::gold, 1'000, 150},
    {events::Tier::platinum, 1'500, 200},
};

constexpr std::int64_t money_idr_max = 1'000'000'000'000'000;  // 10^15 rupiah.

std::vector<ConfigKeySpec> build_table() {
    std::vector<ConfigKeySpec> table;
    for (const auto& d : tier_defaults) {
        table.push_back({tier_discount_key(d.tier), ConfigType::integer, 0, 9'000, d.discount_bps});
        table.push_back(
            {tier_multiplier_key(d.tier), ConfigType::decimal2, 0, 1'000, d.multiplier_hundredths});
    }
    table.push_back({"order.min_threshold_idr", ConfigType::integer, 0, money_idr_max, 500'000});
    table.push_back({"stock.sync_interval_s", ConfigType::integer, 10, 86'400, 300});
    table.push_back({"erp.max_rps", ConfigType::decimal2, 10, 10'000, 200});
    return table;
}

}  // namespace

const std::vector<ConfigKeySpec>& config_keys() {
    static const std::vector<ConfigKeySpec> table = build_table();
    return table;
}

const ConfigKeySpec* find_config_key(std::string_view key) {
    for (const auto& spec : config_keys()) {
        if (spec.key == key) {
            return &spec;
        }
    }
    return nullptr;
}

std::string tier_discount_key(events::Tier tier) {
    return fmt::format("tier.{}.discount_bps", events::to_string(tier));
}

std::string tier_multiplier_key(events::Tier tier) {
    return fmt::format("tier.{}.loyalty_multiplier", events::to_string(tier));
}

std::optional<events::Tier> tier_of_key(std::string_view key) {
    for (const auto tier : events::all_tiers) {
        if (key == tier_discount_key(tier) || key == tier_multiplier_key(tier)) {
            return tier;
        }
    }
    return std::nullopt;
}

std::string format_decimal2(std::int64_t hundredths) {
    return fmt::format("{}.{:02}", hundredths / 100, hundredths % 100);
}

std::optional<std::int64_t> parse_decimal2(std::string_view text) {
    const auto dot = text.find('.');
    if (dot == std::string_view::npos || dot == 0 || dot > 12 || text.size() != dot + 3) {
        return std::nullopt;
    }
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (i != dot && (text[i] < '0' || text[i] > '9')) {
            return std::nullopt;
        }
    }
    std::int64_t whole = 0;
    std::from_chars(text.data(), text.data() + dot, whole);
    const std::int64_t cents = (text[dot + 1] - '0') * 10 + (text[dot + 2] - '0');
    return whole * 100 + cents;
}

std::optional<std::int64_t> numeric_value(const ConfigKeySpec& spec,
                                          const events::ConfigValue& value) {
    if (spec.type == ConfigType::integer) {
        if (const auto* number = std::get_if<std::int64_t>(&value)) {
            return *number;
        }
        return std::nullopt;
    }
    if (const auto* text = std::get_if<std::string>(&value)) {
        return parse_decimal2(*text);
    }
    return std::nullopt;
}

events::ConfigValue wire_value(const ConfigKeySpec& spec, std::int64_t number) {
    if (spec.type == ConfigType::integer) {
        return number;
    }
    return format_decimal2(number);
}

}  // namespace oe::model
