#include <oe/app/finance.hpp>

#include <oe/projections/order_lines.hpp>
#include <oe/projections/projection.hpp>

#include <algorithm>
#include <charconv>
#include <map>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>

#include <oe/credit/credit.hpp>
#include <oe/events/events.hpp>
#include <oe/kernel/json_text.hpp>
#include <oe/kernel/time.hpp>
#include <oe/model/commerce_state.hpp>
#include <oe/model/config_keys.hpp>
#include <oe/model/fold.hpp>
#include <oe/pricing/pricing.hpp>

namespace oe::app {

namespace {

using model::CommerceState;

FinanceError invalid(std::string message) {
    return FinanceError{400, "invalid_request", std::move(message)};
}

FinanceError not_found(std::string message) {
    return FinanceError{404, "not_found", std::move(message)};
}

// ---- Folding the log.

/// Applies events 1..last_position (stopping early at the first event recorded after
/// `until_us`, when given) to `state`.
model::FoldEnd fold_prefix(EventStore& store, CommerceState& state, std::int64_t last_position,
                           std::optional<std::int64_t> until_us = std::nullopt) {
    return model::fold_log(
        store, state,
        model::FoldLimits{last_position, until_us, finance_limits::replay_read_batch_events});
}

/// The prefix of the log `as_of` names, checked against the store: the last position to fold
/// (and, for an instant, the instant to stop at).
struct Prefix {
    std::int64_t last_position = 0;
    std::optional<std::int64_t> until_us;
};

Result<Prefix, FinanceError> resolve(EventStore& store, const AsOf& as_of, std::int64_t now_us) {
    if (as_of.time_us && *as_of.time_us > now_us) {
        return invalid(fmt::format("as_of {} is in the future (now is {})",
                                   format_iso8601_us(*as_of.time_us), format_iso8601_us(now_us)));
    }
    if (!as_of.time_us && as_of.position < 1) {
        return invalid("as_of position must be >= 1 (positions start at 1)");
    }
    // The head is read once: an instant replay never includes an event appended after it
    // started, so two replays of one past instant see the same prefix.
    const std::int64_t head = store.head_position();
    if (head == 0) {
        return invalid("the event log is empty: there is nothing to replay");
    }
    if (!as_of.time_us) {
        if (as_of.position > head) {
            return invalid(fmt::format("as_of position {} is beyond the head of the log ({})",
                                       as_of.position, head));
        }
        return Prefix{as_of.position, std::nullopt};
    }
    const auto first = store.read_all(0, 1);
    if (first.empty() || first.front().recorded_at_us > *as_of.time_us) {
        return invalid(fmt::format(
            "as_of {} is before the first event (recorded at {})",
            format_iso8601_us(*as_of.time_us),
            first.empty() ? std::string("?") : format_iso8601_us(first.front().recorded_at_us)));
    }
    return Prefix{head, as_of.time_us};
}

// ---- Rows of each read model, from the fold: the projections' own row builder
// ---- (projections::read_model_rows), so a replay and the live tables cannot drift apart.

void model_rows(const CommerceState& state, ReplayModel model, ReplayTable& table) {
    static constexpr std::string_view tables[] = {"rm_credit", "rm_stock", "rm_pricing",
                                                  "rm_orders"};
    auto rows = projections::read_model_rows(tables[static_cast<std::size_t>(model)], state);
    table.columns = std::move(rows.columns);
    for (auto& row : rows.rows) {
        std::vector<Cell> cells;
        cells.reserve(row.size());
        for (std::size_t i = 0; i < row.size(); ++i) {
            auto& value = row[i];
            if (std::holds_alternative<std::nullptr_t>(value)) {
                cells.emplace_back(nullptr);
            } else if (std::holds_alternative<std::int64_t>(value)) {
                cells.emplace_back(std::get<std::int64_t>(value));
            } else if (model == ReplayModel::orders && table.columns[i] == "lines") {
                // The order view's form, as the API shows an order (rm_orders keeps it shorter).
                cells.emplace_back(
                    JsonText{projections::order_lines_view(std::get<std::string>(value))});
            } else {
                cells.emplace_back(std::move(std::get<std::string>(value)));
            }
        }
        table.rows.push_back(std::move(cells));
    }
}

// ---- Output.

void append_json_cell(std::string& out, const Cell& cell) {
    std::visit(
        [&out](const auto& v) {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, std::nullptr_t>) {
                out += "null";
            } else if constexpr (std::is_same_v<T, std::int64_t>) {
                out += std::to_string(v);
            } else if constexpr (std::is_same_v<T, std::string>) {
                append_json_string(out, v);
            } else {
                out += v.text;
            }
        },
        cell);
}

void append_csv_field(std::string& out, std::string_view text) {
    if (text.find_first_of(",\"\r\n") == std::string_view::npos) {
        out += text;
        return;
    }
    out.push_back('"');
    for (const char c : text) {
        if (c == '"') {
            out.push_back('"');
        }
        out.push_back(c);
    }
    out.push_back('"');
}

void append_json_optional(std::string& out, const std::optional<std::int64_t>& value) {
    out += value ? std::to_string(*value) : std::string("null");
}

}  // namespace

