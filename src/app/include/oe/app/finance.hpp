#pragma once

// Finance: audit of one order and point-in-time replay of a read model (SPEC §6, §9).
// Pure functions over the event log: they read it, never write, and never touch the live read
// models, so the CLI (`orderengine audit order`, `orderengine replay`) and the HTTP routes
// (GET /api/finance/orders/{id}/audit, GET /api/finance/replay) share one implementation.
// docs/finance-replay.md describes the semantics.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <oe/kernel/event_store.hpp>
#include <oe/kernel/result.hpp>

namespace oe::app {

/// Limits of the finance reads, units last.
namespace finance_limits {
/// Events per read_all call while folding: large batches, no per-event round trip.
inline constexpr std::size_t replay_read_batch_events = 20'000;
}  // namespace finance_limits

/// An expected failure of a finance request, ready for the HTTP error body (SPEC §6:
/// `{"error":{"code","message"}}`) or a CLI message. `message` is one line.
struct FinanceError {
    int http_status = 400;
    std::string code;  // invalid_request, not_found.
    std::string message;

    bool operator==(const FinanceError&) const = default;
};

/// The instant a replay stands at: either a global position (events 1..position) or an
/// instant (every event recorded at or before it; recorded_at never goes backwards along the
/// log in either store, so that is a prefix 1..N of the log).
struct AsOf {
    std::int64_t position = 0;            // Used when time_us is empty.
    std::optional<std::int64_t> time_us;  // UTC µs since the epoch.

