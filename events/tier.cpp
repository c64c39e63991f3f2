#include <oe/events/tier.hpp>

#include <oe/kernel/invariant.hpp>

namespace oe::events {

std::string_view to_string(Tier tier) {
    switch (tier) {
        case Tier::bronze:
            return "BRONZE";
        case Tier::silver:
            return "SILVER";
        case Tier::gold:
            return "GOLD";
        case Tier::platinum:
            return "PLATINUM";
    }
    OE_INVARIANT(false, "Tier value outside the enum");
    return {};
}

std::optional<Tier> parse_tier(std::string_view text) {
    for (const Tier tier : all_tiers) {
        if (to_string(tier) == text) {
            return tier;
        }
    }
    return std::nullopt;
}

}  // namespace oe::events
