#pragma once

#include <cstdint>

namespace oe::credit {

/// A partner's credit position (SPEC §4): available = limit − ERP debt − open orders, where
/// open orders are `placed` and `sent_to_erp` orders plus `erp_accepted` orders the ERP's debt
/// figure does not include yet (accepted after the partner's latest debt sync).
struct CreditPosition {
    std::int64_t credit_limit_idr = 0;
    std::int64_t erp_debt_idr = 0;
    std::int64_t open_orders_total_idr = 0;

    /// May be negative (debt grew past the limit); never overflows for values within limits.
    [[nodiscard]] std::int64_t available_idr() const {
        return credit_limit_idr - erp_debt_idr - open_orders_total_idr;
    }
};

/// What the credit check decides. An order over the limit is still recorded, on hold.
enum class CreditDecision : std::uint8_t { within_limit, hold };

/// `subtotal > available` holds the order; exactly the available amount is still within.
[[nodiscard]] inline CreditDecision decide_credit(std::int64_t subtotal_idr,
                                                  const CreditPosition& position) {
    return subtotal_idr > position.available_idr() ? CreditDecision::hold
                                                   : CreditDecision::within_limit;
}

}  // namespace oe::credit
