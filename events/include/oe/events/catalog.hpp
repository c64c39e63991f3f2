#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace oe::events {

/// A product entered the catalog with its base (BRONZE) price and buffer (safety) stock.
struct ProductRegistered {
    static constexpr std::string_view type_name = "ProductRegistered";
    static constexpr std::uint16_t schema_version = 1;

    std::string sku;
    std::string name;
    std::int64_t base_price_idr = 0;  // >= 0.
    std::int64_t buffer_qty = 0;      // >= 0; held back from every warehouse's available stock.

    bool operator==(const ProductRegistered&) const = default;
};

/// A product's base price changed; orders already placed keep the price they recorded.
struct ProductPriceChanged {
    static constexpr std::string_view type_name = "ProductPriceChanged";
    static constexpr std::uint16_t schema_version = 1;

    std::string sku;
    std::int64_t base_price_idr = 0;  // >= 0.

    bool operator==(const ProductPriceChanged&) const = default;
};

/// Canonical JSON of each event (see partner.hpp).
[[nodiscard]] std::string to_json(const ProductRegistered& event);
[[nodiscard]] std::string to_json(const ProductPriceChanged& event);

}  // namespace oe::events
