#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <oe/credit/credit.hpp>
#include <oe/events/events.hpp>
#include <oe/kernel/decision_state.hpp>
#include <oe/pricing/pricing.hpp>
#include <oe/routing/routing.hpp>

namespace oe::model {

struct PartnerState {
    std::string name;
    events::Tier tier = events::Tier::bronze;
    std::string region;
    std::int64_t credit_limit_idr = 0;
    std::int64_t erp_debt_idr = 0;
    std::int64_t debt_synced_at_us = 0;  // 0 until the first PartnerDebtSynced.
    std::int64_t open_orders_total_idr = 0;
    /// An ERP-accepted order the ERP's debt figure does not include yet.
    struct AcceptedOrder {
        std::int64_t accepted_at_us = 0;  // When OrderAcceptedByErp was recorded.
        std::int64_t subtotal_idr = 0;
    };
    /// By order id. A debt figure as of T includes the orders accepted before T (SPEC §4:
    /// open credit counts erp_accepted orders accepted after the latest debt sync).
    std::map<std::string, AcceptedOrder, std::less<>> accepted_since_debt_sync;
};

struct ProductState {
    std::string name;
    std::int64_t base_price_idr = 0;
    std::int64_t buffer_qty = 0;
};

struct OrderLine {
    std::string sku;
    std::int64_t qty = 0;
};

struct OrderState {
    events::OrderPlaced placed;  // As decided: lines, prices, tier, who, when.
    std::string erp_order_ref;   // Set once the ERP accepted it.
    std::string partner_id;
    events::OrderStatus status = events::OrderStatus::placed;
    std::int64_t subtotal_idr = 0;
    std::string warehouse_id;  // Empty until routed.
    std::vector<OrderLine> lines;
    std::int64_t version = 0;          // Of the order's stream.
    std::int64_t placed_position = 0;  // Global position of its OrderPlaced.
};

/// Who last changed a config key, and when (the event's changed_at).
struct ConfigChange {
    std::string actor;
    std::int64_t at_us = 0;
};

/// Stock of one SKU in one warehouse.
struct StockRow {
    std::int64_t on_hand = 0;   // From the last ERP snapshot that listed the row.
    std::int64_t as_of_us = 0;  // That snapshot's as_of.
    std::int64_t reserved = 0;  // Lines routed here the snapshot does not reflect yet.
    /// ERP-accepted lines still reserved: (accepted at, qty), released by a newer snapshot.
    std::vector<std::pair<std::int64_t, std::int64_t>> accepted;
};

/// A parked ERP delivery (SPEC §7) and where it stands.
struct ErpDeadLetter {
    events::ErpDeliveryParked parked;  // The latest parking of this delivery.
    bool retry_requested = false;      // Until resolved or parked again.
    std::int64_t parked_at_us = 0;     // recorded_at of the latest parking.
};

/// Every order, by id, in id order. A fold looks up an order for nearly every event, and an
/// order's next event usually follows its last closely (OrderRouted right after OrderPlaced,
/// in one append), so the order found or added last is remembered: the next lookup of the
/// same id skips the tree of 500k orders. The memory points into the map's nodes, which
/// neither insertion nor moving the map moves; a copy starts without one. (A hash index of
/// every order cost more than it saved: perf, bench/README.md.)
class OrderBook {
  public:
    using Map = std::map<std::string, OrderState, std::less<>>;

    OrderBook() = default;
    OrderBook(const OrderBook& other) : map_(other.map_) {}
    OrderBook& operator=(const OrderBook& other) {
        if (this != &other) {
            map_ = other.map_;
            last_ = Map::iterator{};
            has_last_ = false;
        }
        return *this;
    }
    OrderBook(OrderBook&& other) noexcept
        : map_(std::move(other.map_)), last_(other.last_), has_last_(other.has_last_) {
        other.has_last_ = false;
    }
    OrderBook& operator=(OrderBook&& other) noexcept {
        map_ = std::move(other.map_);
        last_ = other.last_;
        has_last_ = other.has_last_;
        other.has_last_ = false;
        return *this;
    }
    ~OrderBook() = default;

    [[nodiscard]] const Map& map() const { return map_; }
    /// Remembers what it finds.
    [[nodiscard]] OrderState* find(std::string_view id);
    [[nodiscard]] const OrderState* find(std::string_view id) const;
    /// The order with this id, added (default-constructed) if it is not there.
    OrderState& get_or_add(const std::string& id);
    void clear() {
        has_last_ = false;
        map_.clear();
    }

  private:
    Map map_;
    Map::iterator last_{};
    bool has_last_ = false;
};

/// The commerce write model: everything a command's decision needs, folded from the log.
/// EventStore::decide_and_append keeps it exact (SPEC §4's concurrency limits rest on that);
/// it is touched only under the store's write lock, never by two threads at once.
class CommerceState final : public DecisionState {
  public:
    CommerceState();

    [[nodiscard]] std::int64_t position() const override { return position_; }
    void apply(const RecordedEvent& event) override;
    /// The same, with `event` already decoded (model::fold_log decodes on another thread).
    void apply(const RecordedEvent& event,
               const Result<events::DomainEvent, events::DecodeError>& decoded);
    /// The same, taking what it keeps of `decoded` (an order's OrderPlaced) instead of copying.
    void apply(const RecordedEvent& event,
               Result<events::DomainEvent, events::DecodeError>&& decoded);
    void clear() override;

