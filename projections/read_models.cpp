#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <oe/kernel/json_text.hpp>
#include <oe/kernel/time.hpp>
#include <oe/model/config_keys.hpp>
#include <oe/pricing/pricing.hpp>
#include <oe/projections/order_lines.hpp>
#include <oe/projections/projection.hpp>

namespace oe::projections {

namespace {

using model::CommerceState;

template <typename T>
const T* as(const events::DomainEvent& e) {
    return std::get_if<T>(&e);
}

std::string iso_or_null(std::int64_t us) {
    return us == 0 ? std::string() : format_iso8601_us(us);
}

SqlValue text_or_null(const std::string& text) {
    return text.empty() ? SqlValue{nullptr} : SqlValue{text};
}

/// Rows gathered and inserted in bulk (SqlTx::insert_rows): what a rebuild writes instead of
/// one statement per row.
class BulkInsert {
  public:
    BulkInsert(SqlTx& tx, std::string table, std::vector<std::string> columns)
        : tx_(tx), table_(std::move(table)), columns_(std::move(columns)) {}

    void add(std::vector<SqlValue> row) {
        for (auto& value : row) {
            values_.push_back(std::move(value));
        }
        if (++rows_ == rows_per_call) {
            finish();
        }
    }

    /// Writes what is pending (call once at the end).
    void finish() {
        if (rows_ == 0) {
            return;
        }
        tx_.insert_rows(table_, columns_, values_);
        values_.clear();
        rows_ = 0;
    }

  private:
    static constexpr std::size_t rows_per_call = 500;

    SqlTx& tx_;
    std::string table_;
    std::vector<std::string> columns_;
    std::size_t rows_ = 0;
    std::vector<SqlValue> values_;
};

template <typename Map>
std::string sla_json(const Map& sla_hours) {
    std::string sla = "{";
    for (const auto& [region, hours] : sla_hours) {
        if (sla.size() > 1) {
            sla.push_back(',');
        }
        append_json_string(sla, region);
        sla += fmt::format(":{}", hours);
    }
    sla.push_back('}');
    return sla;
}

/// A projection whose tables are named with a suffix: "" for the live read model,
/// "_rebuild" for the shadow tables a rebuild writes (SPEC §6, issue 6).
class TabledProjection : public Projection {
  public:
    explicit TabledProjection(std::string suffix) : suffix_(std::move(suffix)) {}

    /// Every row of each of its tables (read_model_rows), in bulk.
    void write_all(SqlTx& tx, const CommerceState& state) override;

  protected:
    [[nodiscard]] std::string t(std::string_view base) const { return std::string(base) + suffix_; }

  private:
    std::string suffix_;
};

/// partners and warehouses: the identity lookups (tier and region of a partner).
class DirectoryProjection final : public TabledProjection {
  public:
    using TabledProjection::TabledProjection;

    std::string_view name() const override { return "partners"; }

    void observe(const RecordedEvent&, const events::DomainEvent& e,
                 const CommerceState&) override {
        if (const auto* p = as<events::PartnerRegistered>(e)) {
            partners_.insert(p->partner_id);
        } else if (const auto* d = as<events::PartnerDetailsChanged>(e)) {
            partners_.insert(d->partner_id);
        } else if (const auto* t = as<events::PartnerTierChanged>(e)) {
            partners_.insert(t->partner_id);
        } else if (const auto* w = as<events::WarehouseRegistered>(e)) {
            warehouses_[w->warehouse_id] = sla_json(w->sla_hours);
        }
    }

