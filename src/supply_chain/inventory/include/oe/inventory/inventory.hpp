#pragma once

#include <cstdint>

namespace oe::inventory {

/// available(sku, wh) = on_hand (last ERP sync) − reserved − buffer_qty(sku) (SPEC §4). May be
/// negative when the ERP reports less than we have reserved; callers clamp where they show it.
[[nodiscard]] inline std::int64_t available(std::int64_t on_hand, std::int64_t reserved,
                                            std::int64_t buffer_qty) {
    return on_hand - reserved - buffer_qty;
}

/// An order line can be served from a warehouse when it leaves `available` at zero or above.
[[nodiscard]] inline bool can_fulfil(std::int64_t qty, std::int64_t available_qty) {
    return qty <= available_qty;
}

}  // namespace oe::inventory
