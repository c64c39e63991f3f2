#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace oe::events {
struct PricedLine;
}

namespace oe::projections {

/// rm_orders keeps an order's lines positionally, one array per line:
/// `[["SRM-VITC-30",4,125000,118750,500,475000],…]` — sku, qty, base_price, unit_price,
/// discount_bps, line_total. The order view's form (SPEC §6) names every field on every line,
/// which made the names two thirds of the column and the column half of each row: a rebuild
/// writes 1.5M lines for 500k orders (bench/README.md, nineteenth session).
[[nodiscard]] std::string stored_order_lines(const std::vector<events::PricedLine>& lines);

/// The order view's `lines` from what rm_orders stores:
/// `[{"sku":…,"qty":…,"base_price":…,"unit_price":…,"discount_bps":…,"line_total":…},…]`.
/// A value already in that form (a row written before schema migration 5) passes unchanged.
/// Throws std::invalid_argument for anything else.
[[nodiscard]] std::string order_lines_view(std::string_view stored);

}  // namespace oe::projections
