#include <oe/events/events.hpp>

#include <stdexcept>

#include <fmt/format.h>
#include <boost/json.hpp>

namespace oe::events {

namespace {

/// TierConfigChanged 1 → 2: the integer "loyalty_multiplier_hundredths" becomes the two-place
/// decimal string "loyalty_multiplier" (175 → "1.75"), like every decimal config value.
std::string tier_config_changed_v1_to_v2(std::string_view data) {
    boost::system::error_code ec;
    auto value = boost::json::parse(data, ec);
    if (ec || !value.is_object()) {
        throw std::invalid_argument("TierConfigChanged v1: data is not a JSON object");
    }
    auto& object = value.as_object();
    const auto* old = object.if_contains("loyalty_multiplier_hundredths");
    if (old == nullptr || !old->is_int64() || old->get_int64() < 0 ||
        old->get_int64() > std::numeric_limits<std::int32_t>::max()) {
        throw std::invalid_argument(
            "TierConfigChanged v1: loyalty_multiplier_hundredths must be a non-negative integer");
    }
    const auto hundredths = old->get_int64();
    object.erase("loyalty_multiplier_hundredths");
    object["loyalty_multiplier"] = fmt::format("{}.{:02}", hundredths / 100, hundredths % 100);
    return boost::json::serialize(value);
}

}  // namespace

std::shared_ptr<const UpcasterRegistry> published_upcasters() {
    static const auto registry = [] {
        auto r = std::make_shared<UpcasterRegistry>();
        r->add(std::string(TierConfigChanged::type_name), 1, tier_config_changed_v1_to_v2);
        return std::shared_ptr<const UpcasterRegistry>(std::move(r));
    }();
    return registry;
}

}  // namespace oe::events
