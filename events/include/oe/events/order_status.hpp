#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace oe::events {

/// Where an order is in its life (SPEC §4): placed -> sent_to_erp -> erp_accepted | erp_rejected;
/// credit_hold -> placed on release; placed, credit_hold, sent_to_erp -> cancelled.
/// Values are stable; never renumber.
enum class OrderStatus : std::uint8_t {
    placed,
    credit_hold,
    sent_to_erp,
    erp_accepted,
    erp_rejected,
    cancelled,
};

/// "placed", "credit_hold", "sent_to_erp", "erp_accepted", "erp_rejected" or "cancelled".
/// A value outside the enum is a bug (invariant).
[[nodiscard]] std::string_view to_string(OrderStatus status);

/// The status with exactly that wire name, or nothing.
[[nodiscard]] std::optional<OrderStatus> parse_order_status(std::string_view text);

/// True for the statuses an order may be cancelled from: placed, credit_hold, sent_to_erp.
[[nodiscard]] constexpr bool is_cancellable(OrderStatus status) {
    return status == OrderStatus::placed || status == OrderStatus::credit_hold ||
           status == OrderStatus::sent_to_erp;
}

}  // namespace oe::events
