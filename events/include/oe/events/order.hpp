#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <oe/events/order_status.hpp>
#include <oe/events/tier.hpp>

namespace oe::events {

/// One priced order line, as recorded: enough to re-derive the price (SPEC §4).
struct PricedLine {
    std::string sku;
    std::int64_t qty = 0;             // >= 0.
    std::int64_t base_price_idr = 0;  // >= 0.
    std::int64_t unit_price_idr = 0;  // >= 0; base price after the discount, rounded half up.
    std::int32_t discount_bps = 0;    // 0..10000.
    std::int64_t line_total_idr = 0;  // >= 0; unit price x qty.

    bool operator==(const PricedLine&) const = default;
};

/// An order was accepted and priced. Carries everything finance needs to re-derive the price;
/// the codec does not check the arithmetic, so an audit can still see an inconsistent order.
struct OrderPlaced {
    static constexpr std::string_view type_name = "OrderPlaced";
    static constexpr std::uint16_t schema_version = 1;

    std::string order_id;
    std::string partner_id;
    Tier tier = Tier::bronze;
    std::string region;
    std::int32_t discount_bps = 0;                   // 0..10000.
    std::int32_t loyalty_multiplier_hundredths = 0;  // >= 0; 150 means x1.50.
    std::vector<PricedLine> lines;
    std::int64_t subtotal_idr = 0;     // >= 0.
    std::int64_t loyalty_points = 0;   // >= 0.
    std::int64_t config_position = 0;  // >= 0; global position of the config in force.
    std::string note;
    std::string placed_by;          // The actor: the reseller, or the agent acting for it.
    std::string on_behalf_of;       // The partner an agent acted for; empty (JSON null) otherwise.
    std::int64_t placed_at_us = 0;  // When the order was placed (UTC µs); the handler's clock.

    bool operator==(const OrderPlaced&) const = default;
};

/// The order's subtotal exceeded the partner's available credit: it is recorded on hold.
struct OrderCreditHeld {
    static constexpr std::string_view type_name = "OrderCreditHeld";
    static constexpr std::uint16_t schema_version = 1;

    std::string order_id;
    std::string partner_id;
    std::int64_t subtotal_idr = 0;          // >= 0.
    std::int64_t available_credit_idr = 0;  // May be negative (debt above the limit).

    bool operator==(const OrderCreditHeld&) const = default;
};

/// Finance or an admin released a held order (a deliberate credit override).
struct OrderCreditReleased {
    static constexpr std::string_view type_name = "OrderCreditReleased";
    static constexpr std::uint16_t schema_version = 1;

    std::string order_id;
    std::string released_by;

    bool operator==(const OrderCreditReleased&) const = default;
};

/// One line of a routed order: what the warehouse reserves.
struct RoutedLine {
    std::string sku;
    std::int64_t qty = 0;  // >= 0.

    bool operator==(const RoutedLine&) const = default;
};

/// The order was routed to a warehouse that can fulfil all its lines; their stock is reserved.
struct OrderRouted {
    static constexpr std::string_view type_name = "OrderRouted";
    static constexpr std::uint16_t schema_version = 1;

    std::string order_id;
    std::string warehouse_id;
    std::vector<RoutedLine> lines;

    bool operator==(const OrderRouted&) const = default;
};

/// The order was cancelled; its reservations and credit are freed.
struct OrderCancelled {
    static constexpr std::string_view type_name = "OrderCancelled";
    static constexpr std::uint16_t schema_version = 1;

    std::string order_id;
    OrderStatus previous_status = OrderStatus::placed;  // Always is_cancellable().
    std::string cancelled_by;

    bool operator==(const OrderCancelled&) const = default;
};

/// The ERP projector delivered the order to the ERP.
struct OrderSentToErp {
    static constexpr std::string_view type_name = "OrderSentToErp";
    static constexpr std::uint16_t schema_version = 1;

    std::string order_id;

    bool operator==(const OrderSentToErp&) const = default;
};

/// The ERP accepted the order under its own reference.
struct OrderAcceptedByErp {
    static constexpr std::string_view type_name = "OrderAcceptedByErp";
    static constexpr std::uint16_t schema_version = 1;

    std::string order_id;
    std::string erp_order_ref;

    bool operator==(const OrderAcceptedByErp&) const = default;
};

/// The ERP rejected the order; it holds no stock and no credit any more.
struct OrderRejectedByErp {
    static constexpr std::string_view type_name = "OrderRejectedByErp";
    static constexpr std::uint16_t schema_version = 1;

    std::string order_id;
    std::string reason;

    bool operator==(const OrderRejectedByErp&) const = default;
};

/// Canonical JSON of each event (see partner.hpp).
[[nodiscard]] std::string to_json(const OrderPlaced& event);
[[nodiscard]] std::string to_json(const OrderCreditHeld& event);
[[nodiscard]] std::string to_json(const OrderCreditReleased& event);
[[nodiscard]] std::string to_json(const OrderRouted& event);
[[nodiscard]] std::string to_json(const OrderCancelled& event);
[[nodiscard]] std::string to_json(const OrderSentToErp& event);
[[nodiscard]] std::string to_json(const OrderAcceptedByErp& event);
[[nodiscard]] std::string to_json(const OrderRejectedByErp& event);

}  // namespace oe::events
