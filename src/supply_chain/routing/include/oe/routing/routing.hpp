#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace oe::routing {

/// A warehouse and the SLA (hours) it promises per region; a region it does not list is not
/// served by it.
struct Warehouse {
    std::string warehouse_id;
    std::map<std::string, std::int32_t, std::less<>> sla_hours;
};

struct LineQty {
    std::string sku;
    std::int64_t qty = 0;
};

/// Stock a warehouse can still promise for a SKU (inventory's `available`, passed in: routing
/// and inventory are separate modules).
using Availability =
    std::function<std::int64_t(std::string_view sku, std::string_view warehouse_id)>;

/// SLA routing (SPEC §4): among the warehouses that serve `region` and can fulfil all lines,
/// the lowest SLA wins; ties go to the lowest warehouse id. Nothing when none qualifies
/// (422 insufficient_stock).
[[nodiscard]] std::optional<std::string> route(const std::vector<LineQty>& lines,
                                               std::string_view region,
                                               const std::vector<const Warehouse*>& warehouses,
                                               const Availability& available);

/// The warehouses that serve `region`, in routing preference order (SLA, then id).
[[nodiscard]] std::vector<const Warehouse*> serving(
    std::string_view region, const std::vector<const Warehouse*>& warehouses);

}  // namespace oe::routing
