#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace oe::events {

/// A warehouse was registered with its delivery SLA per region. A region it does not list is
/// not served by it (SPEC §4).
struct WarehouseRegistered {
    static constexpr std::string_view type_name = "WarehouseRegistered";
    static constexpr std::uint16_t schema_version = 1;

    std::string warehouse_id;
    std::map<std::string, std::int32_t> sla_hours;  // Region -> hours (>= 0); sorted on the wire.

    bool operator==(const WarehouseRegistered&) const = default;
};

/// One row of an ERP stock snapshot.
struct StockLevel {
    std::string sku;
    std::string warehouse_id;
    std::int64_t on_hand = 0;  // >= 0.

    bool operator==(const StockLevel&) const = default;
};

/// The ERP's stock levels as of an instant. Rows replace the previous on_hand of their
/// (sku, warehouse) pair; pairs not listed keep their last synced value.
struct StockLevelsSynced {
    static constexpr std::string_view type_name = "StockLevelsSynced";
    static constexpr std::uint16_t schema_version = 1;

    std::int64_t as_of_us = 0;  // Microseconds since the Unix epoch, UTC.
    std::vector<StockLevel> levels;

    bool operator==(const StockLevelsSynced&) const = default;
};

/// Canonical JSON of each event (see partner.hpp).
[[nodiscard]] std::string to_json(const WarehouseRegistered& event);
[[nodiscard]] std::string to_json(const StockLevelsSynced& event);

}  // namespace oe::events
