#include <oe/pricing/pricing.hpp>

#include <oe/kernel/invariant.hpp>

namespace oe::pricing {

std::int64_t unit_price_idr(std::int64_t base_price_idr, std::int32_t discount_bps) {
    OE_INVARIANT(base_price_idr >= 0 && base_price_idr <= base_price_idr_max,
                 "base price out of range");
    OE_INVARIANT(discount_bps >= 0 && discount_bps <= 10'000, "discount out of range");
    // base ≤ 1e10 and (10000 − bps) ≤ 1e4: the product fits in int64 with room to spare.
    const std::int64_t scaled = base_price_idr * (10'000 - discount_bps);
    return (scaled + 5'000) / 10'000;  // Non-negative, so this is round half up.
}

std::int64_t loyalty_points(std::int64_t subtotal_idr, std::int32_t multiplier_hundredths) {
    OE_INVARIANT(subtotal_idr >= 0, "negative subtotal");
    OE_INVARIANT(
        multiplier_hundredths >= 0 && multiplier_hundredths <= loyalty_multiplier_hundredths_max,
        "loyalty multiplier out of range");
    // subtotal can reach 2e17 and times 1000 would overflow; split it at 100000 so both
    // products stay small: floor((q·1e5 + r)·m / 1e5) = q·m + floor(r·m / 1e5).
    const std::int64_t q = subtotal_idr / 100'000;
    const std::int64_t r = subtotal_idr % 100'000;
    return q * multiplier_hundredths + (r * multiplier_hundredths) / 100'000;
}

Result<PricedOrder, PricingRejection> price_order(const std::vector<LineRequest>& lines,
                                                  const BasePriceLookup& base_price,
                                                  TierTerms terms, std::int64_t min_order_idr) {
    PricedOrder order;
    order.lines.reserve(lines.size());
    for (const auto& line : lines) {
        OE_INVARIANT(line.qty >= 1 && line.qty <= line_qty_max, "line qty not validated");
        const auto base = base_price(line.sku);
        if (!base) {
            return PricingRejection{PricingRejected::unknown_sku, line.sku, 0};
        }
        PricedLine priced;
        priced.sku = line.sku;
        priced.qty = line.qty;
        priced.base_price_idr = *base;
        priced.discount_bps = terms.discount_bps;
        priced.unit_price_idr = unit_price_idr(*base, terms.discount_bps);
        priced.line_total_idr = priced.unit_price_idr * line.qty;  // ≤ 1e10 × 1e5.
        order.subtotal_idr += priced.line_total_idr;               // ≤ 200 × 1e15.
        order.lines.push_back(std::move(priced));
    }
    if (order.subtotal_idr < min_order_idr) {
        return PricingRejection{PricingRejected::below_minimum_order, {}, order.subtotal_idr};
    }
    order.loyalty_points = loyalty_points(order.subtotal_idr, terms.loyalty_multiplier_hundredths);
    return order;
}

}  // namespace oe::pricing