    void flush(SqlTx& tx, const CommerceState& state) override {
        for (const auto& id : partners_) {
            const auto* p = state.partner(id);
            tx.exec("INSERT INTO " + t("rm_partners") +
                        " (partner_id, name, tier, region) VALUES ($1, $2, $3, $4) "
                        "ON CONFLICT (partner_id) DO UPDATE SET name = excluded.name, "
                        "tier = excluded.tier, region = excluded.region",
                    {id, p->name, std::string(events::to_string(p->tier)), p->region});
        }
        for (const auto& [id, sla] : warehouses_) {
            tx.exec("INSERT INTO " + t("rm_warehouses") +
                        " (warehouse_id, sla_hours) VALUES ($1, $2) "
                        "ON CONFLICT (warehouse_id) DO UPDATE SET sla_hours = excluded.sla_hours",
                    {id, sla});
        }
        discard();
    }

    void discard() override {
        partners_.clear();
        warehouses_.clear();
    }

    std::vector<std::string> tables() const override { return {"rm_partners", "rm_warehouses"}; }

  private:
    std::set<std::string> partners_;
    std::map<std::string, std::string> warehouses_;
};

/// pricing: the price list per tier; a tier change reprices every SKU of that tier.
class PricingProjection final : public TabledProjection {
  public:
    using TabledProjection::TabledProjection;

    std::string_view name() const override { return "pricing"; }

    void observe(const RecordedEvent&, const events::DomainEvent& e,
                 const CommerceState&) override {
        if (const auto* p = as<events::ProductRegistered>(e)) {
            skus_.insert(p->sku);
        } else if (const auto* c = as<events::ProductPriceChanged>(e)) {
            skus_.insert(c->sku);
        } else if (const auto* t = as<events::TierConfigChanged>(e)) {
            tiers_.insert(t->tier);
        } else if (const auto* reset = as<events::SystemConfigReset>(e)) {
            if (const auto tier = model::tier_of_key(reset->key)) {
                tiers_.insert(*tier);
            }
        }
    }

    void flush(SqlTx& tx, const CommerceState& state) override {
        for (const auto tier : tiers_) {
            for (const auto& sku : state.product_skus()) {
                write(tx, state, tier, sku);
            }
        }
        for (const auto& sku : skus_) {
            for (const auto tier : events::all_tiers) {
                if (tiers_.count(tier) == 0) {
                    write(tx, state, tier, sku);
                }
            }
        }
        discard();
    }

    void discard() override {
        skus_.clear();
        tiers_.clear();
    }

    std::vector<std::string> tables() const override { return {"rm_pricing"}; }

    static std::vector<SqlValue> row(const CommerceState& state, events::Tier tier,
                                     const std::string& sku) {
        const auto* product = state.product(sku);
        const auto terms = state.terms(tier);
        return {std::string(events::to_string(tier)),
                sku,
                product->name,
                product->base_price_idr,
                pricing::unit_price_idr(product->base_price_idr, terms.discount_bps),
                std::int64_t{terms.discount_bps},
                model::format_decimal2(terms.loyalty_multiplier_hundredths)};
    }

  private:
    void write(SqlTx& tx, const CommerceState& state, events::Tier tier,
               const std::string& sku) const {
        tx.exec("INSERT INTO " + t("rm_pricing") +
                    " (tier, sku, name, base_price, unit_price, discount_bps, "
                    "loyalty_multiplier) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tier, "
                    "sku) DO "
                    "UPDATE SET name = excluded.name, base_price = excluded.base_price, "
                    "unit_price = excluded.unit_price, discount_bps = excluded.discount_bps, "
                    "loyalty_multiplier = excluded.loyalty_multiplier",
                row(state, tier, sku));
    }

    std::set<std::string> skus_;
    std::set<events::Tier> tiers_;
};

/// The partner an order event is about, from the state (order events carry only the id).
std::string partner_of(const events::DomainEvent& e, const CommerceState& state) {
    return std::visit(
        [&](const auto& event) -> std::string {
            using T = std::decay_t<decltype(event)>;
            if constexpr (requires { event.partner_id; }) {
                return event.partner_id;
            } else if constexpr (requires { event.order_id; }) {
                const auto* order = state.order(event.order_id);
                return order != nullptr ? order->partner_id : std::string();
            } else {
                (void)sizeof(T);
                return {};
            }
        },
        e);
}

/// credit: limit, ERP debt, open orders and available credit per partner.
class CreditProjection final : public TabledProjection {
  public:
    using TabledProjection::TabledProjection;