// ---- Parsing.

Result<AsOf, FinanceError> parse_as_of(std::string_view text) {
    if (!text.empty() && text.size() <= 18 &&
        std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        std::int64_t position = 0;
        std::from_chars(text.data(), text.data() + text.size(), position);
        return AsOf::at_position(position);
    }
    if (const auto us = parse_iso8601_us(text)) {
        return AsOf::at_instant(*us);
    }
    return invalid(
        "as_of must be a global position (digits) or an ISO 8601 UTC timestamp such as "
        "2026-11-26T10:00:00Z");
}

Result<ReplayModel, FinanceError> parse_replay_model(std::string_view name) {
    for (const auto model :
         {ReplayModel::credit, ReplayModel::stock, ReplayModel::pricing, ReplayModel::orders}) {
        if (name == to_string(model)) {
            return model;
        }
    }
    return invalid("model must be one of credit, stock, pricing, orders");
}

std::string_view to_string(ReplayModel model) {
    switch (model) {
        case ReplayModel::credit:
            return "credit";
        case ReplayModel::stock:
            return "stock";
        case ReplayModel::pricing:
            return "pricing";
        case ReplayModel::orders:
            return "orders";
    }
    OE_INVARIANT(false, "ReplayModel value outside the enum");
    return {};
}

Result<ReplayFormat, FinanceError> parse_replay_format(std::string_view name) {
    if (name == "json") {
        return ReplayFormat::json;
    }
    if (name == "csv") {
        return ReplayFormat::csv;
    }
    return invalid("format must be csv or json");
}

std::optional<std::string> cell_text(const Cell& cell) {
    return std::visit(
        [](const auto& v) -> std::optional<std::string> {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, std::nullptr_t>) {
                return std::nullopt;
            } else if constexpr (std::is_same_v<T, std::int64_t>) {
                return std::to_string(v);
            } else if constexpr (std::is_same_v<T, std::string>) {
                return v;
            } else {
                return v.text;
            }
        },
        cell);
}

// ---- Replay.

Result<ReplayTable, FinanceError> replay(EventStore& store, const AsOf& as_of, ReplayModel model,
                                         std::int64_t now_us) {
    auto prefix = resolve(store, as_of, now_us);
    if (!prefix.ok()) {
        return prefix.error();
    }
    CommerceState state;
    const auto end =
        fold_prefix(store, state, prefix.value().last_position, prefix.value().until_us);
    OE_INVARIANT(end.position >= 1, "a checked prefix holds at least one event");
    ReplayTable table;
    table.model = model;
    table.as_of_position = end.position;
    table.as_of_us = as_of.time_us;
    table.as_of_recorded_at_us = end.recorded_at_us;
    model_rows(state, model, table);
    return table;
}