    [[nodiscard]] static AsOf at_position(std::int64_t position) { return AsOf{position, {}}; }
    [[nodiscard]] static AsOf at_instant(std::int64_t time_us) { return AsOf{0, time_us}; }
    bool operator==(const AsOf&) const = default;
};

/// "123" → position 123 (digits only); an ISO 8601 UTC timestamp ("2026-11-26T10:00:00Z",
/// fractional seconds allowed; "+00:00" and a date alone, meaning its midnight, too) → that
/// instant. Anything else → 400 invalid_request. Range checks (future, before the first event,
/// beyond the head) need the store and happen in replay().
[[nodiscard]] Result<AsOf, FinanceError> parse_as_of(std::string_view text);

/// The read models a replay can rebuild: the rm_credit, rm_stock, rm_pricing and rm_orders
/// tables, with the same columns and values.
enum class ReplayModel : std::uint8_t { credit, stock, pricing, orders };

/// "credit", "stock", "pricing" or "orders"; anything else → 400 invalid_request naming the
/// four (so the CLI and the HTTP route give the same message).
[[nodiscard]] Result<ReplayModel, FinanceError> parse_replay_model(std::string_view name);
[[nodiscard]] std::string_view to_string(ReplayModel model);

enum class ReplayFormat : std::uint8_t { json, csv };
/// "json" or "csv" (the CLI's --format); anything else → 400 invalid_request.
[[nodiscard]] Result<ReplayFormat, FinanceError> parse_replay_format(std::string_view name);

/// A JSON value kept as its text (rm_orders.lines): embedded as is in JSON, written as text in
/// CSV.
struct JsonText {
    std::string text;
    bool operator==(const JsonText&) const = default;
};

/// One value of a replayed row: NULL, an integer (rupiah, quantities, positions: never
/// floating point), text, or JSON.
using Cell = std::variant<std::nullptr_t, std::int64_t, std::string, JsonText>;

/// The cell as the read-model table returns it from EventStore::query (integers as decimal
/// digits, NULL as nothing): replay rows compare equal to live rows through this.
[[nodiscard]] std::optional<std::string> cell_text(const Cell& cell);

/// A read model as it stood at as_of_position. Rows are sorted by the table's key (credit:
/// partner_id; stock: sku, warehouse_id; pricing: tier from BRONZE to PLATINUM, then sku;
/// orders: order_id), strings in byte order, so the output never depends on the backend.
struct ReplayTable {
    ReplayModel model = ReplayModel::credit;
    std::vector<std::string> columns;  // The read-model table's columns, in its order.
    std::vector<std::vector<Cell>> rows;
    std::int64_t as_of_position = 0;        // The last event folded in (>= 1).
    std::optional<std::int64_t> as_of_us;   // The instant asked for, when one was.
    std::int64_t as_of_recorded_at_us = 0;  // recorded_at of the event at as_of_position.
};

/// Rebuilds `model` from events 1..N of the log alone, where N is the position asked for, or
/// the last position recorded at or before the instant asked for. 400 invalid_request when the
/// instant is later than `now_us`, earlier than the first event, the position is < 1 or beyond
/// the head, or the log is empty. Reads the log in large batches (one pass, no per-event SQL);
/// throws StoreError on I/O failure and CorruptEvent on an unreadable event.
[[nodiscard]] Result<ReplayTable, FinanceError> replay(EventStore& store, const AsOf& as_of,
                                                       ReplayModel model, std::int64_t now_us);

/// `{"model":"credit","as_of":"…Z"|null,"as_of_position":N,"rows":[{column:value,…},…]}`:
/// integers as JSON numbers, NULL as null, rm_orders.lines as a JSON array. Deterministic: the
/// same log prefix gives the same bytes on either backend.
[[nodiscard]] std::string to_json(const ReplayTable& table);
/// RFC 4180: a header row of the column names, then one record per row; CRLF after every
/// record; a field is quoted (inner quotes doubled) when it holds a comma, a double quote, CR
/// or LF; integers as plain digits (no separators, no decimals); NULL as an empty field.
[[nodiscard]] std::string to_csv(const ReplayTable& table);

// ---- Audit of one order.

/// One event of the order's stream, with who did it.
struct AuditEvent {
    std::int64_t global_position = 0;
    std::int64_t stream_version = 0;
    std::string type;
    std::uint16_t schema_version = 1;
    std::int64_t recorded_at_us = 0;
    std::string data;          // The event's JSON, as stored (after upcasting).
    std::string actor;         // From the metadata; empty when absent.
    std::string on_behalf_of;  // Empty when the actor acted for itself.
    std::string trace_id;
};

/// A value on either side of a difference: NULL (could not be derived / not recorded), a
/// boolean, an integer or text.
using AuditValue = std::variant<std::nullptr_t, bool, std::int64_t, std::string>;

/// One field where the recorded decision and the re-derived one disagree, e.g.
/// `lines[0].unit_price`.
struct AuditDifference {
    std::string field;
    AuditValue recorded;
    AuditValue derived;
    bool operator==(const AuditDifference&) const = default;
};

/// One line re-priced from the catalogue and config as of the order's position.
struct DerivedLine {
    std::string sku;
    std::int64_t qty = 0;
    std::optional<std::int64_t> base_price_idr;  // Nothing when the SKU was not sold then.
    std::optional<std::int64_t> unit_price_idr;
    std::int32_t discount_bps = 0;
    std::optional<std::int64_t> line_total_idr;
};

/// What PlaceOrder would have decided from the state just before the order's OrderPlaced.
struct DerivedOrder {
    std::int64_t as_of_position = 0;  // placed_position − 1.
    bool partner_known = false;       // False: nothing below but lines/sku/qty is meaningful.
    std::string tier;
    std::string region;
    std::int32_t discount_bps = 0;
    std::int32_t loyalty_multiplier_hundredths = 0;
    std::int64_t config_position = 0;
    std::vector<DerivedLine> lines;
    std::int64_t subtotal_idr = 0;  // Of the lines that could be priced.
    std::int64_t loyalty_points = 0;
    std::int64_t min_order_idr = 0;
    std::int64_t credit_limit_idr = 0;
    std::int64_t erp_debt_idr = 0;
    std::int64_t open_orders_total_idr = 0;
    std::int64_t available_credit_idr = 0;
    std::string credit_decision;  // "placed" or "credit_hold".
};

/// The audit of one order: its full history and whether its recorded price, loyalty points
/// and credit decision match a re-derivation from the config and state as of its position.
struct AuditReport {
    std::string order_id;
    std::string partner_id;
    std::string status;  // Now, from the order's own events.
    std::int64_t placed_position = 0;
    std::vector<AuditEvent> events;  // The order's stream, oldest first.
    DerivedOrder derived;
    bool consistent = true;  // differences.empty().
    std::vector<AuditDifference> differences;
};

/// Audits order `order_id` (the id without the "order-" prefix): 404 not_found when the log
/// has no OrderPlaced for it. Folds the log up to just before the order (large batches);
/// throws StoreError on I/O failure and CorruptEvent on an unreadable event.
[[nodiscard]] Result<AuditReport, FinanceError> audit_order(EventStore& store,
                                                            std::string_view order_id);

/// `{"order_id","partner_id","status","placed_position","consistent","differences":[{"field",
/// "recorded","derived"}],"derived":{…},"events":[{"global_position","stream_version","type",
/// "schema_version","recorded_at","actor","on_behalf_of","trace_id","data"}]}`.
[[nodiscard]] std::string to_json(const AuditReport& report);

}  // namespace oe::app