    std::string_view name() const override { return "credit"; }

    void observe(const RecordedEvent&, const events::DomainEvent& e,
                 const CommerceState& state) override {
        if (as<events::PartnerDetailsChanged>(e) != nullptr ||
            as<events::PartnerTierChanged>(e) != nullptr) {
            return;
        }
        auto partner = partner_of(e, state);
        if (!partner.empty()) {
            partners_.insert(std::move(partner));
        }
    }

    void flush(SqlTx& tx, const CommerceState& state) override {
        for (const auto& id : partners_) {
            tx.exec(
                "INSERT INTO " + t("rm_credit") +
                    " (partner_id, credit_limit, erp_debt, open_orders_total, "
                    "available_credit, debt_synced_at) VALUES ($1, $2, $3, $4, $5, $6) "
                    "ON CONFLICT (partner_id) DO UPDATE SET credit_limit = excluded.credit_limit, "
                    "erp_debt = excluded.erp_debt, open_orders_total = excluded.open_orders_total, "
                    "available_credit = excluded.available_credit, "
                    "debt_synced_at = excluded.debt_synced_at",
                row(state, id));
        }
        discard();
    }

    void discard() override { partners_.clear(); }

    std::vector<std::string> tables() const override { return {"rm_credit"}; }

    static std::vector<SqlValue> row(const CommerceState& state, const std::string& id) {
        const auto* p = state.partner(id);
        const auto position = state.credit_position(*p);
        return {id,
                position.credit_limit_idr,
                position.erp_debt_idr,
                position.open_orders_total_idr,
                position.available_idr(),
                text_or_null(iso_or_null(p->debt_synced_at_us))};
    }

  private:
    std::set<std::string> partners_;
};

/// stock: on hand, reserved, buffer and available per SKU × warehouse.
class StockProjection final : public TabledProjection {
  public:
    using TabledProjection::TabledProjection;

    std::string_view name() const override { return "stock"; }

    void observe(const RecordedEvent&, const events::DomainEvent& e,
                 const CommerceState& state) override {
        if (const auto* s = as<events::StockLevelsSynced>(e)) {
            for (const auto& level : s->levels) {
                rows_.emplace(level.sku, level.warehouse_id);
            }
        } else if (const auto* r = as<events::OrderRouted>(e)) {
            for (const auto& line : r->lines) {
                rows_.emplace(line.sku, r->warehouse_id);
            }
        } else if (const auto* p = as<events::ProductRegistered>(e)) {
            skus_.insert(p->sku);
        } else {
            std::visit(
                [&](const auto& event) {
                    if constexpr (requires { event.order_id; }) {
                        const auto* order = state.order(event.order_id);
                        if (order != nullptr && !order->warehouse_id.empty()) {
                            for (const auto& line : order->lines) {
                                rows_.emplace(line.sku, order->warehouse_id);
                            }
                        }
                    }
                },
                e);
        }
    }

    void flush(SqlTx& tx, const CommerceState& state) override {
        for (const auto& sku : skus_) {
            for (const auto* warehouse : state.warehouses()) {
                if (state.stock(sku, warehouse->warehouse_id) != nullptr) {
                    rows_.emplace(sku, warehouse->warehouse_id);
                }
            }
        }
        for (const auto& [sku, warehouse] : rows_) {
            tx.exec(
                "INSERT INTO " + t("rm_stock") +
                    " (sku, warehouse_id, on_hand, reserved, buffer_qty, available, as_of) VALUES "
                    "($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (sku, warehouse_id) DO UPDATE SET "
                    "on_hand = excluded.on_hand, reserved = excluded.reserved, buffer_qty = "
                    "excluded.buffer_qty, available = excluded.available, as_of = excluded.as_of",
                row(state, sku, warehouse));
        }
        discard();
    }

