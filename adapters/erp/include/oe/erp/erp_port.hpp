#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <oe/events/events.hpp>
#include <oe/kernel/result.hpp>

namespace oe::erp {

/// The domain-facing side of the anti-corruption layer (SPEC §2, §7): what the rest of the
/// system may know about the legacy ERP. The wire format stays behind implementations of
/// ErpPort inside this module; nothing outside adapters/erp sees it.

/// One stock figure as the ERP reports it.
struct StockFigure {
    std::string sku;
    std::string warehouse_id;
    std::int64_t on_hand = 0;
};

/// A stock pull: every figure the ERP reported, and when it took them.
struct StockReport {
    std::int64_t as_of_us = 0;
    std::vector<StockFigure> figures;
};

/// A partner's outstanding debt as the ERP reports it.
struct DebtFigure {
    std::string partner_id;
    std::int64_t outstanding_idr = 0;
};

struct DebtReport {
    std::int64_t as_of_us = 0;
    std::vector<DebtFigure> figures;
};

/// A figure the ACL refused to let into the domain, and why (logged and counted by callers).
struct Refusal {
    std::string what;  // "sku X in warehouse Y", "partner P"
    std::string why;   // "unknown sku", "negative debt", …
};

/// An order as the ERP receives it: our order id is its idempotency reference, so sending the
/// same order twice never creates a second sales order.
struct SalesOrderLine {
    std::string sku;
    std::int64_t qty = 0;
    std::int64_t unit_price_idr = 0;
};

struct SalesOrder {
    std::string order_id;
    std::string partner_id;
    std::string warehouse_id;
    std::vector<SalesOrderLine> lines;
    std::int64_t total_idr = 0;
};

/// The ERP's answer to a sales order it understood.
struct SalesOrderAnswer {
    bool accepted = false;
    std::string erp_order_ref;  // When accepted.
    std::string reason;         // When refused.
};

/// An ERP call that did not give a usable answer. `unavailable`: the ERP as a whole cannot
/// serve (refused or timed-out connection, 502/503/504) — a fault of the ERP, not of the
/// request; `failed`: it answered this request with something unusable (a 5xx, garbage,
/// partial JSON, an error body with HTTP 200, a reset connection); `circuit_open`: the call
/// was not made because the circuit breaker is open.
class ErpFailure : public std::runtime_error {
  public:
    enum class Kind { unavailable, failed, circuit_open };
    ErpFailure(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
    [[nodiscard]] Kind kind() const noexcept { return kind_; }

  private:
    Kind kind_;
};

/// The ERP as the domain sees it. Implementations translate to and from the ERP's wire format
/// and throw ErpFailure when it cannot be reached or answers something unusable. `trace_id`
/// travels with the call (W3C traceparent) so both sides' logs can be joined.
class ErpPort {
  public:
    virtual ~ErpPort() = default;
    [[nodiscard]] virtual StockReport pull_stock(const std::string& trace_id) = 0;
    [[nodiscard]] virtual DebtReport pull_debt(const std::string& trace_id) = 0;
    [[nodiscard]] virtual SalesOrderAnswer create_sales_order(const SalesOrder& order,
                                                              const std::string& trace_id) = 0;
    /// Cancels the sales order of `order_id`; an order the ERP never had counts as cancelled.
    virtual void cancel_sales_order(const std::string& order_id, const std::string& trace_id) = 0;
};

/// Which SKUs, warehouses and partners the domain knows (figures about others are refused).
struct KnownIds {
    std::vector<std::string> skus;
    std::vector<std::string> warehouses;
    std::vector<std::string> partners;
};

/// A stock report as the domain event it becomes, minus figures the domain must not take in
/// (unknown SKU or warehouse, negative or absurd quantities, duplicates): those are refused.
/// Nothing when nothing usable remains.
struct StockTranslation {
    std::optional<events::StockLevelsSynced> event;
    std::vector<Refusal> refused;
};
[[nodiscard]] StockTranslation translate(const StockReport& report, const KnownIds& known);

/// A debt report as one PartnerDebtSynced per known partner; unknown partners and negative
/// debts are refused.
struct DebtTranslation {
    std::vector<events::PartnerDebtSynced> events;
    std::vector<Refusal> refused;
};
[[nodiscard]] DebtTranslation translate(const DebtReport& report, const KnownIds& known);

}  // namespace oe::erp