std::string to_json(const ReplayTable& table) {
    std::string out = "{\"model\":";
    append_json_string(out, to_string(table.model));
    out += ",\"as_of\":";
    if (table.as_of_us) {
        append_json_string(out, format_iso8601_us(*table.as_of_us));
    } else {
        out += "null";
    }
    out += fmt::format(",\"as_of_position\":{},\"rows\":[", table.as_of_position);
    for (std::size_t r = 0; r < table.rows.size(); ++r) {
        out += r == 0 ? "{" : ",{";
        for (std::size_t c = 0; c < table.columns.size(); ++c) {
            if (c > 0) {
                out.push_back(',');
            }
            append_json_string(out, table.columns[c]);
            out.push_back(':');
            append_json_cell(out, table.rows[r][c]);
        }
        out.push_back('}');
    }
    out += "]}";
    return out;
}

std::string to_csv(const ReplayTable& table) {
    std::string out;
    for (std::size_t c = 0; c < table.columns.size(); ++c) {
        if (c > 0) {
            out.push_back(',');
        }
        append_csv_field(out, table.columns[c]);
    }
    out += "\r\n";
    for (const auto& row : table.rows) {
        for (std::size_t c = 0; c < row.size(); ++c) {
            if (c > 0) {
                out.push_back(',');
            }
            if (const auto text = cell_text(row[c])) {
                append_csv_field(out, *text);
            }
        }
        out += "\r\n";
    }
    return out;
}

// ---- Audit.

