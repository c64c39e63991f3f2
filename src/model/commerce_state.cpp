#include <oe/model/commerce_state.hpp>

#include <algorithm>
#include <utility>

#include <fmt/format.h>

#include <oe/inventory/inventory.hpp>
#include <oe/kernel/event_store.hpp>
#include <oe/kernel/invariant.hpp>
#include <oe/model/config_keys.hpp>

namespace oe::model {

namespace {

std::string actor_of(const RecordedEvent& r) {
    try {
        return EventMetadata::from_json(r.metadata).actor;
    } catch (const std::invalid_argument&) {
        return {};  // Unreadable metadata shows as an unknown author, not an outage.
    }
}

bool is_foreign(const events::DecodeError& error) {
    // Events of types outside the published language are not ours to fold.
    return error.message.starts_with("unknown event type");
}

}  // namespace

CommerceState::CommerceState() {
    clear();
}

void CommerceState::clear() {
    position_ = 0;
    partners_.clear();
    products_.clear();
    warehouses_.clear();
    orders_.clear();
    stock_.clear();
    config_.clear();
    config_versions_.clear();
    config_changes_.clear();
    config_position_ = 0;
    erp_dead_letters_.clear();
    for (const auto& spec : config_keys()) {
        config_[spec.key] = spec.default_value;
    }
}

void CommerceState::apply(const RecordedEvent& event) {
    apply(event, events::decode(event));
}

bool CommerceState::admit(const RecordedEvent& event,
                          const Result<events::DomainEvent, events::DecodeError>& decoded) {
    OE_INVARIANT(event.global_position > position_, "events are applied in order, once");
    position_ = event.global_position;
    if (!decoded.ok()) {
        if (is_foreign(decoded.error())) {
            return false;
        }
        // A known event the write model cannot read would make every later decision wrong.
        throw CorruptEvent(event.global_position, decoded.error().message);
    }
    return true;
}

void CommerceState::apply(const RecordedEvent& event,
                          const Result<events::DomainEvent, events::DecodeError>& decoded) {
    if (admit(event, decoded)) {
        std::visit([&](const auto& e) { on(e, event); }, decoded.value());
    }
}

void CommerceState::apply(const RecordedEvent& event,
                          Result<events::DomainEvent, events::DecodeError>&& decoded) {
    if (admit(event, decoded)) {
        std::visit([&](auto&& e) { on(std::forward<decltype(e)>(e), event); },
                   std::move(decoded).value());
    }
}

PartnerState& CommerceState::partner_for(const std::string& id, const RecordedEvent& r) {
    const auto found = partners_.find(id);
    if (found == partners_.end()) {
        throw CorruptEvent(r.global_position, fmt::format("partner {} was never registered", id));
    }
    return found->second;
}

OrderState* OrderBook::find(std::string_view id) {
    if (has_last_ && last_->first == id) {
        return &last_->second;
    }
    const auto found = map_.find(id);
    if (found == map_.end()) {
        return nullptr;
    }
    last_ = found;
    has_last_ = true;
    return &found->second;
}

const OrderState* OrderBook::find(std::string_view id) const {
    if (has_last_ && last_->first == id) {
        return &last_->second;
    }
    const auto found = map_.find(id);
    return found == map_.end() ? nullptr : &found->second;
}

OrderState& OrderBook::get_or_add(const std::string& id) {
    // Ids usually grow along the log: then the new entry goes last without a search.
    const bool last_so_far = map_.empty() || map_.rbegin()->first < id;
    const auto at = last_so_far ? map_.end() : map_.lower_bound(id);
    last_ = at != map_.end() && at->first == id ? at : map_.emplace_hint(at, id, OrderState{});
    has_last_ = true;
    return last_->second;
}

OrderState& CommerceState::order_for(const std::string& id, const RecordedEvent& r) {
    OrderState* found = orders_.find(id);
    if (found == nullptr) {
        throw CorruptEvent(r.global_position, fmt::format("order {} was never placed", id));
    }
    found->version = r.stream_version;
    return *found;
}

bool CommerceState::holds_credit(events::OrderStatus status) {
    return status == events::OrderStatus::placed || status == events::OrderStatus::sent_to_erp;
}

void CommerceState::on(const events::PartnerRegistered& e, const RecordedEvent&) {
    PartnerState& p = partners_[e.partner_id];
    p.name = e.name;
    p.tier = e.tier;
    p.region = e.region;
    p.credit_limit_idr = e.credit_limit_idr;
}

void CommerceState::on(const events::PartnerDetailsChanged& e, const RecordedEvent& r) {
    PartnerState& p = partner_for(e.partner_id, r);
    p.name = e.name;
    p.region = e.region;
}

void CommerceState::on(const events::PartnerTierChanged& e, const RecordedEvent& r) {
    partner_for(e.partner_id, r).tier = e.tier;
}

void CommerceState::on(const events::CreditLimitSet& e, const RecordedEvent& r) {
    partner_for(e.partner_id, r).credit_limit_idr = e.credit_limit_idr;
}

void CommerceState::on(const events::ProductRegistered& e, const RecordedEvent&) {
    products_[e.sku] = ProductState{e.name, e.base_price_idr, e.buffer_qty};
}

void CommerceState::on(const events::ProductPriceChanged& e, const RecordedEvent& r) {
    const auto found = products_.find(e.sku);
    if (found == products_.end()) {
        throw CorruptEvent(r.global_position,
                           fmt::format("product {} was never registered", e.sku));
    }
    found->second.base_price_idr = e.base_price_idr;
}

void CommerceState::on(const events::WarehouseRegistered& e, const RecordedEvent&) {
    routing::Warehouse& w = warehouses_[e.warehouse_id];
    w.warehouse_id = e.warehouse_id;
    w.sla_hours.clear();
    for (const auto& [region, hours] : e.sla_hours) {
        w.sla_hours.emplace(region, hours);
    }
}

void CommerceState::on(const events::TierConfigChanged& e, const RecordedEvent& r) {
    for (const auto& [key, value] :
         {std::pair{tier_discount_key(e.tier), std::int64_t{e.discount_bps}},
          std::pair{tier_multiplier_key(e.tier), std::int64_t{e.loyalty_multiplier_hundredths}}}) {
        if (config_[key] != value) {  // A tier change names both keys; one may stay.
            config_[key] = value;
            ++config_versions_[key];
            config_changes_[key] = ConfigChange{actor_of(r), e.changed_at_us};
        }
    }
    config_position_ = r.global_position;
}

void CommerceState::on(const events::SystemConfigChanged& e, const RecordedEvent& r) {
    const ConfigKeySpec* spec = find_config_key(e.key);
    const auto number = spec != nullptr ? numeric_value(*spec, e.value) : std::nullopt;
    if (!number) {
        throw CorruptEvent(r.global_position, fmt::format("bad value for config key {}", e.key));
    }
    config_[e.key] = *number;
    ++config_versions_[e.key];
    config_changes_[e.key] = ConfigChange{actor_of(r), e.changed_at_us};
    config_position_ = r.global_position;
}

void CommerceState::on(const events::SystemConfigReset& e, const RecordedEvent& r) {
    const ConfigKeySpec* spec = find_config_key(e.key);
    if (spec == nullptr) {
        throw CorruptEvent(r.global_position, fmt::format("unknown config key {}", e.key));
    }
    config_[e.key] = spec->default_value;
    ++config_versions_[e.key];
    config_changes_[e.key] = ConfigChange{actor_of(r), e.changed_at_us};
    config_position_ = r.global_position;
}

void CommerceState::on(const events::StockLevelsSynced& e, const RecordedEvent&) {
    for (const auto& level : e.levels) {
        StockRow& row = stock_[{level.sku, level.warehouse_id}];
        row.on_hand = level.on_hand;
        row.as_of_us = e.as_of_us;
        // Lines the ERP accepted before this snapshot are in its on_hand already.
        auto& accepted = row.accepted;
        const auto reflected = std::partition(accepted.begin(), accepted.end(),
                                              [&](auto& line) { return line.first >= e.as_of_us; });
        for (auto it = reflected; it != accepted.end(); ++it) {
            row.reserved -= it->second;
        }
        accepted.erase(reflected, accepted.end());
    }
}

void CommerceState::on(const events::PartnerDebtSynced& e, const RecordedEvent& r) {
    PartnerState& p = partner_for(e.partner_id, r);
    p.erp_debt_idr = e.outstanding_idr;
    p.debt_synced_at_us = e.as_of_us;
    // The ERP's figure includes every order it had accepted before its as_of instant; orders
    // accepted since still count as open.
    for (auto it = p.accepted_since_debt_sync.begin(); it != p.accepted_since_debt_sync.end();) {
        if (it->second.accepted_at_us < e.as_of_us) {
            p.open_orders_total_idr -= it->second.subtotal_idr;
            it = p.accepted_since_debt_sync.erase(it);
        } else {
            ++it;
        }
    }
}

void CommerceState::on(const events::OrderPlaced& e, const RecordedEvent& r) {
    place(e, r);
}

void CommerceState::on(events::OrderPlaced&& e, const RecordedEvent& r) {
    place(std::move(e), r);
}

void CommerceState::place(events::OrderPlaced e, const RecordedEvent& r) {
    OrderState& order = orders_.get_or_add(e.order_id);
    order.partner_id = e.partner_id;
    order.status = events::OrderStatus::placed;
    order.subtotal_idr = e.subtotal_idr;
    order.version = r.stream_version;
    order.placed_position = r.global_position;
    order.lines.clear();
    order.lines.reserve(e.lines.size());
    for (const auto& line : e.lines) {
        order.lines.push_back({line.sku, line.qty});
    }
    partner_for(e.partner_id, r).open_orders_total_idr += e.subtotal_idr;
    order.placed = std::move(e);
}

void CommerceState::on(const events::OrderCreditHeld& e, const RecordedEvent& r) {
    OrderState& order = order_for(e.order_id, r);
    if (holds_credit(order.status)) {
        partner_for(order.partner_id, r).open_orders_total_idr -= order.subtotal_idr;
    }
    order.status = events::OrderStatus::credit_hold;
}

void CommerceState::on(const events::OrderCreditReleased& e, const RecordedEvent& r) {
    OrderState& order = order_for(e.order_id, r);
    order.status = events::OrderStatus::placed;
    partner_for(order.partner_id, r).open_orders_total_idr += order.subtotal_idr;
}

void CommerceState::on(const events::OrderRouted& e, const RecordedEvent& r) {
    OrderState& order = order_for(e.order_id, r);
    order.warehouse_id = e.warehouse_id;
    for (const auto& line : e.lines) {
        stock_[{line.sku, e.warehouse_id}].reserved += line.qty;
    }
}

void CommerceState::release_reservations(const OrderState& order) {
    if (order.warehouse_id.empty()) {
        return;
    }
    for (const auto& line : order.lines) {
        stock_[{line.sku, order.warehouse_id}].reserved -= line.qty;
    }
}

void CommerceState::on(const events::OrderCancelled& e, const RecordedEvent& r) {
    OrderState& order = order_for(e.order_id, r);
    if (holds_credit(order.status)) {
        partner_for(order.partner_id, r).open_orders_total_idr -= order.subtotal_idr;
    }
    release_reservations(order);
    order.status = events::OrderStatus::cancelled;
}

void CommerceState::on(const events::OrderSentToErp& e, const RecordedEvent& r) {
    order_for(e.order_id, r).status = events::OrderStatus::sent_to_erp;
}

void CommerceState::on(const events::OrderAcceptedByErp& e, const RecordedEvent& r) {
    OrderState& order = order_for(e.order_id, r);
    // Still open credit until the partner's next debt sync; still reserved stock until a
    // snapshot taken after now.
    order.erp_order_ref = e.erp_order_ref;
    if (order.status != events::OrderStatus::sent_to_erp) {
        // Only a sent order can be accepted (the decision checks); anything else keeps its
        // status and frees nothing twice.
        return;
    }
    partner_for(order.partner_id, r).accepted_since_debt_sync[e.order_id] = {r.recorded_at_us,
                                                                             order.subtotal_idr};
    if (!order.warehouse_id.empty()) {
        for (const auto& line : order.lines) {
            stock_[{line.sku, order.warehouse_id}].accepted.emplace_back(r.recorded_at_us,
                                                                         line.qty);
        }
    }
    order.status = events::OrderStatus::erp_accepted;
}

void CommerceState::on(const events::OrderRejectedByErp& e, const RecordedEvent& r) {
    OrderState& order = order_for(e.order_id, r);
    if (order.status != events::OrderStatus::sent_to_erp) {
        return;  // Only a sent order can be rejected (the decision checks); free nothing twice.
    }
    partner_for(order.partner_id, r).open_orders_total_idr -= order.subtotal_idr;
    release_reservations(order);
    order.status = events::OrderStatus::erp_rejected;
}

void CommerceState::on(const events::ErpDeliveryParked& e, const RecordedEvent& r) {
    auto& letter = erp_dead_letters_[e.dead_letter_id];
    letter.parked = e;
    letter.retry_requested = false;
    letter.parked_at_us = r.recorded_at_us;
}

void CommerceState::on(const events::ErpDeliveryRetryRequested& e, const RecordedEvent&) {
    const auto found = erp_dead_letters_.find(e.dead_letter_id);
    if (found != erp_dead_letters_.end()) {
        found->second.retry_requested = true;
    }
}

void CommerceState::on(const events::ErpDeliveryResolved& e, const RecordedEvent&) {
    erp_dead_letters_.erase(e.dead_letter_id);
}

const ConfigChange* CommerceState::config_change(std::string_view key) const {
    const auto found = config_changes_.find(key);
    return found == config_changes_.end() ? nullptr : &found->second;
}

std::vector<std::string> CommerceState::partner_ids() const {
    std::vector<std::string> ids;
    ids.reserve(partners_.size());
    for (const auto& [id, partner] : partners_) {
        ids.push_back(id);
    }
    return ids;
}

const PartnerState* CommerceState::partner(std::string_view id) const {
    const auto found = partners_.find(id);
    return found == partners_.end() ? nullptr : &found->second;
}

const ProductState* CommerceState::product(std::string_view sku) const {
    const auto found = products_.find(sku);
    return found == products_.end() ? nullptr : &found->second;
}

const OrderState* CommerceState::order(std::string_view id) const {
    return orders_.find(id);
}

bool CommerceState::has_warehouse(std::string_view id) const {
    return warehouses_.find(id) != warehouses_.end();
}

std::vector<std::string> CommerceState::product_skus() const {
    std::vector<std::string> skus;
    skus.reserve(products_.size());
    for (const auto& [sku, product] : products_) {
        skus.push_back(sku);
    }
    return skus;
}

std::vector<const routing::Warehouse*> CommerceState::warehouses() const {
    std::vector<const routing::Warehouse*> all;
    all.reserve(warehouses_.size());
    for (const auto& [id, warehouse] : warehouses_) {
        all.push_back(&warehouse);
    }
    return all;
}

std::int64_t CommerceState::config(std::string_view key) const {
    const auto found = config_.find(key);
    OE_INVARIANT(found != config_.end(), "unknown config key");
    return found->second;
}

std::int64_t CommerceState::config_version(std::string_view key) const {
    const auto found = config_versions_.find(key);
    return found == config_versions_.end() ? 0 : found->second;
}

pricing::TierTerms CommerceState::terms(events::Tier tier) const {
    return pricing::TierTerms{static_cast<std::int32_t>(config(tier_discount_key(tier))),
                              static_cast<std::int32_t>(config(tier_multiplier_key(tier)))};
}

credit::CreditPosition CommerceState::credit_position(const PartnerState& partner) const {
    return credit::CreditPosition{partner.credit_limit_idr, partner.erp_debt_idr,
                                  partner.open_orders_total_idr};
}

const StockRow* CommerceState::stock(std::string_view sku, std::string_view warehouse) const {
    const auto found = stock_.find({std::string(sku), std::string(warehouse)});
    return found == stock_.end() ? nullptr : &found->second;
}

std::int64_t CommerceState::available(std::string_view sku, std::string_view warehouse) const {
    const ProductState* p = product(sku);
    const StockRow* row = stock(sku, warehouse);
    return inventory::available(row != nullptr ? row->on_hand : 0,
                                row != nullptr ? row->reserved : 0,
                                p != nullptr ? p->buffer_qty : 0);
}

}  // namespace oe::model