    void discard() override {
        rows_.clear();
        skus_.clear();
    }

    std::vector<std::string> tables() const override { return {"rm_stock"}; }

    static std::vector<SqlValue> row(const CommerceState& state, const std::string& sku,
                                     const std::string& warehouse) {
        const auto* row = state.stock(sku, warehouse);
        const auto* product = state.product(sku);
        return {sku,
                warehouse,
                row != nullptr ? row->on_hand : 0,
                row != nullptr ? row->reserved : 0,
                product != nullptr ? product->buffer_qty : 0,
                state.available(sku, warehouse),
                text_or_null(iso_or_null(row != nullptr ? row->as_of_us : 0))};
    }

  private:
    std::set<std::pair<std::string, std::string>> rows_;
    std::set<std::string> skus_;
};

/// orders: the order view of SPEC §6, written event by event.
class OrdersProjection final : public TabledProjection {
  public:
    explicit OrdersProjection(std::string suffix) : TabledProjection(std::move(suffix)) {
        prepare_statements();
    }

    std::string_view name() const override { return "orders"; }

    static std::vector<std::string> columns() {
        return {"order_id",     "partner_id",     "status",         "tier",      "lines",
                "subtotal",     "loyalty_points", "warehouse",      "placed_at", "placed_by",
                "on_behalf_of", "erp_order_ref",  "placed_position"};
    }

    /// The rm_orders row the write model implies for one order.
    static std::vector<SqlValue> row(const std::string& id, const model::OrderState& order) {
        const auto& p = order.placed;
        return {id,
                order.partner_id,
                std::string(events::to_string(order.status)),
                std::string(events::to_string(p.tier)),
                stored_order_lines(p.lines),
                p.subtotal_idr,
                p.loyalty_points,
                text_or_null(order.warehouse_id),
                format_iso8601_us(p.placed_at_us),
                p.placed_by,
                text_or_null(p.on_behalf_of),
                text_or_null(order.erp_order_ref),
                order.placed_position};
    }

    /// Notes what each event changes; the statements are built only by flush() — a rebuild's
    /// catch-up flushes in bulk from the write model and never needs them.
    void observe(const RecordedEvent&, const events::DomainEvent& e,
                 const CommerceState&) override {
        if (const auto* p = as<events::OrderPlaced>(e)) {
            note(Change::placed, p->order_id);
        } else if (const auto* h = as<events::OrderCreditHeld>(e)) {
            note(Change::status, h->order_id, "credit_hold");
        } else if (const auto* released = as<events::OrderCreditReleased>(e)) {
            note(Change::status, released->order_id, "placed");
        } else if (const auto* routed = as<events::OrderRouted>(e)) {
            note(Change::routed, routed->order_id, routed->warehouse_id);
        } else if (const auto* c = as<events::OrderCancelled>(e)) {
            note(Change::status, c->order_id, "cancelled");
        } else if (const auto* s = as<events::OrderSentToErp>(e)) {
            note(Change::status, s->order_id, "sent_to_erp");
        } else if (const auto* a = as<events::OrderAcceptedByErp>(e)) {
            note(Change::erp_accepted, a->order_id, a->erp_order_ref);
        } else if (const auto* rejected = as<events::OrderRejectedByErp>(e)) {
            note(Change::erp_rejected, rejected->order_id);
        }
    }