namespace {

struct PlacedRecord {
    const RecordedEvent* event = nullptr;
    events::OrderPlaced placed;
    std::optional<events::OrderCreditHeld> held;  // Decided in the same append.
};

/// The order's OrderPlaced and, when the same append put it on hold, its OrderCreditHeld.
std::optional<PlacedRecord> find_placed(const std::vector<RecordedEvent>& stream) {
    for (std::size_t i = 0; i < stream.size(); ++i) {
        if (stream[i].type != events::OrderPlaced::type_name) {
            continue;
        }
        auto decoded = events::decode(stream[i]);
        if (!decoded.ok()) {
            throw CorruptEvent(stream[i].global_position, decoded.error().message);
        }
        PlacedRecord record{&stream[i], std::get<events::OrderPlaced>(decoded.value()), {}};
        const bool next_in_append =
            i + 1 < stream.size() && stream[i + 1].global_position == stream[i].global_position + 1;
        if (next_in_append && stream[i + 1].type == events::OrderCreditHeld::type_name) {
            auto held = events::decode(stream[i + 1]);
            if (!held.ok()) {
                throw CorruptEvent(stream[i + 1].global_position, held.error().message);
            }
            record.held = std::get<events::OrderCreditHeld>(held.value());
        }
        return record;
    }
    return std::nullopt;
}

/// The order's status now, from its own events (the write model's transitions).
std::string status_of(const std::vector<RecordedEvent>& stream) {
    events::OrderStatus status = events::OrderStatus::placed;
    for (const auto& event : stream) {
        const std::string_view type = event.type;
        if (type == events::OrderCreditHeld::type_name) {
            status = events::OrderStatus::credit_hold;
        } else if (type == events::OrderCreditReleased::type_name) {
            status = events::OrderStatus::placed;
        } else if (type == events::OrderCancelled::type_name) {
            status = events::OrderStatus::cancelled;
        } else if (type == events::OrderSentToErp::type_name) {
            status = events::OrderStatus::sent_to_erp;
        } else if (type == events::OrderAcceptedByErp::type_name &&
                   status == events::OrderStatus::sent_to_erp) {
            status = events::OrderStatus::erp_accepted;
        } else if (type == events::OrderRejectedByErp::type_name &&
                   status == events::OrderStatus::sent_to_erp) {
            status = events::OrderStatus::erp_rejected;
        }
    }
    return std::string(events::to_string(status));
}

AuditEvent audit_event(const RecordedEvent& event) {
    AuditEvent out{event.global_position,
                   event.stream_version,
                   event.type,
                   event.schema_version,
                   event.recorded_at_us,
                   event.data,
                   {},
                   {},
                   {}};
    try {
        const auto metadata = EventMetadata::from_json(event.metadata);
        out.actor = metadata.actor;
        out.on_behalf_of = metadata.on_behalf_of;
        out.trace_id = metadata.trace_id;
    } catch (const std::invalid_argument&) {
        // Unreadable metadata shows as an unknown actor; the event itself is still listed.
    }
    return out;
}

/// Re-prices the recorded lines with the catalogue and terms of `state` through the same
/// pure function PlaceOrder uses. A line whose SKU was not sold then, or whose quantity or
/// base price is outside what pricing accepts, stays unpriced.
void derive_prices(const CommerceState& state, const events::OrderPlaced& placed,
                   DerivedOrder& derived) {
    const pricing::TierTerms terms{derived.discount_bps, derived.loyalty_multiplier_hundredths};
    std::vector<pricing::LineRequest> requests;
    std::vector<bool> priceable;
    for (const auto& line : placed.lines) {
        const auto* product = state.product(line.sku);
        derived.lines.push_back(
            {line.sku, line.qty,
             product != nullptr ? std::optional(product->base_price_idr) : std::nullopt,
             std::nullopt, terms.discount_bps, std::nullopt});
        priceable.push_back(product != nullptr && line.qty >= 1 &&
                            line.qty <= pricing::line_qty_max && product->base_price_idr >= 0 &&
                            product->base_price_idr <= pricing::base_price_idr_max);
        if (priceable.back()) {
            requests.push_back({line.sku, line.qty});
        }
    }
    const auto priced = pricing::price_order(
        requests,
        [&state](std::string_view sku) -> std::optional<std::int64_t> {
            const auto* p = state.product(sku);
            return p != nullptr ? std::optional(p->base_price_idr) : std::nullopt;
        },
        terms, /*min_order_idr=*/0);
    OE_INVARIANT(priced.ok(), "every requested line has a known SKU");
    auto next = priced.value().lines.begin();
    for (std::size_t i = 0; i < derived.lines.size(); ++i) {
        if (priceable[i]) {
            derived.lines[i].unit_price_idr = next->unit_price_idr;
            derived.lines[i].line_total_idr = next->line_total_idr;
            ++next;
        }
    }
    derived.subtotal_idr = priced.value().subtotal_idr;
    derived.loyalty_points = priced.value().loyalty_points;
}

/// What PlaceOrder would have decided for the recorded lines from `state`.
DerivedOrder derive(const CommerceState& state, const events::OrderPlaced& placed) {
    DerivedOrder derived;
    derived.as_of_position = state.position();
    derived.config_position = state.config_position();
    derived.min_order_idr = state.config("order.min_threshold_idr");
    const auto* partner = state.partner(placed.partner_id);
    derived.partner_known = partner != nullptr;
    if (partner == nullptr) {
        for (const auto& line : placed.lines) {
            const auto* product = state.product(line.sku);
            derived.lines.push_back(
                {line.sku, line.qty,
                 product != nullptr ? std::optional(product->base_price_idr) : std::nullopt,
                 std::nullopt, 0, std::nullopt});
        }
        return derived;
    }
    const auto terms = state.terms(partner->tier);
    derived.tier = std::string(events::to_string(partner->tier));
    derived.region = partner->region;
    derived.discount_bps = terms.discount_bps;
    derived.loyalty_multiplier_hundredths = terms.loyalty_multiplier_hundredths;
    derive_prices(state, placed, derived);
    const auto position = state.credit_position(*partner);
    derived.credit_limit_idr = position.credit_limit_idr;
    derived.erp_debt_idr = position.erp_debt_idr;
    derived.open_orders_total_idr = position.open_orders_total_idr;
    derived.available_credit_idr = position.available_idr();
    derived.credit_decision =
        credit::decide_credit(derived.subtotal_idr, position) == credit::CreditDecision::hold
            ? "credit_hold"
            : "placed";
    return derived;
}

class Comparison {
  public:
    template <typename R, typename D>
    void field(std::string name, R recorded, D derived) {
        AuditValue r = to_value(std::move(recorded));
        AuditValue d = to_value(std::move(derived));
        if (r != d) {
            differences_.push_back({std::move(name), std::move(r), std::move(d)});
        }
    }
    std::vector<AuditDifference> take() { return std::move(differences_); }

