// Finance audit and point-in-time replay (compiled for SQLite and PostgreSQL): a replay is the
// read model as it stood at that position, row for row what the live projection wrote then; an
// audit re-derives an order's price and credit decision from the config of its time and names
// every field a tampered event gets wrong.

#include <algorithm>
#include <chrono>
#include <thread>

#include <doctest/doctest.h>

#include <oe/app/demo.hpp>
#include <oe/app/finance.hpp>
#include <oe/commands/command_service.hpp>
#include <oe/events/events.hpp>
#include <oe/kernel/time.hpp>
#include <oe/projections/order_lines.hpp>
#include <oe/projections/runner.hpp>

#include "support/test_database.hpp"

using namespace oe;
using namespace oe::commands;
using namespace oe::app;
using oe::test::TestDatabase;

namespace {

#if defined(OE_TEST_BACKEND_POSTGRESQL)
constexpr auto backend = oe::test::Backend::postgresql;
#else
constexpr auto backend = oe::test::Backend::sqlite;
#endif

// 2026-11-26T00:00:00Z and friends: fixed clocks for command inputs, so two stores given the
// same commands hold the same data.
constexpr std::int64_t day0_us = 1'795'651'200'000'000;
constexpr std::int64_t hour_us = 3'600'000'000;

EventMetadata admin() {
    EventMetadata m;
    m.actor = "admin-7";
    m.trace_id = "trace-admin";
    return m;
}

template <typename Command>
Outcome ok(CommandService& service, const Command& command, const EventMetadata& m = admin()) {
    auto result = service.execute(command, m);
    REQUIRE_MESSAGE(result.ok(), (result.ok() ? "" : result.error().message));
    return std::move(result).value();
}

/// A small catalogue: a GOLD partner with 3,000,000 credit, two warehouses, stock.
void seed(CommandService& s) {
    ok(s, RegisterWarehouse{"WH-JKT", {{"ID-JK", 24}}});
    ok(s, RegisterWarehouse{"WH-BDG", {{"ID-JK", 48}, {"ID-JB", 24}}});
    ok(s, RegisterProduct{"SERUM-30", "Serum \"Glow\", 30ml", 100'001, 5});
    ok(s, RegisterProduct{"TONER-100", "Toner 100ml", 50'000, 0});
    ok(s, RegisterPartner{"P-1", "Toko Satu", "GOLD", "ID-JK", 3'000'000});
    ok(s, RegisterPartner{"P-2", "Toko Dua", "BRONZE", "ID-JB", 1'000'000});
    ok(s, ChangeSystemConfig{"order.min_threshold_idr", std::int64_t{0}, day0_us});
    ok(s, RecordStockLevels{day0_us,
                            {{"SERUM-30", "WH-JKT", 100},
                             {"TONER-100", "WH-JKT", 40},
                             {"SERUM-30", "WH-BDG", 10},
                             {"TONER-100", "WH-BDG", 500}}});
}

PlaceOrder order(std::string id, std::string partner, std::vector<PlaceOrderLine> lines,
                 std::int64_t at_us = day0_us + hour_us) {
    return PlaceOrder{std::move(id), std::move(partner), std::move(lines), "", at_us};
}

/// A history that touches every column of the four models: orders placed, held, released,
/// cancelled, sent, accepted and rejected by the ERP; a debt sync, a new stock snapshot, a
/// price change, a tier change and a partner's tier change. Fixed inputs, so it is the same
/// on every store.
void rich_history(CommandService& s) {
    seed(s);
    ok(s, order("O-1", "P-1", {{"SERUM-30", 10}}));
    ok(s, order("O-2", "P-1", {{"SERUM-30", 2}, {"TONER-100", 3}}));
    ok(s, order("O-3", "P-2", {{"TONER-100", 30}}));  // 1,500,000 > 1,000,000: held.
    ok(s, order("O-4", "P-2", {{"TONER-100", 1}}));   // Routed to WH-BDG.
    ok(s, MarkOrderSentToErp{"O-1"});
    ok(s, RecordErpAcceptance{"O-1", "ERP-0001"});
    ok(s, MarkOrderSentToErp{"O-2"});
    ok(s, RecordErpRejection{"O-2", "blocked customer"});
    ok(s, CancelOrder{"O-4"});
    ok(s, SetCreditLimit{"P-2", 2'000'000});
    ok(s, ReleaseCreditHold{"O-3"});
    ok(s, RecordPartnerDebt{"P-1", 250'000, day0_us + 2 * hour_us});
    ok(s, ChangeProductPrice{"TONER-100", 55'000});
    ok(s, ChangeTierConfig{"GOLD", 2'000, "1.75", day0_us + 3 * hour_us});
    ok(s, ChangePartnerTier{"P-2", "SILVER"});
    EventMetadata agent = admin();
    agent.actor = "agent-9";
    agent.on_behalf_of = "P-1";
    ok(s, order("O-5", "P-1", {{"TONER-100", 4}}, day0_us + 4 * hour_us), agent);
    ok(s, RecordStockLevels{day0_us + 5 * hour_us, {{"SERUM-30", "WH-JKT", 90}}});
}

ReplayTable must_replay(EventStore& store, const AsOf& as_of, ReplayModel model) {
    auto table = replay(store, as_of, model, now_us());
    REQUIRE_MESSAGE(table.ok(), (table.ok() ? "" : table.error().message));
    return std::move(table).value();
}

FinanceError replay_error(EventStore& store, const AsOf& as_of, std::int64_t now = now_us()) {
    auto table = replay(store, as_of, ReplayModel::credit, now);
    REQUIRE_FALSE(table.ok());
    return table.error();
}

/// The value of `column` in the row whose first column is `key`.
Cell cell(const ReplayTable& table, std::string_view key, std::string_view column) {
    const auto c = std::find(table.columns.begin(), table.columns.end(), column);
    REQUIRE(c != table.columns.end());
    for (const auto& row : table.rows) {
        if (cell_text(row.front()) == std::string(key)) {
            return row[static_cast<std::size_t>(c - table.columns.begin())];
        }
    }
    FAIL("no row " << key);
    return nullptr;
}

/// Rows as text, sorted, for comparing with the live table.
std::vector<SqlRow> sorted_text(const ReplayTable& table) {
    std::vector<SqlRow> rows;
    for (const auto& row : table.rows) {
        SqlRow text;
        for (const auto& value : row) {
            text.push_back(cell_text(value));
        }
        rows.push_back(std::move(text));
    }
    std::sort(rows.begin(), rows.end());
    return rows;
}

std::string table_of(ReplayModel model) {
    return "rm_" + std::string(to_string(model));
}

/// The live read model's rows, sorted in C++ (collations differ between the backends).
std::vector<SqlRow> live_rows(EventStore& store, const ReplayTable& shape) {
    std::string columns;
    for (const auto& c : shape.columns) {
        columns += (columns.empty() ? "" : ", ") + c;
    }
    auto rows = store.query("SELECT " + columns + " FROM " + table_of(shape.model));
    // rm_orders keeps the lines positionally; a replay shows the order view's form.
    const auto lines = std::find(shape.columns.begin(), shape.columns.end(), "lines");
    if (shape.model == ReplayModel::orders && lines != shape.columns.end()) {
        const auto at = static_cast<std::size_t>(lines - shape.columns.begin());
        for (auto& row : rows) {
            row[at] = projections::order_lines_view(row[at].value());
        }
    }
    std::sort(rows.begin(), rows.end());
    return rows;
}

constexpr ReplayModel all_models[] = {ReplayModel::credit, ReplayModel::stock, ReplayModel::pricing,
                                      ReplayModel::orders};

std::int64_t recorded_at(EventStore& store, std::int64_t position) {
    const auto events = store.read_all(position - 1, 1);
    REQUIRE(events.size() == 1);
    return events.front().recorded_at_us;
}

/// Lets the clock move on, so the next commit has a later recorded_at than the last.
void tick() {
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
}

}  // namespace

TEST_SUITE("finance") {
    TEST_CASE("as_of: a position is digits, an instant is ISO 8601 UTC, anything else is 400") {
        CHECK(parse_as_of("123").value() == AsOf::at_position(123));
        CHECK(parse_as_of("0").value() == AsOf::at_position(0));
        CHECK(parse_as_of("2026-11-26T00:00:00Z").value() == AsOf::at_instant(day0_us));
        CHECK(parse_as_of("2026-11-26T10:00:00.25Z").value() ==
              AsOf::at_instant(day0_us + 10 * hour_us + 250'000));
        CHECK(parse_as_of("2026-11-26T00:00:00+00:00").value() == AsOf::at_instant(day0_us));
        for (const char* bad :
             {"", "-5", "+5", "12a", " 12", "2026-11-26T10:00:00+07:00", "2026-13-01T00:00:00Z",
              "2026-11-26T24:00:00Z", "yesterday", "1234567890123456789"}) {
            const auto parsed = parse_as_of(bad);
            REQUIRE_MESSAGE(!parsed.ok(), bad);
            CHECK(parsed.error().http_status == 400);
            CHECK(parsed.error().code == "invalid_request");
            CHECK(parsed.error().message.find("ISO 8601") != std::string::npos);
        }
    }

    TEST_CASE("model and format names: the four read models, csv or json") {
        CHECK(parse_replay_model("credit").value() == ReplayModel::credit);
        CHECK(parse_replay_model("stock").value() == ReplayModel::stock);
        CHECK(parse_replay_model("pricing").value() == ReplayModel::pricing);
        CHECK(parse_replay_model("orders").value() == ReplayModel::orders);
        for (const char* bad : {"", "Credit", "ledger", "system_config", "partners"}) {
            const auto parsed = parse_replay_model(bad);
            REQUIRE_FALSE(parsed.ok());
            CHECK(parsed.error() ==
                  FinanceError{400, "invalid_request",
                               "model must be one of credit, stock, pricing, orders"});
        }
        CHECK(parse_replay_format("csv").value() == ReplayFormat::csv);
        CHECK(parse_replay_format("json").value() == ReplayFormat::json);
        CHECK(parse_replay_format("xlsx").error().code == "invalid_request");
    }

    TEST_CASE("CSV is RFC 4180: header, quotes doubled, CRLF, NULL empty, integers plain") {
        ReplayTable table;
        table.model = ReplayModel::pricing;
        table.columns = {"name", "amount", "note", "when"};
        table.rows = {{std::string("Serum \"Glow\", 30ml"), std::int64_t{-1'500'000},
                       std::string("two\nlines"), nullptr},
                      {std::string("plain"), std::int64_t{0}, JsonText{"[{\"a\":1}]"},
                       std::string("2026-11-26T00:00:00.000000Z")}};
        CHECK(to_csv(table) ==
              "name,amount,note,when\r\n"
              "\"Serum \"\"Glow\"\", 30ml\",-1500000,\"two\nlines\",\r\n"
              "plain,0,\"[{\"\"a\"\":1}]\",2026-11-26T00:00:00.000000Z\r\n");
        table.as_of_position = 7;
        CHECK(
            to_json(table) ==
            R"({"model":"pricing","as_of":null,"as_of_position":7,"rows":[)"
            R"({"name":"Serum \"Glow\", 30ml","amount":-1500000,"note":"two\nlines","when":null},)"
            R"({"name":"plain","amount":0,"note":[{"a":1}],"when":"2026-11-26T00:00:00.000000Z"}]})");
    }

    TEST_CASE("replay credit: before an order the old open total, after it the new one") {
        TestDatabase db(backend);
        auto store = db.open();
        CommandService s(*store);
        seed(s);
        const auto before = store->head_position();
        tick();
        ok(s, order("O-1", "P-1", {{"SERUM-30", 10}}));  // GOLD: 90,001 × 10.
        const auto after = store->head_position();
        tick();
        ok(s, RecordPartnerDebt{"P-1", 400'000, day0_us + 2 * hour_us});

        const auto old_credit = must_replay(*store, AsOf::at_position(before), ReplayModel::credit);
        CHECK(old_credit.as_of_position == before);
        CHECK(old_credit.columns == std::vector<std::string>{"partner_id", "credit_limit",
                                                             "erp_debt", "open_orders_total",
                                                             "available_credit", "debt_synced_at"});
        CHECK(cell(old_credit, "P-1", "open_orders_total") == Cell{std::int64_t{0}});
        CHECK(cell(old_credit, "P-1", "available_credit") == Cell{std::int64_t{3'000'000}});
        CHECK(cell(old_credit, "P-1", "debt_synced_at") == Cell{nullptr});

        const auto new_credit = must_replay(*store, AsOf::at_position(after), ReplayModel::credit);
        CHECK(cell(new_credit, "P-1", "open_orders_total") == Cell{std::int64_t{900'010}});
        CHECK(cell(new_credit, "P-1", "available_credit") == Cell{std::int64_t{2'099'990}});
        CHECK(cell(new_credit, "P-2", "available_credit") == Cell{std::int64_t{1'000'000}});

        const auto head =
            must_replay(*store, AsOf::at_position(store->head_position()), ReplayModel::credit);
        CHECK(cell(head, "P-1", "erp_debt") == Cell{std::int64_t{400'000}});
        CHECK(cell(head, "P-1", "available_credit") == Cell{std::int64_t{1'699'990}});
        CHECK(cell(head, "P-1", "debt_synced_at") ==
              Cell{std::string("2026-11-26T02:00:00.000000Z")});

        // An instant means every event recorded at or before it: the order's own instant
        // includes it, a microsecond earlier does not.
        const auto placed_at = recorded_at(*store, after);
        const auto at_order = must_replay(*store, AsOf::at_instant(placed_at), ReplayModel::credit);
        CHECK(at_order.as_of_position == after);
        CHECK(at_order.as_of_us == placed_at);
        CHECK(cell(at_order, "P-1", "open_orders_total") == Cell{std::int64_t{900'010}});
        const auto just_before =
            must_replay(*store, AsOf::at_instant(placed_at - 1), ReplayModel::credit);
        CHECK(just_before.as_of_position == before);
        CHECK(cell(just_before, "P-1", "open_orders_total") == Cell{std::int64_t{0}});
        CHECK(to_json(just_before)
                  .starts_with(R"({"model":"credit","as_of":")" + format_iso8601_us(placed_at - 1) +
                               R"(","as_of_position":)" + std::to_string(before) +
                               R"(,"rows":[{"partner_id":"P-1",)"
                               R"("credit_limit":3000000,"erp_debt":0,"open_orders_total":0,)"
                               R"("available_credit":3000000,"debt_synced_at":null})"));
    }

    TEST_CASE("replay refuses the future, before the first event, position 0, beyond the head") {
        TestDatabase db(backend);
        auto store = db.open();
        const auto empty = replay_error(*store, AsOf::at_position(1));
        CHECK(empty.http_status == 400);
        CHECK(empty.message == "the event log is empty: there is nothing to replay");

        CommandService s(*store);
        seed(s);
        const auto head = store->head_position();
        const auto first_at = recorded_at(*store, 1);
        const auto now = now_us();

        const auto future = replay_error(*store, AsOf::at_instant(now + hour_us), now);
        CHECK(future.code == "invalid_request");
        CHECK(future.message == "as_of " + format_iso8601_us(now + hour_us) +
                                    " is in the future (now is " + format_iso8601_us(now) + ")");

        const auto early = replay_error(*store, AsOf::at_instant(first_at - 1));
        CHECK(early.code == "invalid_request");
        CHECK(early.message == "as_of " + format_iso8601_us(first_at - 1) +
                                   " is before the first event (recorded at " +
                                   format_iso8601_us(first_at) + ")");

        CHECK(replay_error(*store, AsOf::at_position(0)).message ==
              "as_of position must be >= 1 (positions start at 1)");
        CHECK(replay_error(*store, AsOf::at_position(-3)).code == "invalid_request");
        CHECK(replay_error(*store, AsOf::at_position(head + 1)).message ==
              "as_of position " + std::to_string(head + 1) + " is beyond the head of the log (" +
                  std::to_string(head) + ")");

        // The edges themselves are fine.
        CHECK(must_replay(*store, AsOf::at_position(1), ReplayModel::credit).rows.empty());
        CHECK(must_replay(*store, AsOf::at_position(head), ReplayModel::credit).rows.size() == 2);
        CHECK(must_replay(*store, AsOf::at_instant(first_at), ReplayModel::stock).as_of_position >=
              1);
        CHECK(must_replay(*store, AsOf::at_instant(now), ReplayModel::credit).as_of_position ==
              head);
    }

    TEST_CASE("replay at the head equals the live read models, row for row") {
        TestDatabase db(backend);
        auto store = db.open();
        CommandService s(*store);
        SUBCASE("the rich history") {
            rich_history(s);
        }
        SUBCASE("the demo data set with orders, a hold, ERP outcomes and a tier change") {
            load_demo_data(s);
            ok(s, order("O-D1", "P-003", {{"SRM-VITC-30", 20}, {"LIP-TINT-01", 12}}));
            ok(s, order("O-D2", "P-004", {{"CUS-BB-30", 40}, {"SNS-SPF50-50", 100}}));
            ok(s, order("O-D3", "P-007", {{"SRM-RETI-15", 15}}));  // Over 2,500,000: held.
            ok(s, order("O-D4", "P-002", {{"TNR-ROSE-100", 10}}));
            ok(s, MarkOrderSentToErp{"O-D1"});
            ok(s, RecordErpAcceptance{"O-D1", "SO-1"});
            ok(s, MarkOrderSentToErp{"O-D2"});
            ok(s, RecordErpRejection{"O-D2", "credit block"});
            ok(s, ChangeTierConfig{"SILVER", 700, "1.40", day0_us});
            ok(s, order("O-D5", "P-006", {{"MSK-SHEET-5", 30}}));
            ok(s, CancelOrder{"O-D5"});
            ok(s, RecordPartnerDebt{"P-003", 1'000'000, day0_us});
        }
        projections::ProjectionRunner runner(*store, projections::make_read_models());
        const auto head = runner.catch_up();
        REQUIRE(head == store->head_position());
        for (const auto model : all_models) {
            const auto table = must_replay(*store, AsOf::at_position(head), model);
            CHECK(table.as_of_position == head);
            CHECK_MESSAGE(!table.rows.empty(), to_string(model));
            const auto live = live_rows(*store, table);
            CHECK_MESSAGE(live.size() == table.rows.size(), to_string(model));
            CHECK_MESSAGE(live == sorted_text(table), to_string(model));
        }
    }

    TEST_CASE("replay at an earlier position equals the live read models as they were then") {
        TestDatabase db(backend);
        auto store = db.open();
        CommandService s(*store);
        seed(s);
        ok(s, order("O-1", "P-1", {{"SERUM-30", 10}}));
        ok(s, order("O-3", "P-2", {{"TONER-100", 30}}));  // Held.
        projections::ProjectionRunner runner(*store, projections::make_read_models());
        const auto then = runner.catch_up();
        std::vector<std::vector<SqlRow>> live_then;
        for (const auto model : all_models) {
            live_then.push_back(
                live_rows(*store, must_replay(*store, AsOf::at_position(then), model)));
        }
        // Everything after changes every model.
        ok(s, MarkOrderSentToErp{"O-1"});
        ok(s, RecordErpAcceptance{"O-1", "ERP-1"});
        ok(s, ReleaseCreditHold{"O-3"});
        ok(s, ChangeTierConfig{"GOLD", 2'500, "3.00", day0_us});
        ok(s, RecordStockLevels{day0_us + hour_us, {{"SERUM-30", "WH-JKT", 7}}});
        ok(s, order("O-9", "P-1", {{"TONER-100", 2}}));
        runner.catch_up();
        for (std::size_t i = 0; i < std::size(all_models); ++i) {
            const auto model = all_models[i];
            const auto at_then = must_replay(*store, AsOf::at_position(then), model);
            CHECK_MESSAGE(sorted_text(at_then) == live_then[i], to_string(model));
            const auto now = must_replay(*store, AsOf::at_position(store->head_position()), model);
            CHECK_MESSAGE(sorted_text(now) != live_then[i], to_string(model));
            CHECK_MESSAGE(sorted_text(now) == live_rows(*store, now), to_string(model));
        }
    }

    TEST_CASE("replay output is deterministic and sorted by key; CSV quotes a product name") {
        TestDatabase db(backend);
        auto store = db.open();
        CommandService s(*store);
        rich_history(s);
        const auto head = store->head_position();
        const auto instant = recorded_at(*store, head - 3);
        for (const auto model : all_models) {
            for (const auto as_of : {AsOf::at_position(head), AsOf::at_instant(instant)}) {
                const auto a = must_replay(*store, as_of, model);
                const auto b = must_replay(*store, as_of, model);
                CHECK(to_json(a) == to_json(b));
                CHECK(to_csv(a) == to_csv(b));
            }
        }
        const auto pricing = must_replay(*store, AsOf::at_position(head), ReplayModel::pricing);
        const auto csv = to_csv(pricing);
        CHECK(csv ==
              "tier,sku,name,base_price,unit_price,discount_bps,loyalty_multiplier\r\n"
              "BRONZE,SERUM-30,\"Serum \"\"Glow\"\", 30ml\",100001,100001,0,1.00\r\n"
              "BRONZE,TONER-100,Toner 100ml,55000,55000,0,1.00\r\n"
              "SILVER,SERUM-30,\"Serum \"\"Glow\"\", 30ml\",100001,95001,500,1.25\r\n"
              "SILVER,TONER-100,Toner 100ml,55000,52250,500,1.25\r\n"
              "GOLD,SERUM-30,\"Serum \"\"Glow\"\", 30ml\",100001,80001,2000,1.75\r\n"
              "GOLD,TONER-100,Toner 100ml,55000,44000,2000,1.75\r\n"
              "PLATINUM,SERUM-30,\"Serum \"\"Glow\"\", 30ml\",100001,85001,1500,2.00\r\n"
              "PLATINUM,TONER-100,Toner 100ml,55000,46750,1500,2.00\r\n");

        const auto orders = must_replay(*store, AsOf::at_position(head), ReplayModel::orders);
        std::vector<std::string> ids;
        for (const auto& row : orders.rows) {
            ids.push_back(*cell_text(row.front()));
        }
        CHECK(ids == std::vector<std::string>{"O-1", "O-2", "O-3", "O-4", "O-5"});
        CHECK(cell(orders, "O-1", "status") == Cell{std::string("erp_accepted")});
        CHECK(cell(orders, "O-1", "erp_order_ref") == Cell{std::string("ERP-0001")});
        CHECK(cell(orders, "O-2", "status") == Cell{std::string("erp_rejected")});
        CHECK(cell(orders, "O-3", "status") == Cell{std::string("placed")});
        CHECK(cell(orders, "O-4", "status") == Cell{std::string("cancelled")});
        CHECK(cell(orders, "O-5", "on_behalf_of") == Cell{std::string("P-1")});
        CHECK(cell(orders, "O-5", "placed_by") == Cell{std::string("agent-9")});
        // GOLD at 20 % since the tier change: 55,000 → 44,000 × 4.
        CHECK(cell(orders, "O-5", "lines") ==
              Cell{JsonText{R"([{"sku":"TONER-100","qty":4,"base_price":55000,)"
                            R"("unit_price":44000,"discount_bps":2000,"line_total":176000}])"}});
        CHECK(to_json(orders).find(R"("lines":[{"sku":"TONER-100","qty":4,)") != std::string::npos);

        const auto stock = must_replay(*store, AsOf::at_position(head), ReplayModel::stock);
        std::vector<std::string> keys;
        for (const auto& row : stock.rows) {
            keys.push_back(*cell_text(row[0]) + "@" + *cell_text(row[1]));
        }
        CHECK(keys == std::vector<std::string>{"SERUM-30@WH-BDG", "SERUM-30@WH-JKT",
                                               "TONER-100@WH-BDG", "TONER-100@WH-JKT"});
    }

    TEST_CASE("audit: a normal order is consistent and shows who did what") {
        TestDatabase db(backend);
        auto store = db.open();
        CommandService s(*store);
        seed(s);
        EventMetadata agent;
        agent.actor = "agent-9";
        agent.on_behalf_of = "P-1";
        agent.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
        ok(s, order("O-1", "P-1", {{"SERUM-30", 10}, {"TONER-100", 3}}), agent);
        ok(s, MarkOrderSentToErp{"O-1"});

        const auto audited = audit_order(*store, "O-1");
        REQUIRE(audited.ok());
        const auto& report = audited.value();
        CHECK(report.consistent);
        CHECK(report.differences.empty());
        CHECK(report.partner_id == "P-1");
        CHECK(report.status == "sent_to_erp");
        REQUIRE(report.events.size() == 3);
        CHECK(report.events[0].type == "OrderPlaced");
        CHECK(report.events[0].global_position == report.placed_position);
        CHECK(report.events[0].actor == "agent-9");
        CHECK(report.events[0].on_behalf_of == "P-1");
        CHECK(report.events[0].trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
        CHECK(report.events[1].type == "OrderRouted");
        CHECK(report.events[2].type == "OrderSentToErp");
        CHECK(report.events[2].actor == "admin-7");
        CHECK(report.events[2].on_behalf_of.empty());

        const auto& d = report.derived;
        CHECK(d.as_of_position == report.placed_position - 1);
        CHECK(d.tier == "GOLD");
        CHECK(d.discount_bps == 1'000);
        CHECK(d.loyalty_multiplier_hundredths == 150);
        REQUIRE(d.lines.size() == 2);
        CHECK(d.lines[0].unit_price_idr == 90'001);
        CHECK(d.lines[0].line_total_idr == 900'010);
        CHECK(d.lines[1].unit_price_idr == 45'000);
        CHECK(d.subtotal_idr == 1'035'010);
        CHECK(d.loyalty_points == 1'552);  // floor(1,035,010 × 150 / 100,000)
        CHECK(d.available_credit_idr == 3'000'000);
        CHECK(d.credit_decision == "placed");

        const auto json = to_json(report);
        CHECK(json.starts_with(R"({"order_id":"O-1","partner_id":"P-1","status":"sent_to_erp",)"
                               R"("placed_position":)" +
                               std::to_string(report.placed_position) +
                               R"(,"consistent":true,"differences":[],"derived":{)"));
        CHECK(json.find(R"("actor":"agent-9","on_behalf_of":"P-1",)"
                        R"("trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","data":{)") !=
              std::string::npos);
        CHECK(json.find(R"("credit":{"credit_limit":3000000,"erp_debt":0,"open_orders_total":0,)"
                        R"("available_credit":3000000},"credit_decision":"placed"})") !=
              std::string::npos);
    }

    TEST_CASE("audit: an order placed before a tier and price change audits with its own config") {
        TestDatabase db(backend);
        auto store = db.open();
        CommandService s(*store);
        seed(s);
        ok(s, order("O-OLD", "P-1", {{"SERUM-30", 3}}));  // GOLD 10 %.
        ok(s, ChangeTierConfig{"GOLD", 2'000, "2.50", day0_us});
        ok(s, ChangeProductPrice{"SERUM-30", 120'000});
        ok(s, ChangePartnerTier{"P-1", "PLATINUM"});
        ok(s, order("O-NEW", "P-1", {{"SERUM-30", 3}}));  // PLATINUM 15 % of 120,000.

        const auto old_audit = audit_order(*store, "O-OLD");
        REQUIRE(old_audit.ok());
        CHECK(old_audit.value().consistent);
        CHECK(old_audit.value().derived.tier == "GOLD");
        CHECK(old_audit.value().derived.discount_bps == 1'000);
        CHECK(old_audit.value().derived.lines[0].unit_price_idr == 90'001);
        CHECK(old_audit.value().derived.config_position == 7);  // The min-order change.

        const auto new_audit = audit_order(*store, "O-NEW");
        REQUIRE(new_audit.ok());
        CHECK(new_audit.value().consistent);
        CHECK(new_audit.value().derived.tier == "PLATINUM");
        CHECK(new_audit.value().derived.lines[0].unit_price_idr == 102'000);
        CHECK(new_audit.value().derived.open_orders_total_idr == 270'003);
    }

    TEST_CASE("audit: a credit hold is consistent, before and after its release") {
        TestDatabase db(backend);
        auto store = db.open();
        CommandService s(*store);
        seed(s);
        ok(s, RecordPartnerDebt{"P-2", 300'000, day0_us});
        ok(s, order("O-HELD", "P-2", {{"TONER-100", 15}}));  // 750,000 > 700,000 available.
        auto report = audit_order(*store, "O-HELD");
        REQUIRE(report.ok());
        CHECK(report.value().consistent);
        CHECK(report.value().status == "credit_hold");
        CHECK(report.value().derived.credit_decision == "credit_hold");
        CHECK(report.value().derived.available_credit_idr == 700'000);
        ok(s, ReleaseCreditHold{"O-HELD"});
        report = audit_order(*store, "O-HELD");
        REQUIRE(report.ok());
        CHECK(report.value().consistent);
        CHECK(report.value().status == "placed");
        CHECK(report.value().events.size() == 4);  // Placed, held, released, routed.
    }

    TEST_CASE("audit: a tampered OrderPlaced is inconsistent, field by field") {
        TestDatabase db(backend);
        auto store = db.open();
        CommandService s(*store);
        seed(s);
        ok(s, order("O-REAL", "P-1", {{"SERUM-30", 10}, {"TONER-100", 2}}));
        auto placed = std::get<events::OrderPlaced>(
            events::decode(store->read_stream("order-O-REAL").front()).value());

        // A wrong unit price, everything else as the engine would have written it.
        placed.order_id = "O-FAKE";
        placed.lines[0].unit_price_idr = 80'000;
        auto event = events::encode(placed);
        event.metadata.actor = "mallory";
        REQUIRE(store->append({{"order-O-FAKE", ExpectedVersion::no_stream(), {event}}}).ok());
        auto report = audit_order(*store, "O-FAKE");
        REQUIRE(report.ok());
        CHECK_FALSE(report.value().consistent);
        CHECK(report.value().differences ==
              std::vector<AuditDifference>{
                  {"lines[0].unit_price", std::int64_t{80'000}, std::int64_t{90'001}}});
        CHECK(report.value().events.at(0).actor == "mallory");
        CHECK(to_json(report.value())
                  .find(R"("consistent":false,"differences":[{"field":"lines[0].unit_price",)"
                        R"("recorded":80000,"derived":90001}])") != std::string::npos);

        // A generous discount carried all the way through: every derived figure disagrees, and
        // a subtotal that small would have fitted the credit it did not have.
        placed.order_id = "O-FAKE-2";
        placed.partner_id = "P-2";  // BRONZE, 1,000,000 limit.
        placed.tier = events::Tier::platinum;
        placed.region = "ID-JB";
        placed.discount_bps = 5'000;
        placed.loyalty_multiplier_hundredths = 200;
        placed.lines = {{"SERUM-30", 20, 100'001, 50'001, 5'000, 1'000'020}};
        placed.subtotal_idr = 1'000'020;
        placed.loyalty_points = 2'000;
        event = events::encode(placed);
        REQUIRE(store->append({{"order-O-FAKE-2", ExpectedVersion::no_stream(), {event}}}).ok());
        report = audit_order(*store, "O-FAKE-2");
        REQUIRE(report.ok());
        CHECK_FALSE(report.value().consistent);
        const std::vector<AuditDifference> expected{
            {"tier", std::string("PLATINUM"), std::string("BRONZE")},
            {"discount_bps", std::int64_t{5'000}, std::int64_t{0}},
            {"loyalty_multiplier", std::string("2.00"), std::string("1.00")},
            {"lines[0].discount_bps", std::int64_t{5'000}, std::int64_t{0}},
            {"lines[0].unit_price", std::int64_t{50'001}, std::int64_t{100'001}},
            {"lines[0].line_total", std::int64_t{1'000'020}, std::int64_t{2'000'020}},
            {"subtotal", std::int64_t{1'000'020}, std::int64_t{2'000'020}},
            {"loyalty_points", std::int64_t{2'000}, std::int64_t{2'000}},
            {"credit_decision", std::string("placed"), std::string("credit_hold")},
        };
        std::vector<AuditDifference> without_equal;
        for (const auto& d : expected) {
            if (d.recorded != d.derived) {
                without_equal.push_back(d);
            }
        }
        CHECK(report.value().differences == without_equal);
    }

    TEST_CASE("audit: an unknown order is 404") {
        TestDatabase db(backend);
        auto store = db.open();
        CommandService s(*store);
        seed(s);
        const auto report = audit_order(*store, "O-NOPE");
        REQUIRE_FALSE(report.ok());
        CHECK(report.error() == FinanceError{404, "not_found", "unknown order O-NOPE"});
        CHECK_FALSE(audit_order(*store, "").ok());
    }

#if defined(OE_TEST_BACKEND_POSTGRESQL)
    TEST_CASE("SQLite and PostgreSQL replay the same history to the same bytes") {
        TestDatabase sqlite_db(oe::test::Backend::sqlite);
        TestDatabase pg_db(oe::test::Backend::postgresql);
        auto sqlite = sqlite_db.open();
        auto pg = pg_db.open();
        for (auto* store : {sqlite.get(), pg.get()}) {
            CommandService s(*store);
            rich_history(s);
        }
        const auto head = sqlite->head_position();
        REQUIRE(pg->head_position() == head);
        for (std::int64_t position = 1; position <= head; ++position) {
            for (const auto model : all_models) {
                const auto a = must_replay(*sqlite, AsOf::at_position(position), model);
                const auto b = must_replay(*pg, AsOf::at_position(position), model);
                CHECK_MESSAGE(to_json(a) == to_json(b), to_string(model) << " at " << position);
                CHECK_MESSAGE(to_csv(a) == to_csv(b), to_string(model) << " at " << position);
            }
        }
        for (const char* id : {"O-1", "O-2", "O-3", "O-4", "O-5"}) {
            const auto a = audit_order(*sqlite, id);
            const auto b = audit_order(*pg, id);
            REQUIRE(a.ok());
            REQUIRE(b.ok());
            CHECK(a.value().consistent);
            CHECK(b.value().consistent);
            CHECK(a.value().placed_position == b.value().placed_position);
            CHECK(a.value().events.size() == b.value().events.size());
        }
    }
#endif
}
