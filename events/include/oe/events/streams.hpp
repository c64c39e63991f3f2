#pragma once

#include <string>
#include <string_view>

namespace oe::events {

/// Stream ids: one naming scheme for every writer and reader of the store.

/// "partner-" + partner id.
[[nodiscard]] inline std::string partner_stream(std::string_view partner_id) {
    return std::string("partner-").append(partner_id);
}

/// "product-" + SKU.
[[nodiscard]] inline std::string product_stream(std::string_view sku) {
    return std::string("product-").append(sku);
}

/// "warehouse-" + warehouse id.
[[nodiscard]] inline std::string warehouse_stream(std::string_view warehouse_id) {
    return std::string("warehouse-").append(warehouse_id);
}

/// "order-" + order id.
[[nodiscard]] inline std::string order_stream(std::string_view order_id) {
    return std::string("order-").append(order_id);
}

/// The one stream of business config changes (tier and system config): "config".
[[nodiscard]] inline std::string config_stream() {
    return "config";
}

/// The one stream of ERP stock snapshots: "stock-levels".
[[nodiscard]] inline std::string stock_stream() {
    return "stock-levels";
}

/// The one stream of other ERP sync results (partner debt): "erp-sync".
[[nodiscard]] inline std::string erp_sync_stream() {
    return "erp-sync";
}

/// The ERP projector's dead letters (parked, retried, resolved): "erp-dead-letters".
[[nodiscard]] inline std::string erp_dead_letter_stream() {
    return "erp-dead-letters";
}

}  // namespace oe::events
