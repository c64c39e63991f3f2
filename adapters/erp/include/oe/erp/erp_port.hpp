#pragma once

#include <cstdint>
#include <optional>
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

/// The ERP as the domain sees it. Implementations translate to and from the ERP's wire format,
/// and throw ErpUnavailable when it cannot be reached or answers something unusable.
class ErpPort {
  public:
    virtual ~ErpPort() = default;
    [[nodiscard]] virtual StockReport pull_stock() = 0;
    [[nodiscard]] virtual DebtReport pull_debt() = 0;
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
