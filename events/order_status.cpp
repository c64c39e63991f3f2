#include <oe/events/order_status.hpp>

#include <array>

#include <oe/kernel/invariant.hpp>

namespace oe::events {

std::string_view to_string(OrderStatus status) {
    switch (status) {
        case OrderStatus::placed:
            return "placed";
        case OrderStatus::credit_hold:
            return "credit_hold";
        case OrderStatus::sent_to_erp:
            return "sent_to_erp";
        case OrderStatus::erp_accepted:
            return "erp_accepted";
        case OrderStatus::erp_rejected:
            return "erp_rejected";
        case OrderStatus::cancelled:
            return "cancelled";
    }
    OE_INVARIANT(false, "OrderStatus value outside the enum");
    return {};
}

std::optional<OrderStatus> parse_order_status(std::string_view text) {
    static constexpr std::array all{OrderStatus::placed,       OrderStatus::credit_hold,
                                    OrderStatus::sent_to_erp,  OrderStatus::erp_accepted,
                                    OrderStatus::erp_rejected, OrderStatus::cancelled};
    for (const OrderStatus status : all) {
        if (to_string(status) == text) {
            return status;
        }
    }
    return std::nullopt;
}

}  // namespace oe::events
