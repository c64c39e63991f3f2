#include <oe/commands/commands.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>

#include <fmt/format.h>

#include <oe/credit/credit.hpp>
#include <oe/inventory/inventory.hpp>
#include <oe/kernel/metrics.hpp>
#include <oe/model/config_keys.hpp>
#include <oe/pricing/pricing.hpp>
#include <oe/routing/routing.hpp>

namespace oe::commands {

using namespace oe::model;

namespace {

Rejection reject(Rejected reason, std::string message) {
    return Rejection{reason, std::move(message), {}};
}

/// One stream's append of already-built domain events, each stamped with the metadata.
StreamAppend append_to(std::string stream, ExpectedVersion expected,
                       const std::vector<events::DomainEvent>& domain_events,
                       const EventMetadata& metadata) {
    StreamAppend append{std::move(stream), expected, {}};
    for (const auto& e : domain_events) {
        NewEvent encoded = events::encode(e);
        encoded.metadata = metadata;
        append.events.push_back(std::move(encoded));
    }
    return append;
}

Decision one(std::string stream, ExpectedVersion expected, events::DomainEvent e,
             const EventMetadata& m) {
    return std::vector<StreamAppend>{append_to(std::move(stream), expected, {std::move(e)}, m)};
}

bool is_clean_name(std::string_view text, std::size_t max) {
    if (text.empty() || text.size() > max) {
        return false;
    }
    for (const char c : text) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
            return false;
        }
    }
    return true;
}

bool is_valid_region(std::string_view region) {
    return is_valid_id(region);  // "ID-JK": same alphabet and length as ids.
}

std::optional<Rejection> check_money(std::int64_t value, std::string_view field) {
    if (value < 0 || value > limits::money_idr_max) {
        return reject(Rejected::invalid_request,
                      fmt::format("{} must be 0..{}", field, limits::money_idr_max));
    }
    return std::nullopt;
}

/// Routes `lines` for a partner's region against current availability.
std::atomic<metrics::Histogram*> routing_latency{nullptr};

std::optional<std::string> route_order(const std::vector<OrderLine>& lines,
                                       const PartnerState& partner, const CommerceState& s) {
    const auto started = std::chrono::steady_clock::now();
    std::vector<routing::LineQty> wanted;
    wanted.reserve(lines.size());
    for (const auto& line : lines) {
        wanted.push_back({line.sku, line.qty});
    }
    auto routed_to = routing::route(wanted, partner.region, s.warehouses(),
                                    [&s](std::string_view sku, std::string_view warehouse) {
                                        return s.available(sku, warehouse);
                                    });
    // Timing is an observation, not an input: the decision stays pure.
    if (auto* histogram = routing_latency.load(std::memory_order_relaxed)) {
        histogram->observe(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
                .count());
    }
    return routed_to;
}

events::OrderRouted routed(const std::string& order_id, const std::string& warehouse,
                           const std::vector<OrderLine>& lines) {
    events::OrderRouted e;
    e.order_id = order_id;
    e.warehouse_id = warehouse;
    for (const auto& line : lines) {
        e.lines.push_back({line.sku, line.qty});
    }
    return e;
}

}  // namespace

std::string_view code(Rejected reason) {
    switch (reason) {
        case Rejected::invalid_request:
            return "invalid_request";
        case Rejected::unknown_partner:
            return "unknown_partner";
        case Rejected::unknown_sku:
            return "unknown_sku";
        case Rejected::below_minimum_order:
            return "below_minimum_order";
        case Rejected::insufficient_stock:
            return "insufficient_stock";
        case Rejected::order_not_found:
            return "not_found";
        case Rejected::not_cancellable:
            return "not_cancellable";
        case Rejected::not_on_hold:
            return "not_on_hold";
        case Rejected::unknown_tier:
            return "unknown_tier";
        case Rejected::unknown_config_key:
            return "unknown_config_key";
        case Rejected::invalid_config_value:
            return "invalid_config_value";
        case Rejected::unknown_warehouse:
            return "unknown_warehouse";
        case Rejected::already_exists:
            return "already_exists";
        case Rejected::order_state_changed:
            return "order_state_changed";
        case Rejected::dead_letter_not_found:
            return "not_found";
    }
    return "invalid_request";
}