  private:
    template <typename T>
    static AuditValue to_value(T value) {
        if constexpr (std::is_same_v<T, std::optional<std::int64_t>>) {
            return value ? AuditValue{*value} : AuditValue{nullptr};
        } else if constexpr (std::is_same_v<T, bool>) {
            return AuditValue{value};
        } else if constexpr (std::is_integral_v<T>) {
            return AuditValue{static_cast<std::int64_t>(value)};
        } else {
            return AuditValue{std::string(value)};
        }
    }

    std::vector<AuditDifference> differences_;
};

std::vector<AuditDifference> compare(const PlacedRecord& record, const DerivedOrder& derived) {
    const auto& placed = record.placed;
    Comparison c;
    if (!derived.partner_known) {
        // Nothing else can be derived without the partner's tier and credit.
        return {AuditDifference{"partner_id", placed.partner_id, nullptr}};
    }
    c.field("tier", events::to_string(placed.tier), derived.tier);
    c.field("region", placed.region, derived.region);
    c.field("discount_bps", placed.discount_bps, derived.discount_bps);
    c.field("loyalty_multiplier", model::format_decimal2(placed.loyalty_multiplier_hundredths),
            model::format_decimal2(derived.loyalty_multiplier_hundredths));
    c.field("config_position", placed.config_position, derived.config_position);
    for (std::size_t i = 0; i < placed.lines.size(); ++i) {
        const auto& r = placed.lines[i];
        const auto& d = derived.lines[i];
        const auto name = [i](const char* field) { return fmt::format("lines[{}].{}", i, field); };
        c.field(name("base_price"), std::optional(r.base_price_idr), d.base_price_idr);
        c.field(name("discount_bps"), r.discount_bps, d.discount_bps);
        c.field(name("unit_price"), std::optional(r.unit_price_idr), d.unit_price_idr);
        c.field(name("line_total"), std::optional(r.line_total_idr), d.line_total_idr);
    }
    c.field("subtotal", placed.subtotal_idr, derived.subtotal_idr);
    c.field("loyalty_points", placed.loyalty_points, derived.loyalty_points);
    // It was accepted, so it met the minimum order of its time.
    c.field("meets_minimum_order", true, derived.subtotal_idr >= derived.min_order_idr);
    c.field("credit_decision", record.held ? "credit_hold" : "placed", derived.credit_decision);
    if (record.held) {
        c.field("available_credit", record.held->available_credit_idr,
                derived.available_credit_idr);
    }
    return c.take();
}

}  // namespace

Result<AuditReport, FinanceError> audit_order(EventStore& store, std::string_view order_id) {
    const auto stream = store.read_stream(events::order_stream(order_id));
    const auto record = find_placed(stream);
    if (!record) {
        return not_found(fmt::format("unknown order {}", order_id));
    }
    const std::int64_t placed_position = record->event->global_position;
    CommerceState state;
    fold_prefix(store, state, placed_position - 1);

    AuditReport report;
    report.order_id = std::string(order_id);
    report.partner_id = record->placed.partner_id;
    report.status = status_of(stream);
    report.placed_position = placed_position;
    for (const auto& event : stream) {
        report.events.push_back(audit_event(event));
    }
    report.derived = derive(state, record->placed);
    report.differences = compare(*record, report.derived);
    report.consistent = report.differences.empty();
    return report;
}

namespace {

void append_value(std::string& out, const AuditValue& value) {
    std::visit(
        [&out](const auto& v) {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, std::nullptr_t>) {
                out += "null";
            } else if constexpr (std::is_same_v<T, bool>) {
                out += v ? "true" : "false";
            } else if constexpr (std::is_same_v<T, std::int64_t>) {
                out += std::to_string(v);
            } else {
                append_json_string(out, v);
            }
        },
        value);
}