    /// One statement per event, in order: an order's row inserted as placed (from the write
    /// model's OrderPlaced, which never changes), then each later change to it. The routing
    /// that checkout appends with the order itself goes into the insert (one statement of
    /// the live projector's ~7 per order fewer).
    void flush(SqlTx& tx, const CommerceState& state) override {
        for (std::size_t i = 0; i < pending_.size(); ++i) {
            const auto& [change, order_id, value] = pending_[i];
            switch (change) {
                case Change::placed:
                    if (const auto* order = state.order(order_id)) {
                        SqlValue warehouse = nullptr;
                        if (i + 1 < pending_.size() && pending_[i + 1].change == Change::routed &&
                            pending_[i + 1].order_id == order_id) {
                            warehouse = pending_[++i].value;
                        }
                        const auto& p = order->placed;
                        tx.exec(
                            insert_sql_,
                            {order_id, p.partner_id, std::string(events::to_string(p.tier)),
                             stored_order_lines(p.lines), p.subtotal_idr, p.loyalty_points,
                             std::move(warehouse), format_iso8601_us(p.placed_at_us), p.placed_by,
                             text_or_null(p.on_behalf_of), order->placed_position});
                    }
                    break;
                case Change::status:
                    tx.exec(status_sql_, {order_id, value});
                    break;
                case Change::routed:
                    tx.exec(routed_sql_, {order_id, value});
                    break;
                case Change::erp_accepted:
                    tx.exec(erp_accepted_sql_, {order_id, value});
                    break;
                case Change::erp_rejected:
                    // As in the write model: only a sent order can be rejected.
                    tx.exec(erp_rejected_sql_, {order_id});
                    break;
            }
        }
        discard();
    }

    /// Each order an event since the last flush touched, as the write model has it now: its
    /// old row deleted and the new one inserted with the bulk path (COPY on PostgreSQL), two
    /// statements per few hundred orders instead of one per event.
    void flush_in_bulk(SqlTx& tx, const CommerceState& state) override {
        constexpr std::size_t ids_per_delete = 500;
        std::vector<SqlValue> ids;
        std::string placeholders;
        const auto delete_ids = [&] {
            if (ids.empty()) {
                return;
            }
            tx.exec("DELETE FROM " + t("rm_orders") + " WHERE order_id IN (" + placeholders + ")",
                    ids);
            ids.clear();
            placeholders.clear();
        };
        for (const auto& id : touched_order_) {
            placeholders += (ids.empty() ? "$" : ", $") + std::to_string(ids.size() + 1);
            ids.emplace_back(id);
            if (ids.size() == ids_per_delete) {
                delete_ids();
            }
        }
        delete_ids();
        BulkInsert bulk(tx, t("rm_orders"), columns());
        for (const auto& id : touched_order_) {
            if (const auto found = state.orders().find(id); found != state.orders().end()) {
                bulk.add(row(id, found->second));
            }
        }
        bulk.finish();
        discard();
    }

    void discard() override {
        pending_.clear();
        touched_.clear();
        touched_order_.clear();
    }

    std::vector<std::string> tables() const override { return {"rm_orders"}; }

  private:
    enum class Change { placed, status, routed, erp_accepted, erp_rejected };
    struct Pending {
        Change change;
        std::string order_id;
        std::string value;  // The status, warehouse or ERP reference it sets.
    };

    void note(Change change, const std::string& order_id, std::string value = {}) {
        if (touched_.insert(order_id).second) {
            touched_order_.push_back(order_id);
        }
        pending_.push_back({change, order_id, std::move(value)});
    }

    void prepare_statements() {
        const auto orders = t("rm_orders");
        insert_sql_ = "INSERT INTO " + orders +
                      " (order_id, partner_id, status, tier, lines, subtotal, loyalty_points, "
                      "warehouse, placed_at, placed_by, on_behalf_of, erp_order_ref, "
                      "placed_position) VALUES ($1, $2, 'placed', $3, $4, $5, $6, $7, $8, $9, "
                      "$10, NULL, $11)";
        status_sql_ = "UPDATE " + orders + " SET status = $2 WHERE order_id = $1";
        routed_sql_ = "UPDATE " + orders + " SET warehouse = $2 WHERE order_id = $1";
        erp_accepted_sql_ = "UPDATE " + orders +
                            " SET erp_order_ref = $2, status = CASE WHEN status = "
                            "'sent_to_erp' THEN 'erp_accepted' ELSE status END WHERE order_id = $1";
        erp_rejected_sql_ = "UPDATE " + orders +
                            " SET status = 'erp_rejected' WHERE order_id = $1 "
                            "AND status = 'sent_to_erp'";
    }