    [[nodiscard]] const PartnerState* partner(std::string_view id) const;
    [[nodiscard]] const ProductState* product(std::string_view sku) const;
    [[nodiscard]] const OrderState* order(std::string_view id) const;
    /// Every order, by id.
    [[nodiscard]] const std::map<std::string, OrderState, std::less<>>& orders() const {
        return orders_.map();
    }
    [[nodiscard]] bool has_warehouse(std::string_view id) const;
    /// Every registered SKU, in order.
    [[nodiscard]] std::vector<std::string> product_skus() const;
    [[nodiscard]] std::vector<const routing::Warehouse*> warehouses() const;

    /// The current numeric value of a config key (hundredths for decimal keys), defaults
    /// included, and how many changes it has had.
    [[nodiscard]] std::int64_t config(std::string_view key) const;
    [[nodiscard]] std::int64_t config_version(std::string_view key) const;
    /// The latest change event that named `key` (a tier change names both of its keys, even
    /// one it left as it was); nothing for a key never named.
    [[nodiscard]] const ConfigChange* config_change(std::string_view key) const;
    /// Global position of the latest config change (0: defaults only).
    [[nodiscard]] std::int64_t config_position() const { return config_position_; }
    [[nodiscard]] pricing::TierTerms terms(events::Tier tier) const;

    [[nodiscard]] credit::CreditPosition credit_position(const PartnerState& partner) const;
    /// inventory's available(sku, wh).
    [[nodiscard]] std::int64_t available(std::string_view sku, std::string_view warehouse) const;
    [[nodiscard]] const StockRow* stock(std::string_view sku, std::string_view warehouse) const;
    /// Every stock row, by (sku, warehouse).
    [[nodiscard]] const std::map<std::pair<std::string, std::string>, StockRow>& stock_rows()
        const {
        return stock_;
    }
    /// Every registered partner id, in order.
    [[nodiscard]] std::vector<std::string> partner_ids() const;

    /// Open ERP dead letters (parked, or retry requested and not resolved yet), by id.
    [[nodiscard]] const std::map<std::int64_t, ErpDeadLetter>& erp_dead_letters() const {
        return erp_dead_letters_;
    }

  private:
    void on(const events::PartnerRegistered& e, const RecordedEvent& r);
    void on(const events::PartnerDetailsChanged& e, const RecordedEvent& r);
    void on(const events::PartnerTierChanged& e, const RecordedEvent& r);
    void on(const events::CreditLimitSet& e, const RecordedEvent& r);
    void on(const events::ProductRegistered& e, const RecordedEvent& r);
    void on(const events::ProductPriceChanged& e, const RecordedEvent& r);
    void on(const events::WarehouseRegistered& e, const RecordedEvent& r);
    void on(const events::TierConfigChanged& e, const RecordedEvent& r);
    void on(const events::SystemConfigChanged& e, const RecordedEvent& r);
    void on(const events::SystemConfigReset& e, const RecordedEvent& r);
    void on(const events::StockLevelsSynced& e, const RecordedEvent& r);
    void on(const events::PartnerDebtSynced& e, const RecordedEvent& r);
    void on(const events::OrderPlaced& e, const RecordedEvent& r);
    void on(events::OrderPlaced&& e, const RecordedEvent& r);
    void on(const events::OrderCreditHeld& e, const RecordedEvent& r);
    void on(const events::OrderCreditReleased& e, const RecordedEvent& r);
    void on(const events::OrderRouted& e, const RecordedEvent& r);
    void on(const events::OrderCancelled& e, const RecordedEvent& r);
    void on(const events::OrderSentToErp& e, const RecordedEvent& r);
    void on(const events::OrderAcceptedByErp& e, const RecordedEvent& r);
    void on(const events::OrderRejectedByErp& e, const RecordedEvent& r);
    void on(const events::ErpDeliveryParked& e, const RecordedEvent& r);
    void on(const events::ErpDeliveryRetryRequested& e, const RecordedEvent& r);
    void on(const events::ErpDeliveryResolved& e, const RecordedEvent& r);

    /// Moves the position to `event`; false for an event of a type outside the published
    /// language (skipped). Throws CorruptEvent for a known one it cannot read.
    bool admit(const RecordedEvent& event,
               const Result<events::DomainEvent, events::DecodeError>& decoded);
    void place(events::OrderPlaced e, const RecordedEvent& r);
    OrderState& order_for(const std::string& id, const RecordedEvent& r);
    PartnerState& partner_for(const std::string& id, const RecordedEvent& r);
    /// Frees the stock an order still reserves (cancel, ERP rejection).
    void release_reservations(const OrderState& order);
    /// Open credit counts placed and sent orders (SPEC §4).
    static bool holds_credit(events::OrderStatus status);

    std::int64_t position_ = 0;
    std::map<std::string, PartnerState, std::less<>> partners_;
    std::map<std::string, ProductState, std::less<>> products_;
    std::map<std::string, routing::Warehouse, std::less<>> warehouses_;
    OrderBook orders_;
    std::map<std::pair<std::string, std::string>, StockRow> stock_;
    std::map<std::string, std::int64_t, std::less<>> config_;           // Current values.
    std::map<std::string, std::int64_t, std::less<>> config_versions_;  // Changes per key.
    std::map<std::string, ConfigChange, std::less<>> config_changes_;
    std::int64_t config_position_ = 0;
    std::map<std::int64_t, ErpDeadLetter> erp_dead_letters_;
};

}  // namespace oe::model
