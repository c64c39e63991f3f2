#pragma once

#include <string>
#include <string_view>

#include <oe/erp/erp_port.hpp>

namespace oe::erp::wire {

/// The legacy ERP's wire format (docs/erp-wire-format.md), both directions, in one place: the
/// client (http_erp.cpp) and the simulated ERP (fake_erp.cpp) share it. Readers throw
/// ErpFailure(failed) on anything that is not exactly the documented shape.

inline constexpr std::string_view sales_orders_path = "/erp/v1/sales-orders";
inline constexpr std::string_view stock_path = "/erp/v1/stock";
inline constexpr std::string_view receivables_path = "/erp/v1/receivables";

[[nodiscard]] std::string sales_order_request(const SalesOrder& order);
[[nodiscard]] SalesOrderAnswer read_sales_order_answer(std::string_view body);
/// Cancel answers "OK" or "NOT_FOUND" (never had it): both mean cancelled.
void read_cancel_answer(std::string_view body);
[[nodiscard]] StockReport read_stock(std::string_view body);
[[nodiscard]] DebtReport read_receivables(std::string_view body);

}  // namespace oe::erp::wire