    std::vector<Pending> pending_;
    std::string insert_sql_;
    std::string status_sql_;
    std::string routed_sql_;
    std::string erp_accepted_sql_;
    std::string erp_rejected_sql_;
    // The orders noted since the last flush, once each, in the order first seen.
    std::set<std::string, std::less<>> touched_;
    std::vector<std::string> touched_order_;
};

/// system_config: key, value, version, updated_by, updated_at (SPEC §5); defaults included.
class SystemConfigProjection final : public TabledProjection {
  public:
    using TabledProjection::TabledProjection;

    std::string_view name() const override { return "system_config"; }

    void observe(const RecordedEvent&, const events::DomainEvent& e,
                 const CommerceState&) override {
        if (const auto* t = as<events::TierConfigChanged>(e)) {
            touched_.insert(model::tier_discount_key(t->tier));
            touched_.insert(model::tier_multiplier_key(t->tier));
        } else if (const auto* c = as<events::SystemConfigChanged>(e)) {
            touched_.insert(c->key);
        } else if (const auto* reset = as<events::SystemConfigReset>(e)) {
            touched_.insert(reset->key);
        }
    }

    void flush(SqlTx& tx, const CommerceState& state) override {
        if (!defaults_written_) {
            for (const auto& spec : model::config_keys()) {
                tx.exec("INSERT INTO " + t("rm_system_config") +
                            " (key, value, version, updated_by, updated_at) "
                            "VALUES ($1, $2, 0, NULL, NULL) ON CONFLICT (key) DO NOTHING",
                        {spec.key, value_json(spec, spec.default_value)});
            }
            defaults_written_ = true;
        }
        // The row as the write model has it (as write_all writes it): who changed the key last
        // and when (the event's changed_at, not when it was stored); a tier change that left
        // this key as it was changes nothing about it.
        for (const auto& key : touched_) {
            const auto* spec = model::find_config_key(key);
            const std::int64_t version = state.config_version(key);
            const auto* change = state.config_change(key);
            if (spec == nullptr || version == 0 || change == nullptr) {
                continue;
            }
            tx.exec(
                "INSERT INTO " + t("rm_system_config") +
                    " (key, value, version, updated_by, updated_at) "
                    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO UPDATE SET value = "
                    "excluded.value, version = excluded.version, updated_by = excluded.updated_by, "
                    "updated_at = excluded.updated_at",
                {key, value_json(*spec, state.config(key)), version, text_or_null(change->actor),
                 format_iso8601_us(change->at_us)});
        }
        touched_.clear();
    }

    void discard() override {
        touched_.clear();
        defaults_written_ = false;
    }

    std::vector<std::string> tables() const override { return {"rm_system_config"}; }

    /// The value as JSON: a number, or a two-decimal string.
    static std::string value_json(const model::ConfigKeySpec& spec, std::int64_t number) {
        if (spec.type == model::ConfigType::integer) {
            return std::to_string(number);
        }
        std::string out;
        append_json_string(out, model::format_decimal2(number));
        return out;
    }

