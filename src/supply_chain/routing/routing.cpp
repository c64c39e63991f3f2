#include <oe/routing/routing.hpp>

#include <algorithm>

namespace oe::routing {

std::vector<const Warehouse*> serving(std::string_view region,
                                      const std::vector<const Warehouse*>& warehouses) {
    std::vector<const Warehouse*> candidates;
    for (const Warehouse* warehouse : warehouses) {
        if (warehouse->sla_hours.find(region) != warehouse->sla_hours.end()) {
            candidates.push_back(warehouse);
        }
    }
    std::sort(candidates.begin(), candidates.end(),
              [region](const Warehouse* a, const Warehouse* b) {
                  const auto sla_a = a->sla_hours.find(region)->second;
                  const auto sla_b = b->sla_hours.find(region)->second;
                  return sla_a != sla_b ? sla_a < sla_b : a->warehouse_id < b->warehouse_id;
              });
    return candidates;
}

std::optional<std::string> route(const std::vector<LineQty>& lines, std::string_view region,
                                 const std::vector<const Warehouse*>& warehouses,
                                 const Availability& available) {
    for (const Warehouse* warehouse : serving(region, warehouses)) {
        const bool fulfils = std::all_of(lines.begin(), lines.end(), [&](const LineQty& line) {
            return line.qty <= available(line.sku, warehouse->warehouse_id);
        });
        if (fulfils) {
            return warehouse->warehouse_id;
        }
    }
    return std::nullopt;
}

}  // namespace oe::routing
