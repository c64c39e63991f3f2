#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <oe/events/tier.hpp>

namespace oe::events {

/// A reseller was registered with its tier, region and credit limit.
struct PartnerRegistered {
    static constexpr std::string_view type_name = "PartnerRegistered";
    static constexpr std::uint16_t schema_version = 1;

    std::string partner_id;
    std::string name;
    Tier tier = Tier::bronze;
    std::string region;                 // Decides SLA routing, e.g. "ID-JK".
    std::int64_t credit_limit_idr = 0;  // >= 0.

    bool operator==(const PartnerRegistered&) const = default;
};

/// A partner's name or region changed (the region moves its orders to other warehouses).
struct PartnerDetailsChanged {
    static constexpr std::string_view type_name = "PartnerDetailsChanged";
    static constexpr std::uint16_t schema_version = 1;

    std::string partner_id;
    std::string name;
    std::string region;

    bool operator==(const PartnerDetailsChanged&) const = default;
};

/// A partner moved to another tier; prices and loyalty of later orders follow it.
struct PartnerTierChanged {
    static constexpr std::string_view type_name = "PartnerTierChanged";
    static constexpr std::uint16_t schema_version = 1;

    std::string partner_id;
    Tier tier = Tier::bronze;

    bool operator==(const PartnerTierChanged&) const = default;
};

/// A partner's credit limit was set (the whole limit, not a delta).
struct CreditLimitSet {
    static constexpr std::string_view type_name = "CreditLimitSet";
    static constexpr std::uint16_t schema_version = 1;

    std::string partner_id;
    std::int64_t credit_limit_idr = 0;  // >= 0.

    bool operator==(const CreditLimitSet&) const = default;
};

/// The ERP reported a partner's outstanding debt as of an instant; the credit check counts it
/// instead of the orders the ERP accepted before that instant.
struct PartnerDebtSynced {
    static constexpr std::string_view type_name = "PartnerDebtSynced";
    static constexpr std::uint16_t schema_version = 1;

    std::string partner_id;
    std::int64_t outstanding_idr = 0;  // >= 0.
    std::int64_t as_of_us = 0;         // Microseconds since the Unix epoch, UTC.

    bool operator==(const PartnerDebtSynced&) const = default;
};

/// Canonical JSON of each event: compact, keys in the published order, byte-for-byte
/// deterministic. A field outside its documented range is a bug (invariant), because an event
/// written that way could never be read back.
[[nodiscard]] std::string to_json(const PartnerRegistered& event);
[[nodiscard]] std::string to_json(const PartnerDetailsChanged& event);
[[nodiscard]] std::string to_json(const PartnerTierChanged& event);
[[nodiscard]] std::string to_json(const CreditLimitSet& event);
[[nodiscard]] std::string to_json(const PartnerDebtSynced& event);

}  // namespace oe::events
