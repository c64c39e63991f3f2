#include <oe/erp/erp_port.hpp>

#include <algorithm>
#include <set>

namespace oe::erp {

namespace {

constexpr std::int64_t on_hand_max = 1'000'000'000;
constexpr std::int64_t debt_idr_max = 1'000'000'000'000'000;  // 10^15 rupiah.

bool contains(const std::vector<std::string>& ids, const std::string& id) {
    return std::find(ids.begin(), ids.end(), id) != ids.end();
}

}  // namespace

StockTranslation translate(const StockReport& report, const KnownIds& known) {
    StockTranslation out;
    events::StockLevelsSynced event;
    event.as_of_us = report.as_of_us;
    std::set<std::pair<std::string, std::string>> seen;
    for (const auto& figure : report.figures) {
        const std::string what = "sku " + figure.sku + " in warehouse " + figure.warehouse_id;
        if (!contains(known.skus, figure.sku)) {
            out.refused.push_back({what, "unknown sku"});
        } else if (!contains(known.warehouses, figure.warehouse_id)) {
            out.refused.push_back({what, "unknown warehouse"});
        } else if (figure.on_hand < 0 || figure.on_hand > on_hand_max) {
            out.refused.push_back({what, "on_hand out of range"});
        } else if (!seen.emplace(figure.sku, figure.warehouse_id).second) {
            out.refused.push_back({what, "reported twice"});
        } else {
            event.levels.push_back({figure.sku, figure.warehouse_id, figure.on_hand});
        }
    }
    if (!event.levels.empty()) {
        out.event = std::move(event);
    }
    return out;
}

DebtTranslation translate(const DebtReport& report, const KnownIds& known) {
    DebtTranslation out;
    std::set<std::string> seen;
    for (const auto& figure : report.figures) {
        const std::string what = "partner " + figure.partner_id;
        if (!contains(known.partners, figure.partner_id)) {
            out.refused.push_back({what, "unknown partner"});
        } else if (figure.outstanding_idr < 0 || figure.outstanding_idr > debt_idr_max) {
            out.refused.push_back({what, "debt out of range"});
        } else if (!seen.insert(figure.partner_id).second) {
            out.refused.push_back({what, "reported twice"});
        } else {
            out.events.push_back(events::PartnerDebtSynced{
                figure.partner_id, figure.outstanding_idr, report.as_of_us});
        }
    }
    return out;
}

}  // namespace oe::erp