void append_text_or_null(std::string& out, const std::string& text) {
    if (text.empty()) {
        out += "null";
    } else {
        append_json_string(out, text);
    }
}

void append_derived(std::string& out, const DerivedOrder& d) {
    out += fmt::format("{{\"as_of_position\":{},\"tier\":", d.as_of_position);
    append_text_or_null(out, d.tier);
    out += ",\"region\":";
    append_text_or_null(out, d.region);
    out += fmt::format(",\"discount_bps\":{},\"loyalty_multiplier\":", d.discount_bps);
    append_json_string(out, model::format_decimal2(d.loyalty_multiplier_hundredths));
    out += fmt::format(",\"config_position\":{},\"lines\":[", d.config_position);
    for (std::size_t i = 0; i < d.lines.size(); ++i) {
        const auto& line = d.lines[i];
        out += i == 0 ? "{\"sku\":" : ",{\"sku\":";
        append_json_string(out, line.sku);
        out += fmt::format(",\"qty\":{},\"base_price\":", line.qty);
        append_json_optional(out, line.base_price_idr);
        out += ",\"unit_price\":";
        append_json_optional(out, line.unit_price_idr);
        out += fmt::format(",\"discount_bps\":{},\"line_total\":", line.discount_bps);
        append_json_optional(out, line.line_total_idr);
        out.push_back('}');
    }
    out += fmt::format(
        "],\"subtotal\":{},\"loyalty_points\":{},\"min_order\":{},\"credit\":{{"
        "\"credit_limit\":{},\"erp_debt\":{},\"open_orders_total\":{},\"available_credit\":{}}},"
        "\"credit_decision\":",
        d.subtotal_idr, d.loyalty_points, d.min_order_idr, d.credit_limit_idr, d.erp_debt_idr,
        d.open_orders_total_idr, d.available_credit_idr);
    append_text_or_null(out, d.credit_decision);
    out.push_back('}');
}

void append_event(std::string& out, const AuditEvent& e) {
    out +=
        fmt::format("{{\"global_position\":{},\"stream_version\":{},\"type\":", e.global_position,
                    e.stream_version);
    append_json_string(out, e.type);
    out += fmt::format(",\"schema_version\":{},\"recorded_at\":", e.schema_version);
    append_json_string(out, format_iso8601_us(e.recorded_at_us));
    out += ",\"actor\":";
    append_text_or_null(out, e.actor);
    out += ",\"on_behalf_of\":";
    append_text_or_null(out, e.on_behalf_of);
    out += ",\"trace_id\":";
    append_text_or_null(out, e.trace_id);
    out += ",\"data\":";
    out += e.data;
    out.push_back('}');
}

}  // namespace

std::string to_json(const AuditReport& report) {
    std::string out = "{\"order_id\":";
    append_json_string(out, report.order_id);
    out += ",\"partner_id\":";
    append_json_string(out, report.partner_id);
    out += ",\"status\":";
    append_json_string(out, report.status);
    out += fmt::format(",\"placed_position\":{},\"consistent\":{},\"differences\":[",
                       report.placed_position, report.consistent ? "true" : "false");
    for (std::size_t i = 0; i < report.differences.size(); ++i) {
        const auto& d = report.differences[i];
        out += i == 0 ? "{\"field\":" : ",{\"field\":";
        append_json_string(out, d.field);
        out += ",\"recorded\":";
        append_value(out, d.recorded);
        out += ",\"derived\":";
        append_value(out, d.derived);
        out.push_back('}');
    }
    out += "],\"derived\":";
    append_derived(out, report.derived);
    out += ",\"events\":[";
    for (std::size_t i = 0; i < report.events.size(); ++i) {
        if (i > 0) {
            out.push_back(',');
        }
        append_event(out, report.events[i]);
    }
    out += "]}";
    return out;
}

}  // namespace oe::app
