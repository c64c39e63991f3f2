// Read models through the real runner on a real store (compiled for SQLite and PostgreSQL):
// each table holds what SPEC §4–§6 say, a tier change reprices, checkpoints move with rows, a
// restarted or concurrent runner never applies an event twice.

#include <thread>

#include <doctest/doctest.h>

#include <oe/auth/identity.hpp>
#include <oe/commands/command_service.hpp>
#include <oe/kernel/time.hpp>
#include <oe/projections/runner.hpp>

#include "support/test_database.hpp"

using namespace oe;
using namespace oe::commands;
using oe::test::TestDatabase;

namespace {

#if defined(OE_TEST_BACKEND_POSTGRESQL)
constexpr auto backend = oe::test::Backend::postgresql;
#else
constexpr auto backend = oe::test::Backend::sqlite;
#endif

EventMetadata admin() {
    EventMetadata m;
    m.actor = "admin-7";
    return m;
}

template <typename Command>
Outcome ok(CommandService& service, const Command& command) {
    auto result = service.execute(command, admin());
    REQUIRE_MESSAGE(result.ok(), (result.ok() ? "" : result.error().message));
    return std::move(result).value();
}

std::string order_id_of(const Outcome& outcome) {
    const auto& stream = outcome.appended.at(0).stream_id;
    return stream.substr(std::string("order-").size());
}

void seed(CommandService& s) {
    ok(s, RegisterWarehouse{"WH-JKT", {{"ID-JK", 24}}});
    ok(s, RegisterWarehouse{"WH-BDG", {{"ID-JK", 48}, {"ID-JB", 24}}});
    ok(s, RegisterProduct{"SERUM-30", "Serum 30ml", 100'001, 5});
    ok(s, RegisterProduct{"TONER-100", "Toner 100ml", 50'000, 0});
    ok(s, RegisterPartner{"P-1", "Toko Satu", "GOLD", "ID-JK", 3'000'000});
    ok(s,
       RecordStockLevels{
           now_us(),
           {{"SERUM-30", "WH-JKT", 100}, {"TONER-100", "WH-JKT", 40}, {"SERUM-30", "WH-BDG", 10}}});
}

/// Small test orders below the default 500,000 minimum.
void allow_small_orders(CommandService& s) {
    ok(s, ChangeSystemConfig{"order.min_threshold_idr", std::int64_t{0}});
}

}  // namespace

TEST_SUITE("read models") {
    TEST_CASE("every read model holds what the log says, and a tier change reprices") {
        TestDatabase db(backend);
        auto store = db.open();
        CommandService s(*store);
        seed(s);
        const auto placed = ok(s, PlaceOrder{"O-TEST-1", "P-1", {{"SERUM-30", 10}}, "first"});
        projections::ProjectionRunner runner(*store, projections::make_read_models());
        const auto head = store->head_position();
        CHECK(runner.catch_up() == head);
        for (const auto& [name, position] : runner.checkpoints()) {
            CHECK_MESSAGE(position == head, name);
            CHECK(store->load_checkpoint(name) == head);
        }

        // pricing: GOLD 10 % off 100,001 = 90,000.9 -> 90,001.
        CHECK(db.query_raw("SELECT unit_price FROM rm_pricing WHERE tier = 'GOLD' AND sku = "
                           "'SERUM-30'") == "90001");
        CHECK(db.query_raw("SELECT unit_price FROM rm_pricing WHERE tier = 'BRONZE' AND sku = "
                           "'SERUM-30'") == "100001");
        CHECK(db.query_raw("SELECT COUNT(*) FROM rm_pricing") == "8");
        // credit: 900,010 open.
        CHECK(db.query_raw("SELECT open_orders_total FROM rm_credit WHERE partner_id = 'P-1'") ==
              "900010");
        CHECK(db.query_raw("SELECT available_credit FROM rm_credit WHERE partner_id = 'P-1'") ==
              "2099990");
        // stock: 100 − 10 reserved − 5 buffer = 85.
        CHECK(db.query_raw("SELECT available FROM rm_stock WHERE sku = 'SERUM-30' AND warehouse_id "
                           "= 'WH-JKT'") == "85");
        CHECK(db.query_raw("SELECT reserved FROM rm_stock WHERE sku = 'SERUM-30' AND warehouse_id "
                           "= 'WH-JKT'") == "10");
        // orders: the view.
        CHECK(db.query_raw("SELECT status FROM rm_orders WHERE order_id = 'O-TEST-1'") == "placed");
        CHECK(db.query_raw("SELECT warehouse FROM rm_orders WHERE order_id = 'O-TEST-1'") ==
              "WH-JKT");
        CHECK(db.query_raw("SELECT placed_by FROM rm_orders WHERE order_id = 'O-TEST-1'") ==
              "admin-7");
        // The lines positionally (sku, qty, base_price, unit_price, discount_bps, line_total).
        CHECK(db.query_raw("SELECT lines FROM rm_orders WHERE order_id = 'O-TEST-1'") ==
              R"([["SERUM-30",10,100001,90001,1000,900010]])");
        // system_config: defaults at version 0.
        CHECK(db.query_raw("SELECT value FROM rm_system_config WHERE key = 'erp.max_rps'") ==
              "\"2.00\"");
        CHECK(db.query_raw("SELECT version FROM rm_system_config WHERE key = "
                           "'order.min_threshold_idr'") == "0");
        CHECK(db.query_raw("SELECT COUNT(*) FROM rm_partners") == "1");
        // The identity lookup reads the partners read model.
        const auth::PartnerDirectory directory(*store);
        const auto profile = directory.find("P-1");
        REQUIRE(profile);
        CHECK(profile->tier == events::Tier::gold);
        CHECK(profile->region == "ID-JK");
        CHECK_FALSE(directory.find("P-NOBODY"));

        // A tier change reprices GOLD only, records who and when, and versions the key.
        ok(s, ChangeTierConfig{"GOLD", 2'000, "1.50"});
        ok(s, CancelOrder{order_id_of(placed)});
        runner.catch_up();
        CHECK(db.query_raw("SELECT unit_price FROM rm_pricing WHERE tier = 'GOLD' AND sku = "
                           "'SERUM-30'") == "80001");
        CHECK(db.query_raw("SELECT unit_price FROM rm_pricing WHERE tier = 'SILVER' AND sku = "
                           "'SERUM-30'") == "95001");
        CHECK(db.query_raw(
                  "SELECT value FROM rm_system_config WHERE key = 'tier.GOLD.discount_bps'") ==
              "2000");
        CHECK(db.query_raw("SELECT version FROM rm_system_config WHERE key = "
                           "'tier.GOLD.discount_bps'") == "1");
        CHECK(db.query_raw("SELECT updated_by FROM rm_system_config WHERE key = "
                           "'tier.GOLD.discount_bps'") == "admin-7");
        CHECK(db.query_raw("SELECT version FROM rm_system_config WHERE key = "
                           "'tier.GOLD.loyalty_multiplier'") == "0");
        // The cancel freed credit and stock, and the order view says so.
        CHECK(db.query_raw("SELECT open_orders_total FROM rm_credit WHERE partner_id = 'P-1'") ==
              "0");
        CHECK(db.query_raw("SELECT available FROM rm_stock WHERE sku = 'SERUM-30' AND warehouse_id "
                           "= 'WH-JKT'") == "95");
        CHECK(db.query_raw("SELECT status FROM rm_orders WHERE order_id = 'O-TEST-1'") ==
              "cancelled");
    }

    TEST_CASE("a runner restarted from its checkpoints continues without applying twice") {
        TestDatabase db(backend);
        auto store = db.open();
        CommandService s(*store);
        seed(s);
        allow_small_orders(s);
        for (int i = 0; i < 3; ++i) {
            ok(s, PlaceOrder{"O-A-" + std::to_string(i), "P-1", {{"TONER-100", 10}}, ""});
        }
        {
            projections::ProjectionRunner first(*store, projections::make_read_models());
            first.catch_up();
        }
        ok(s, PlaceOrder{"O-B-1", "P-1", {{"TONER-100", 10}}, ""});
        projections::ProjectionRunner second(*store, projections::make_read_models());
        CHECK(second.catch_up() == store->head_position());
        // 4 × 10 reserved of 40: a double application would show 50 or more.
        CHECK(db.query_raw("SELECT reserved FROM rm_stock WHERE sku = 'TONER-100' AND warehouse_id "
                           "= 'WH-JKT'") == "40");
        CHECK(db.query_raw("SELECT COUNT(*) FROM rm_orders") == "4");
        CHECK(db.query_raw("SELECT open_orders_total FROM rm_credit WHERE partner_id = 'P-1'") ==
              "1800000");
    }

    TEST_CASE("two instances' runners on one database: each batch lands once") {
        TestDatabase db(backend);
        auto store_a = db.open();
        auto store_b = db.open();
        CommandService s(*store_a);
        seed(s);
        allow_small_orders(s);
        projections::ProjectionRunner a(*store_a, projections::make_read_models());
        projections::ProjectionRunner b(*store_b, projections::make_read_models());
        a.start();
        b.start();
        for (int i = 0; i < 20; ++i) {
            ok(s, PlaceOrder{"O-C-" + std::to_string(i), "P-1", {{"TONER-100", 2}}, ""});
        }
        const auto head = store_a->head_position();
        CHECK(a.wait_for(head, std::chrono::seconds(20)));
        CHECK(b.wait_for(head, std::chrono::seconds(20)));
        a.stop();
        b.stop();
        CHECK(db.query_raw("SELECT reserved FROM rm_stock WHERE sku = 'TONER-100' AND warehouse_id "
                           "= 'WH-JKT'") == "40");
        CHECK(db.query_raw("SELECT COUNT(*) FROM rm_orders") == "20");
        CHECK(db.query_raw("SELECT open_orders_total FROM rm_credit WHERE partner_id = 'P-1'") ==
              "1800000");
    }

}  // TEST_SUITE
