#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <oe/kernel/result.hpp>

namespace oe::pricing {

/// Limits that keep every product of the formulas below inside int64 (SPEC §4: integer rupiah).
inline constexpr std::int64_t base_price_idr_max = 10'000'000'000;  // 10 billion rupiah
inline constexpr std::int64_t line_qty_max = 100'000;
inline constexpr std::size_t order_lines_max = 200;
inline constexpr std::int32_t discount_bps_max = 9'000;
inline constexpr std::int32_t loyalty_multiplier_hundredths_max = 1'000;  // ×10.00

/// A tier's commercial terms: discount in basis points, loyalty multiplier in hundredths.
struct TierTerms {
    std::int32_t discount_bps = 0;
    std::int32_t loyalty_multiplier_hundredths = 100;
    bool operator==(const TierTerms&) const = default;
};

/// round_half_up(base × (10000 − discount_bps) / 10000), whole rupiah (SPEC §4).
[[nodiscard]] std::int64_t unit_price_idr(std::int64_t base_price_idr, std::int32_t discount_bps);

/// floor(subtotal × multiplier_hundredths / 100000): 1 point per 1,000 IDR at ×1.00.
[[nodiscard]] std::int64_t loyalty_points(std::int64_t subtotal_idr,
                                          std::int32_t multiplier_hundredths);

struct LineRequest {
    std::string sku;
    std::int64_t qty = 0;
};

struct PricedLine {
    std::string sku;
    std::int64_t qty = 0;
    std::int64_t base_price_idr = 0;
    std::int64_t unit_price_idr = 0;
    std::int32_t discount_bps = 0;
    std::int64_t line_total_idr = 0;
    bool operator==(const PricedLine&) const = default;
};

struct PricedOrder {
    std::vector<PricedLine> lines;
    std::int64_t subtotal_idr = 0;
    std::int64_t loyalty_points = 0;
};

/// Why pricing refused an order. Numbers are API; never reuse one.
enum class PricingRejected : std::uint16_t {
    unknown_sku = 1,
    below_minimum_order = 2,
};

struct PricingRejection {
    PricingRejected reason = PricingRejected::unknown_sku;
    std::string sku;                // The unknown SKU, for unknown_sku.
    std::int64_t subtotal_idr = 0;  // For below_minimum_order.
};

/// The base price of a SKU in the catalogue, or nothing when it is not sold.
using BasePriceLookup = std::function<std::optional<std::int64_t>(std::string_view sku)>;

/// Prices validated lines (qty within limits, SKUs unique — the caller's job) for a tier.
/// Checks, in SPEC order: unknown SKU, then minimum order (subtotal < min_order_idr).
[[nodiscard]] Result<PricedOrder, PricingRejection> price_order(
    const std::vector<LineRequest>& lines, const BasePriceLookup& base_price, TierTerms terms,
    std::int64_t min_order_idr);

}  // namespace oe::pricing