  private:
    std::set<std::string, std::less<>> touched_;
    bool defaults_written_ = false;
};

void TabledProjection::write_all(SqlTx& tx, const CommerceState& state) {
    for (const auto& table : tables()) {
        // Streamed: a row at a time into bulk inserts, never the whole table in memory.
        // (The columns come from a pass over an empty state, which yields no row worth keeping.)
        const auto columns =
            for_each_read_model_row(table, CommerceState{}, [](std::vector<SqlValue>) {});
        BulkInsert bulk(tx, t(table), columns);
        for_each_read_model_row(table, state,
                                [&](std::vector<SqlValue> row) { bulk.add(std::move(row)); });
        bulk.finish();
    }
}

}  // namespace

std::vector<std::string> for_each_read_model_row(
    std::string_view table, const model::CommerceState& state,
    const std::function<void(std::vector<SqlValue>)>& row) {
    std::vector<std::string> columns;
    if (table == "rm_partners") {
        columns = {"partner_id", "name", "tier", "region"};
        for (const auto& id : state.partner_ids()) {
            const auto* p = state.partner(id);
            row({id, p->name, std::string(events::to_string(p->tier)), p->region});
        }
    } else if (table == "rm_warehouses") {
        columns = {"warehouse_id", "sla_hours"};
        for (const auto* w : state.warehouses()) {
            row({w->warehouse_id, sla_json(w->sla_hours)});
        }
    } else if (table == "rm_pricing") {
        columns = {"tier",
                   "sku",
                   "name",
                   "base_price",
                   "unit_price",
                   "discount_bps",
                   "loyalty_multiplier"};
        for (const auto tier : events::all_tiers) {
            for (const auto& sku : state.product_skus()) {
                row(PricingProjection::row(state, tier, sku));
            }
        }
    } else if (table == "rm_credit") {
        columns = {"partner_id",        "credit_limit",     "erp_debt",
                   "open_orders_total", "available_credit", "debt_synced_at"};
        for (const auto& id : state.partner_ids()) {
            row(CreditProjection::row(state, id));
        }
    } else if (table == "rm_stock") {
        columns = {"sku",        "warehouse_id", "on_hand", "reserved",
                   "buffer_qty", "available",    "as_of"};
        for (const auto& [key, stock] : state.stock_rows()) {
            row(StockProjection::row(state, key.first, key.second));
        }
    } else if (table == "rm_orders") {
        columns = OrdersProjection::columns();
        for (const auto& [id, order] : state.orders()) {
            row(OrdersProjection::row(id, order));
        }
    } else if (table == "rm_system_config") {
        columns = {"key", "value", "version", "updated_by", "updated_at"};
        for (const auto& spec : model::config_keys()) {
            const std::int64_t version = state.config_version(spec.key);
            const auto* change = state.config_change(spec.key);
            if (version == 0 || change == nullptr) {
                row({spec.key, SystemConfigProjection::value_json(spec, spec.default_value),
                     std::int64_t{0}, nullptr, nullptr});
            } else {
                row({spec.key, SystemConfigProjection::value_json(spec, state.config(spec.key)),
                     version, text_or_null(change->actor), format_iso8601_us(change->at_us)});
            }
        }
    } else {
        throw std::invalid_argument(fmt::format("no read-model table {}", table));
    }
    return columns;
}

ReadModelRows read_model_rows(std::string_view table, const model::CommerceState& state) {
    ReadModelRows out;
    out.table = std::string(table);
    out.columns = for_each_read_model_row(
        table, state, [&](std::vector<SqlValue> row) { out.rows.push_back(std::move(row)); });
    return out;
}

std::vector<std::unique_ptr<Projection>> make_read_models(std::string_view table_suffix) {
    const std::string suffix(table_suffix);
    std::vector<std::unique_ptr<Projection>> all;
    all.push_back(std::make_unique<DirectoryProjection>(suffix));
    all.push_back(std::make_unique<PricingProjection>(suffix));
    all.push_back(std::make_unique<CreditProjection>(suffix));
    all.push_back(std::make_unique<StockProjection>(suffix));
    all.push_back(std::make_unique<OrdersProjection>(suffix));
    all.push_back(std::make_unique<SystemConfigProjection>(suffix));
    return all;
}

}  // namespace oe::projections