void observe_routing_latency(metrics::Histogram* histogram) {
    routing_latency.store(histogram, std::memory_order_relaxed);
}

bool is_valid_id(std::string_view id) {
    if (id.empty() || id.size() > limits::id_bytes_max) {
        return false;
    }
    for (const char c : id) {
        const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                        (c >= '0' && c <= '9') || c == '_' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

Decision decide(const RegisterPartner& c, const CommerceState& s, const EventMetadata& m) {
    if (!is_valid_id(c.partner_id) || !is_clean_name(c.name, limits::name_bytes_max) ||
        !is_valid_region(c.region)) {
        return reject(Rejected::invalid_request,
                      "partner_id, name and region must be 1..64 id characters / 1..200 "
                      "printable characters");
    }
    const auto tier = events::parse_tier(c.tier);
    if (!tier) {
        return reject(Rejected::unknown_tier, fmt::format("unknown tier '{}'", c.tier));
    }
    if (auto bad = check_money(c.credit_limit_idr, "credit_limit")) {
        return *bad;
    }
    if (s.partner(c.partner_id) != nullptr) {
        return reject(Rejected::already_exists,
                      fmt::format("partner {} is already registered", c.partner_id));
    }
    return one(events::partner_stream(c.partner_id), ExpectedVersion::no_stream(),
               events::PartnerRegistered{c.partner_id, c.name, *tier, c.region, c.credit_limit_idr},
               m);
}

Decision decide(const ChangePartnerDetails& c, const CommerceState& s, const EventMetadata& m) {
    const PartnerState* p = s.partner(c.partner_id);
    if (p == nullptr) {
        return reject(Rejected::unknown_partner, fmt::format("unknown partner {}", c.partner_id));
    }
    if ((c.name && !is_clean_name(*c.name, limits::name_bytes_max)) ||
        (c.region && !is_valid_region(*c.region))) {
        return reject(Rejected::invalid_request, "name or region is not valid");
    }
    const std::string name = c.name.value_or(p->name);
    const std::string region = c.region.value_or(p->region);
    if (name == p->name && region == p->region) {
        return std::vector<StreamAppend>{};
    }
    return one(events::partner_stream(c.partner_id), ExpectedVersion::any(),
               events::PartnerDetailsChanged{c.partner_id, name, region}, m);
}

Decision decide(const ChangePartnerTier& c, const CommerceState& s, const EventMetadata& m) {
    const PartnerState* p = s.partner(c.partner_id);
    if (p == nullptr) {
        return reject(Rejected::unknown_partner, fmt::format("unknown partner {}", c.partner_id));
    }
    const auto tier = events::parse_tier(c.tier);
    if (!tier) {
        return reject(Rejected::unknown_tier, fmt::format("unknown tier '{}'", c.tier));
    }
    if (*tier == p->tier) {
        return std::vector<StreamAppend>{};
    }
    return one(events::partner_stream(c.partner_id), ExpectedVersion::any(),
               events::PartnerTierChanged{c.partner_id, *tier}, m);
}

Decision decide(const SetCreditLimit& c, const CommerceState& s, const EventMetadata& m) {
    const PartnerState* p = s.partner(c.partner_id);
    if (p == nullptr) {
        return reject(Rejected::unknown_partner, fmt::format("unknown partner {}", c.partner_id));
    }
    if (auto bad = check_money(c.credit_limit_idr, "credit_limit")) {
        return *bad;
    }
    if (c.credit_limit_idr == p->credit_limit_idr) {
        return std::vector<StreamAppend>{};
    }
    return one(events::partner_stream(c.partner_id), ExpectedVersion::any(),
               events::CreditLimitSet{c.partner_id, c.credit_limit_idr}, m);
}

Decision decide(const UpdatePartner& c, const CommerceState& s, const EventMetadata& m) {
    if (s.partner(c.partner_id) == nullptr) {
        return reject(Rejected::unknown_partner, fmt::format("unknown partner {}", c.partner_id));
    }
    // Each part is decided against the same state; their events form one append, so a PATCH
    // changes all it asks for or nothing.
    StreamAppend merged{events::partner_stream(c.partner_id), ExpectedVersion::any(), {}};
    auto take = [&merged](Decision part) -> std::optional<Rejection> {
        if (!part.ok()) {
            return part.error();
        }
        for (auto& append : part.value()) {
            for (auto& event : append.events) {
                merged.events.push_back(std::move(event));
            }
        }
        return std::nullopt;
    };
    if (c.name || c.region) {
        if (auto bad = take(decide(ChangePartnerDetails{c.partner_id, c.name, c.region}, s, m))) {
            return *bad;
        }
    }
    if (c.tier) {
        if (auto bad = take(decide(ChangePartnerTier{c.partner_id, *c.tier}, s, m))) {
            return *bad;
        }
    }
    if (c.credit_limit_idr) {
        if (auto bad = take(decide(SetCreditLimit{c.partner_id, *c.credit_limit_idr}, s, m))) {
            return *bad;
        }
    }
    if (merged.events.empty()) {
        return std::vector<StreamAppend>{};
    }
    return std::vector<StreamAppend>{std::move(merged)};
}

Decision decide(const RegisterProduct& c, const CommerceState& s, const EventMetadata& m) {
    if (!is_valid_id(c.sku) || !is_clean_name(c.name, limits::name_bytes_max)) {
        return reject(Rejected::invalid_request,
                      "sku must be 1..64 of [A-Za-z0-9_-] and name 1..200 printable characters");
    }
    if (c.base_price_idr < 0 || c.base_price_idr > pricing::base_price_idr_max) {
        return reject(Rejected::invalid_request,
                      fmt::format("base_price must be 0..{}", pricing::base_price_idr_max));
    }
    if (c.buffer_qty < 0 || c.buffer_qty > limits::stock_qty_max) {
        return reject(Rejected::invalid_request,
                      fmt::format("buffer_qty must be 0..{}", limits::stock_qty_max));
    }
    if (s.product(c.sku) != nullptr) {
        return reject(Rejected::already_exists, fmt::format("sku {} already exists", c.sku));
    }
    return one(events::product_stream(c.sku), ExpectedVersion::no_stream(),
               events::ProductRegistered{c.sku, c.name, c.base_price_idr, c.buffer_qty}, m);
}

Decision decide(const ChangeProductPrice& c, const CommerceState& s, const EventMetadata& m) {
    const ProductState* p = s.product(c.sku);
    if (p == nullptr) {
        return reject(Rejected::unknown_sku, fmt::format("unknown sku {}", c.sku));
    }
    if (c.base_price_idr < 0 || c.base_price_idr > pricing::base_price_idr_max) {
        return reject(Rejected::invalid_request,
                      fmt::format("base_price must be 0..{}", pricing::base_price_idr_max));
    }
    if (c.base_price_idr == p->base_price_idr) {
        return std::vector<StreamAppend>{};
    }
    return one(events::product_stream(c.sku), ExpectedVersion::any(),
               events::ProductPriceChanged{c.sku, c.base_price_idr}, m);
}

Decision decide(const RegisterWarehouse& c, const CommerceState& s, const EventMetadata& m) {
    if (!is_valid_id(c.warehouse_id) || c.sla_hours.empty() || c.sla_hours.size() > 1'000) {
        return reject(Rejected::invalid_request,
                      "warehouse_id must be 1..64 of [A-Za-z0-9_-] with 1..1000 SLA regions");
    }
    events::WarehouseRegistered e{c.warehouse_id, {}};
    for (const auto& [region, hours] : c.sla_hours) {
        if (!is_valid_region(region) || hours < 0 || hours > limits::sla_hours_max) {
            return reject(
                Rejected::invalid_request,
                fmt::format("sla_hours[{}] must be 0..{} hours", region, limits::sla_hours_max));
        }
        e.sla_hours.emplace(region, static_cast<std::int32_t>(hours));
    }
    if (s.has_warehouse(c.warehouse_id)) {
        return reject(Rejected::already_exists,
                      fmt::format("warehouse {} already exists", c.warehouse_id));
    }
    return one(events::warehouse_stream(c.warehouse_id), ExpectedVersion::no_stream(), std::move(e),
               m);
}

Decision decide(const ChangeTierConfig& c, const CommerceState& s, const EventMetadata& m) {
    const auto tier = events::parse_tier(c.tier);
    if (!tier) {
        return reject(Rejected::unknown_tier, fmt::format("unknown tier '{}'", c.tier));
    }
    const ConfigKeySpec& discount = *find_config_key(tier_discount_key(*tier));
    const ConfigKeySpec& multiplier = *find_config_key(tier_multiplier_key(*tier));
    const auto hundredths = parse_decimal2(c.loyalty_multiplier);
    if (c.discount_bps < discount.min || c.discount_bps > discount.max || !hundredths ||
        *hundredths < multiplier.min || *hundredths > multiplier.max) {
        return reject(Rejected::invalid_config_value,
                      "discount_bps must be 0..9000 and loyalty_multiplier \"0.00\"..\"10.00\"");
    }
    if (s.config(discount.key) == c.discount_bps && s.config(multiplier.key) == *hundredths) {
        return std::vector<StreamAppend>{};
    }
    return one(events::config_stream(), ExpectedVersion::any(),
               events::TierConfigChanged{*tier, static_cast<std::int32_t>(c.discount_bps),
                                         static_cast<std::int32_t>(*hundredths), c.changed_at_us},
               m);
}

Decision decide(const ChangeSystemConfig& c, const CommerceState& s, const EventMetadata& m) {
    const ConfigKeySpec* spec = find_config_key(c.key);
    if (spec == nullptr) {
        return reject(Rejected::unknown_config_key, fmt::format("unknown config key '{}'", c.key));
    }
    const auto number = numeric_value(*spec, c.value);
    if (!number || *number < spec->min || *number > spec->max) {
        const bool decimal = spec->type == ConfigType::decimal2;
        return reject(
            Rejected::invalid_config_value,
            fmt::format("{} must be {} {}..{}", c.key,
                        decimal ? "a two-decimal string" : "an integer",
                        decimal ? format_decimal2(spec->min) : std::to_string(spec->min),
                        decimal ? format_decimal2(spec->max) : std::to_string(spec->max)));
    }
    // tier.* keys belong to ChangeTierConfig (SPEC §5): one key changes, its sibling stays.
    if (const auto tier = tier_of_key(c.key)) {
        const bool is_discount = c.key == tier_discount_key(*tier);
        const std::int64_t discount = is_discount ? *number : s.config(tier_discount_key(*tier));
        const std::int64_t multiplier =
            is_discount ? s.config(tier_multiplier_key(*tier)) : *number;
        return decide(ChangeTierConfig{std::string(events::to_string(*tier)), discount,
                                       format_decimal2(multiplier), c.changed_at_us},
                      s, m);
    }
    if (s.config(c.key) == *number) {
        return std::vector<StreamAppend>{};  // As in force: PUT is idempotent, a no-op.
    }
    return one(events::config_stream(), ExpectedVersion::any(),
               events::SystemConfigChanged{c.key, wire_value(*spec, *number), c.changed_at_us}, m);
}

Decision decide(const ResetSystemConfig& c, const CommerceState& s, const EventMetadata& m) {
    const ConfigKeySpec* spec = find_config_key(c.key);
    if (spec == nullptr) {
        return reject(Rejected::unknown_config_key, fmt::format("unknown config key '{}'", c.key));
    }
    // Every key, tier.* included, resets with SystemConfigReset, so the history says "reset"
    // (SPEC §6). A key at its default already is left as it is: nothing to record, as for a
    // change to the value in force (a version counts changes of the value).
    if (s.config(c.key) == spec->default_value) {
        return std::vector<StreamAppend>{};
    }
    return one(events::config_stream(), ExpectedVersion::any(),
               events::SystemConfigReset{c.key, c.changed_at_us}, m);
}

Decision decide(const PlaceOrder& c, const CommerceState& s, const EventMetadata& m) {
    // 1. Request validation (400).
    if (c.lines.empty() || c.lines.size() > limits::order_lines_max) {
        return reject(Rejected::invalid_request,
                      fmt::format("an order has 1..{} lines", limits::order_lines_max));
    }
    if (c.note.size() > limits::note_bytes_max) {
        return reject(Rejected::invalid_request,
                      fmt::format("note is at most {} bytes", limits::note_bytes_max));
    }
    std::set<std::string_view> seen;
    for (const auto& line : c.lines) {
        if (!is_valid_id(line.sku)) {
            return reject(Rejected::invalid_request, "sku must be 1..64 of [A-Za-z0-9_-]");
        }
        if (line.qty < 1 || line.qty > limits::line_qty_max) {
            return reject(Rejected::invalid_request,
                          fmt::format("qty must be 1..{}", limits::line_qty_max));
        }
        // Duplicates are rejected, not merged: a client that sends one SKU twice has a bug
        // we should not guess around.
        if (!seen.insert(line.sku).second) {
            return reject(Rejected::invalid_request,
                          fmt::format("sku {} appears more than once", line.sku));
        }
    }
    const PartnerState* partner = s.partner(c.partner_id);
    if (partner == nullptr) {
        return reject(Rejected::unknown_partner, fmt::format("unknown partner {}", c.partner_id));
    }
    // 2–3. Unknown SKU, then minimum order (pricing).
    const auto terms = s.terms(partner->tier);
    std::vector<pricing::LineRequest> requests;
    requests.reserve(c.lines.size());
    for (const auto& line : c.lines) {
        requests.push_back({line.sku, line.qty});
    }
    auto priced = pricing::price_order(
        requests,
        [&s](std::string_view sku) -> std::optional<std::int64_t> {
            const ProductState* p = s.product(sku);
            return p != nullptr ? std::optional(p->base_price_idr) : std::nullopt;
        },
        terms, s.config("order.min_threshold_idr"));
    if (!priced.ok()) {
        if (priced.error().reason == pricing::PricingRejected::unknown_sku) {
            return reject(Rejected::unknown_sku, fmt::format("unknown sku {}", priced.error().sku));
        }
        return reject(
            Rejected::below_minimum_order,
            fmt::format("subtotal {} is below the minimum order of {}", priced.error().subtotal_idr,
                        s.config("order.min_threshold_idr")));
    }
    events::OrderPlaced placed;
    placed.order_id = c.order_id;
    placed.partner_id = c.partner_id;
    placed.tier = partner->tier;
    placed.region = partner->region;
    placed.discount_bps = terms.discount_bps;
    placed.loyalty_multiplier_hundredths = terms.loyalty_multiplier_hundredths;
    for (const auto& line : priced.value().lines) {
        placed.lines.push_back({line.sku, line.qty, line.base_price_idr, line.unit_price_idr,
                                line.discount_bps, line.line_total_idr});
    }
    placed.subtotal_idr = priced.value().subtotal_idr;
    placed.loyalty_points = priced.value().loyalty_points;
    placed.config_position = s.config_position();
    placed.note = c.note;
    placed.placed_by = m.actor;
    placed.on_behalf_of = m.on_behalf_of;
    placed.placed_at_us = c.placed_at_us;

    // 4. Credit: over the limit is recorded on hold, reserving nothing.
    const auto position = s.credit_position(*partner);
    if (credit::decide_credit(placed.subtotal_idr, position) == credit::CreditDecision::hold) {
        events::OrderCreditHeld held{c.order_id, c.partner_id, placed.subtotal_idr,
                                     position.available_idr()};
        return std::vector<StreamAppend>{append_to(events::order_stream(c.order_id),
                                                   ExpectedVersion::no_stream(),
                                                   {std::move(placed), std::move(held)}, m)};
    }
    // 5. Stock and routing.
    std::vector<OrderLine> lines;
    for (const auto& line : c.lines) {
        lines.push_back({line.sku, line.qty});
    }
    const auto warehouse = route_order(lines, *partner, s);
    if (!warehouse) {
        return reject(Rejected::insufficient_stock,
                      "no warehouse serving the partner's region can fulfil every line");
    }
    auto route_event = routed(c.order_id, *warehouse, lines);
    return std::vector<StreamAppend>{append_to(events::order_stream(c.order_id),
                                               ExpectedVersion::no_stream(),
                                               {std::move(placed), std::move(route_event)}, m)};
}

namespace {

/// The order, if it exists and the caller may see it (BOLA: otherwise it does not exist).
const OrderState* visible_order(const CommerceState& s, const std::string& order_id,
                                const std::vector<std::string>& visible_partners) {
    const OrderState* order = s.order(order_id);
    if (order == nullptr || visible_partners.empty()) {
        return order;
    }
    const bool visible = std::find(visible_partners.begin(), visible_partners.end(),
                                   order->partner_id) != visible_partners.end();
    return visible ? order : nullptr;
}

}  // namespace

Decision decide(const CancelOrder& c, const CommerceState& s, const EventMetadata& m) {
    const OrderState* order = visible_order(s, c.order_id, c.visible_partners);
    if (order == nullptr) {
        return reject(Rejected::order_not_found, fmt::format("unknown order {}", c.order_id));
    }
    if (!events::is_cancellable(order->status)) {
        return reject(Rejected::not_cancellable,
                      fmt::format("order {} is {} and can no longer be cancelled", c.order_id,
                                  events::to_string(order->status)));
    }
    return one(events::order_stream(c.order_id), ExpectedVersion::exact(order->version),
               events::OrderCancelled{c.order_id, order->status, m.actor}, m);
}

Decision decide(const ReleaseCreditHold& c, const CommerceState& s, const EventMetadata& m) {
    const OrderState* order = visible_order(s, c.order_id, c.visible_partners);
    if (order == nullptr) {
        return reject(Rejected::order_not_found, fmt::format("unknown order {}", c.order_id));
    }
    if (order->status != events::OrderStatus::credit_hold) {
        return reject(Rejected::not_on_hold,
                      fmt::format("order {} is {}, not on credit hold", c.order_id,
                                  events::to_string(order->status)));
    }
    const PartnerState* partner = s.partner(order->partner_id);
    const auto warehouse = route_order(order->lines, *partner, s);
    if (!warehouse) {
        return reject(Rejected::insufficient_stock,
                      "no warehouse serving the partner's region can fulfil every line; the "
                      "order stays on hold");
    }
    // A deliberate credit override: credit is not checked again (SPEC §4).
    return std::vector<StreamAppend>{append_to(events::order_stream(c.order_id),
                                               ExpectedVersion::exact(order->version),
                                               {events::OrderCreditReleased{c.order_id, m.actor},
                                                routed(c.order_id, *warehouse, order->lines)},
                                               m)};
}

Decision decide(const RecordStockLevels& c, const CommerceState& s, const EventMetadata& m) {
    if (c.levels.empty()) {
        return std::vector<StreamAppend>{};
    }
    std::set<std::pair<std::string_view, std::string_view>> seen;
    for (const auto& level : c.levels) {
        if (s.product(level.sku) == nullptr) {
            return reject(Rejected::unknown_sku, fmt::format("unknown sku {}", level.sku));
        }
        if (!s.has_warehouse(level.warehouse_id)) {
            return reject(Rejected::unknown_warehouse,
                          fmt::format("unknown warehouse {}", level.warehouse_id));
        }
        if (level.on_hand < 0 || level.on_hand > limits::stock_qty_max) {
            return reject(Rejected::invalid_request,
                          fmt::format("on_hand must be 0..{}", limits::stock_qty_max));
        }
        if (!seen.insert({level.sku, level.warehouse_id}).second) {
            return reject(Rejected::invalid_request, "a stock row appears twice");
        }
    }
    return one(events::stock_stream(), ExpectedVersion::any(),
               events::StockLevelsSynced{c.as_of_us, c.levels}, m);
}

Decision decide(const RecordPartnerDebt& c, const CommerceState& s, const EventMetadata& m) {
    if (s.partner(c.partner_id) == nullptr) {
        return reject(Rejected::unknown_partner, fmt::format("unknown partner {}", c.partner_id));
    }
    if (auto bad = check_money(c.outstanding_idr, "outstanding")) {
        return *bad;
    }
    return one(events::partner_stream(c.partner_id), ExpectedVersion::any(),
               events::PartnerDebtSynced{c.partner_id, c.outstanding_idr, c.as_of_us}, m);
}

namespace {

constexpr std::size_t erp_text_bytes_max = 1'000;

/// ERP-supplied text (references, reasons, errors) kept printable and bounded in our log.
std::string erp_text(std::string_view text) {
    std::string out;
    for (const char c : text.substr(0, erp_text_bytes_max)) {
        out.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7F ? ' ' : c);
    }
    return out;
}

}  // namespace

Decision decide(const MarkOrderSentToErp& c, const CommerceState& s, const EventMetadata& m) {
    const OrderState* order = s.order(c.order_id);
    if (order == nullptr) {
        return reject(Rejected::order_not_found, fmt::format("unknown order {}", c.order_id));
    }
    if (order->status == events::OrderStatus::sent_to_erp) {
        return std::vector<StreamAppend>{};
    }
    if (order->status != events::OrderStatus::placed || order->warehouse_id.empty()) {
        return reject(Rejected::order_state_changed,
                      fmt::format("order {} is {}; nothing to send", c.order_id,
                                  events::to_string(order->status)));
    }
    return one(events::order_stream(c.order_id), ExpectedVersion::exact(order->version),
               events::OrderSentToErp{c.order_id}, m);
}

Decision decide(const RecordErpAcceptance& c, const CommerceState& s, const EventMetadata& m) {
    const OrderState* order = s.order(c.order_id);
    if (order == nullptr) {
        return reject(Rejected::order_not_found, fmt::format("unknown order {}", c.order_id));
    }
    if (order->status != events::OrderStatus::sent_to_erp) {
        return std::vector<StreamAppend>{};
    }
    if (c.erp_order_ref.empty()) {
        return reject(Rejected::invalid_request, "the ERP reference is empty");
    }
    return one(events::order_stream(c.order_id), ExpectedVersion::exact(order->version),
               events::OrderAcceptedByErp{c.order_id, erp_text(c.erp_order_ref)}, m);
}

Decision decide(const RecordErpRejection& c, const CommerceState& s, const EventMetadata& m) {
    const OrderState* order = s.order(c.order_id);
    if (order == nullptr) {
        return reject(Rejected::order_not_found, fmt::format("unknown order {}", c.order_id));
    }
    if (order->status != events::OrderStatus::sent_to_erp) {
        return std::vector<StreamAppend>{};
    }
    return one(events::order_stream(c.order_id), ExpectedVersion::exact(order->version),
               events::OrderRejectedByErp{c.order_id, erp_text(c.reason)}, m);
}

Decision decide(const ParkErpDelivery& c, const CommerceState& s, const EventMetadata& m) {
    if (s.order(c.order_id) == nullptr) {
        return reject(Rejected::order_not_found, fmt::format("unknown order {}", c.order_id));
    }
    if (c.dead_letter_id < 1 || c.attempts < 1) {
        return reject(Rejected::invalid_request, "dead letter id and attempts must be >= 1");
    }
    return one(events::erp_dead_letter_stream(), ExpectedVersion::any(),
               events::ErpDeliveryParked{c.dead_letter_id, c.order_id, c.action, c.attempts,
                                         erp_text(c.last_error)},
               m);
}

Decision decide(const RetryErpDelivery& c, const CommerceState& s, const EventMetadata& m) {
    const auto& letters = s.erp_dead_letters();
    const auto found = letters.find(c.dead_letter_id);
    if (found == letters.end()) {
        return reject(Rejected::dead_letter_not_found,
                      fmt::format("no open dead letter {}", c.dead_letter_id));
    }
    if (found->second.retry_requested) {
        return std::vector<StreamAppend>{};
    }
    return one(events::erp_dead_letter_stream(), ExpectedVersion::any(),
               events::ErpDeliveryRetryRequested{c.dead_letter_id, m.actor}, m);
}

Decision decide(const ResolveErpDelivery& c, const CommerceState& s, const EventMetadata& m) {
    if (s.erp_dead_letters().count(c.dead_letter_id) == 0) {
        return std::vector<StreamAppend>{};
    }
    return one(events::erp_dead_letter_stream(), ExpectedVersion::any(),
               events::ErpDeliveryResolved{c.dead_letter_id}, m);
}

}  // namespace oe::commands
