// The command layer end to end against a real store: every rule of SPEC §4–§5 through
// CommandService, and the concurrency limits (credit, stock) across two instances. Compiled
// twice: commands_sqlite_test and commands_pg_test.

#include <atomic>
#include <map>
#include <thread>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <oe/commands/command_service.hpp>
#include <oe/events/events.hpp>
#include <oe/kernel/time.hpp>
#include <oe/model/config_keys.hpp>

#include "support/test_database.hpp"

using namespace oe;
using namespace oe::commands;
using namespace oe::model;
using oe::test::TestDatabase;

namespace {

#if defined(OE_TEST_BACKEND_POSTGRESQL)
constexpr auto backend = oe::test::Backend::postgresql;
#else
constexpr auto backend = oe::test::Backend::sqlite;
#endif

EventMetadata as(std::string actor, std::string on_behalf_of = {}) {
    EventMetadata m;
    m.actor = std::move(actor);
    m.on_behalf_of = std::move(on_behalf_of);
    m.trace_id = "0af7651916cd43dd8448eb211c80319c";
    return m;
}

template <typename Command>
Outcome ok(CommandService& service, const Command& command) {
    auto result = service.execute(command, as("admin-1"));
    REQUIRE_MESSAGE(result.ok(), (result.ok() ? "" : result.error().message));
    return std::move(result).value();
}

template <typename Command>
Rejected refused(CommandService& service, const Command& command) {
    auto result = service.execute(command, as("admin-1"));
    REQUIRE_FALSE(result.ok());
    return result.error().reason;
}

/// Two warehouses, three products, partners of two tiers, stock everywhere.
void seed(CommandService& s) {
    ok(s, RegisterWarehouse{"WH-JKT", {{"ID-JK", 24}, {"ID-JB", 48}}});
    ok(s, RegisterWarehouse{"WH-BDG", {{"ID-JB", 24}, {"ID-JK", 48}}});
    ok(s, RegisterProduct{"SERUM-30", "Serum 30ml", 100'000, 5});
    ok(s, RegisterProduct{"TONER-100", "Toner 100ml", 33'333, 0});
    ok(s, RegisterProduct{"MASK-5", "Mask x5", 10'001, 0});
    ok(s, RegisterPartner{"P-GOLD", "Toko Emas", "GOLD", "ID-JK", 10'000'000});
    ok(s, RegisterPartner{"P-BRONZE", "Toko Perunggu", "BRONZE", "ID-JB", 2'000'000});
    ok(s, RecordStockLevels{now_us(),
                            {{"SERUM-30", "WH-JKT", 100},
                             {"TONER-100", "WH-JKT", 50},
                             {"MASK-5", "WH-JKT", 500},
                             {"SERUM-30", "WH-BDG", 100},
                             {"TONER-100", "WH-BDG", 50},
                             {"MASK-5", "WH-BDG", 500}}});
}

PlaceOrder order_of(std::string partner, std::vector<PlaceOrderLine> lines) {
    return PlaceOrder{CommandService::new_order_id(), std::move(partner), std::move(lines), ""};
}

events::OrderPlaced placed_event(const Outcome& outcome) {
    const auto& e = outcome.appended.at(0).events.at(0);
    auto decoded = events::decode(e.type, e.schema_version, e.data);
    REQUIRE(decoded.ok());
    return std::get<events::OrderPlaced>(decoded.value());
}

std::string second_type(const Outcome& outcome) {
    return outcome.appended.at(0).events.at(1).type;
}

}  // namespace

TEST_SUITE("commands") {
    TEST_CASE("place order: priced per tier, rounded half up, loyalty points, routed by SLA") {
        TestDatabase db(backend);
        auto store = db.open();
        CommandService s(*store);
        seed(s);
        // GOLD: 10 % off, ×1.50. MASK-5 at 10,001 → 9,000.9 → 9,001.
        const auto out = ok(s, order_of("P-GOLD", {{"SERUM-30", 4}, {"MASK-5", 20}}));
        const auto placed = placed_event(out);
        CHECK(placed.tier == events::Tier::gold);
        CHECK(placed.lines[0].unit_price_idr == 90'000);
        CHECK(placed.lines[1].unit_price_idr == 9'001);
        CHECK(placed.lines[1].line_total_idr == 180'020);
        CHECK(placed.subtotal_idr == 540'020);
        CHECK(placed.loyalty_points == 810);  // floor(540020 × 150 / 100000) = 810.03
        CHECK(placed.placed_by == "admin-1");
        CHECK(second_type(out) == "OrderRouted");
        CHECK(out.appended[0].events[1].data.find("\"WH-JKT\"") != std::string::npos);
        // Metadata travels on every event.
        CHECK(out.appended[0].events[1].metadata.trace_id == "0af7651916cd43dd8448eb211c80319c");
    }

    TEST_CASE("checks run in SPEC order and a rejection appends nothing") {
        TestDatabase db(backend);
        auto store = db.open();
        CommandService s(*store);
        seed(s);
        const auto head = store->head_position();
        CHECK(refused(s, order_of("P-GOLD", {})) == Rejected::invalid_request);
        CHECK(refused(s, order_of("P-GOLD", {{"SERUM-30", 0}})) == Rejected::invalid_request);
        CHECK(refused(s, order_of("P-GOLD", {{"SERUM-30", 100'001}})) == Rejected::invalid_request);
        CHECK(refused(s, order_of("P-GOLD", {{"SERUM-30", 1}, {"SERUM-30", 1}})) ==
              Rejected::invalid_request);
        CHECK(refused(s, order_of("P-GOLD", {{"bad sku!", 1}})) == Rejected::invalid_request);
        CHECK(refused(s, order_of("P-GOLD", std::vector<PlaceOrderLine>(201, {"SERUM-30", 1}))) ==
              Rejected::invalid_request);
        CHECK(refused(s, order_of("P-NOBODY", {{"SERUM-30", 10}})) == Rejected::unknown_partner);
        // Unknown SKU beats minimum order.
        CHECK(refused(s, order_of("P-GOLD", {{"NOPE", 1}})) == Rejected::unknown_sku);
        // 5 × 90,000 = 450,000 < 500,000.
        CHECK(refused(s, order_of("P-GOLD", {{"SERUM-30", 5}})) == Rejected::below_minimum_order);
        // Stock: 100 on hand − 5 buffer = 95 in each warehouse; 96 fits nowhere.
        CHECK(refused(s, order_of("P-GOLD", {{"SERUM-30", 96}})) == Rejected::insufficient_stock);
        CHECK(store->head_position() == head);
        ok(s, order_of("P-GOLD", {{"SERUM-30", 95}}));
    }

    TEST_CASE("minimum order: exactly the threshold passes; the threshold is config") {
        TestDatabase db(backend);
        auto store = db.open();
        CommandService s(*store);
        seed(s);
        ok(s, ChangeSystemConfig{"order.min_threshold_idr", std::int64_t{450'000}});
        ok(s, order_of("P-GOLD", {{"SERUM-30", 5}}));  // 450,000 == threshold.
        ok(s, ResetSystemConfig{"order.min_threshold_idr"});
        CHECK(refused(s, order_of("P-GOLD", {{"SERUM-30", 5}})) == Rejected::below_minimum_order);
    }

    TEST_CASE("credit: the exact limit passes, one rupiah more is held; hold reserves nothing") {
        TestDatabase db(backend);
        auto store = db.open();
        CommandService s(*store);
        seed(s);
        // BRONZE, limit 2,000,000, no debt. 20 × 100,000 = 2,000,000: exactly the limit.
        const auto first = ok(s, order_of("P-BRONZE", {{"SERUM-30", 20}}));
        CHECK(second_type(first) == "OrderRouted");
        // Nothing left: the next order is recorded on hold (201 in the API), not routed.
        const auto held = ok(s, order_of("P-BRONZE", {{"MASK-5", 50}}));
        CHECK(second_type(held) == "OrderCreditHeld");
        CHECK(held.appended[0].events[1].data.find("\"available_credit\":0") != std::string::npos);

        SUBCASE("cancelling frees the credit") {
            ok(s, CancelOrder{placed_event(first).order_id});
            CHECK(second_type(ok(s, order_of("P-BRONZE", {{"SERUM-30", 20}}))) == "OrderRouted");
        }
        SUBCASE("release is a credit override that still checks stock") {
            const auto id = placed_event(held).order_id;
            const auto released = ok(s, ReleaseCreditHold{id});
            CHECK(released.appended[0].events[0].type == "OrderCreditReleased");
            CHECK(released.appended[0].events[1].type == "OrderRouted");
            CHECK(refused(s, ReleaseCreditHold{id}) == Rejected::not_on_hold);
        }
        SUBCASE("release with no stock leaves the order on hold") {
            const auto big = ok(s, order_of("P-BRONZE", {{"TONER-100", 51}}));
            CHECK(second_type(big) == "OrderCreditHeld");
            CHECK(refused(s, ReleaseCreditHold{placed_event(big).order_id}) ==
                  Rejected::insufficient_stock);
            ok(s, CancelOrder{placed_event(big).order_id});  // A held order can be cancelled.
        }
        SUBCASE("ERP debt counts against the limit") {
            ok(s, CancelOrder{placed_event(first).order_id});
            ok(s, RecordPartnerDebt{"P-BRONZE", 1'500'000, now_us()});
            CHECK(second_type(ok(s, order_of("P-BRONZE", {{"SERUM-30", 6}}))) == "OrderCreditHeld");
            CHECK(second_type(ok(s, order_of("P-BRONZE", {{"SERUM-30", 5}}))) == "OrderRouted");
        }
    }

    TEST_CASE("cancel: allowed while placed, held or sent; refused after ERP acceptance") {
        TestDatabase db(backend);
        auto store = db.open();
        CommandService s(*store);
        seed(s);
        const auto id = placed_event(ok(s, order_of("P-GOLD", {{"SERUM-30", 10}}))).order_id;
        // The ERP projector's events (issue 5) arrive as plain appends.
        auto erp = [&](events::DomainEvent e) {
            NewEvent encoded = events::encode(e);
            REQUIRE(store
                        ->append({StreamAppend{
                            events::order_stream(id), ExpectedVersion::any(), {encoded}}})
                        .ok());
        };
        erp(events::OrderSentToErp{id});
        erp(events::OrderAcceptedByErp{id, "ERP-1"});
        CHECK(refused(s, CancelOrder{id}) == Rejected::not_cancellable);
        CHECK(refused(s, CancelOrder{"O-UNKNOWN"}) == Rejected::order_not_found);
        const auto sent = placed_event(ok(s, order_of("P-GOLD", {{"SERUM-30", 10}}))).order_id;
        NewEvent e = events::encode(events::OrderSentToErp{sent});
        REQUIRE(
            store->append({StreamAppend{events::order_stream(sent), ExpectedVersion::any(), {e}}})
                .ok());
        const auto cancelled = ok(s, CancelOrder{sent});
        CHECK(cancelled.appended[0].events[0].data.find("\"previous_status\":\"sent_to_erp\"") !=
              std::string::npos);
        CHECK(refused(s, CancelOrder{sent}) == Rejected::not_cancellable);
    }

    TEST_CASE("stock: reservations hold until the ERP snapshot reflects the accepted order") {
        TestDatabase db(backend);
        auto store = db.open();
        CommandService s(*store);
        seed(s);
        // ID-JK: WH-JKT (24 h) first. TONER: 50 there, no buffer.
        const auto id = placed_event(ok(s, order_of("P-GOLD", {{"TONER-100", 40}}))).order_id;
        auto erp = [&](events::DomainEvent e) {
            NewEvent encoded = events::encode(e);
            REQUIRE(store
                        ->append({StreamAppend{
                            events::order_stream(id), ExpectedVersion::any(), {encoded}}})
                        .ok());
        };
        erp(events::OrderSentToErp{id});
        erp(events::OrderAcceptedByErp{id, "ERP-9"});
        // Still reserved at WH-JKT: 20 more go to WH-BDG (48 h) instead.
        const auto second = ok(s, order_of("P-GOLD", {{"TONER-100", 20}}));
        CHECK(second.appended[0].events[1].data.find("WH-BDG") != std::string::npos);
        // A snapshot taken after the acceptance shows on_hand 10 at WH-JKT and releases the
        // reservation: 10 is available there again.
        ok(s, RecordStockLevels{now_us() + 1'000'000, {{"TONER-100", "WH-JKT", 10}}});
        const auto third = ok(s, order_of("P-GOLD", {{"TONER-100", 10}, {"SERUM-30", 5}}));
        CHECK(third.appended[0].events[1].data.find("WH-JKT") != std::string::npos);
    }

    TEST_CASE("config as data: validation, tier changes and resets") {
        TestDatabase db(backend);
        auto store = db.open();
        CommandService s(*store);
        seed(s);
        CHECK(refused(s, ChangeSystemConfig{"nope", std::int64_t{1}}) ==
              Rejected::unknown_config_key);
        CHECK(refused(s, ChangeSystemConfig{"stock.sync_interval_s", std::int64_t{9}}) ==
              Rejected::invalid_config_value);
        CHECK(refused(s, ChangeSystemConfig{"stock.sync_interval_s", std::string("300")}) ==
              Rejected::invalid_config_value);
        CHECK(refused(s, ChangeSystemConfig{"erp.max_rps", std::string("0.09")}) ==
              Rejected::invalid_config_value);
        CHECK(refused(s, ChangeSystemConfig{"erp.max_rps", std::string("2.5")}) ==
              Rejected::invalid_config_value);
        CHECK(refused(s, ChangeSystemConfig{"erp.max_rps", std::int64_t{2}}) ==
              Rejected::invalid_config_value);
        ok(s, ChangeSystemConfig{"erp.max_rps", std::string("100.00")});
        CHECK(refused(s, ChangeTierConfig{"GOLD", 9'001, "1.50"}) ==
              Rejected::invalid_config_value);
        CHECK(refused(s, ChangeTierConfig{"GOLD", 1'000, "10.01"}) ==
              Rejected::invalid_config_value);
        CHECK(refused(s, ChangeTierConfig{"DIAMOND", 0, "1.00"}) == Rejected::unknown_tier);
        // GOLD to 20 % off: the next order is priced with it and records the config position.
        const auto change = ok(s, ChangeTierConfig{"GOLD", 2'000, "3.00"});
        const auto placed = placed_event(ok(s, order_of("P-GOLD", {{"SERUM-30", 10}})));
        CHECK(placed.lines[0].unit_price_idr == 80'000);
        CHECK(placed.loyalty_points == 2'400);  // floor(800,000 × 300 / 100,000)
        CHECK(placed.config_position == change.append.last_position);
        // A tier key set through the generic command changes that key only.
        ok(s, ChangeSystemConfig{"tier.GOLD.loyalty_multiplier", std::string("1.50")});
        const auto again = placed_event(ok(s, order_of("P-GOLD", {{"SERUM-30", 10}})));
        CHECK(again.lines[0].unit_price_idr == 80'000);
        CHECK(again.loyalty_multiplier_hundredths == 150);
        // A tier key resets like any key: SystemConfigReset, the sibling left as it is.
        const auto reset = ok(s, ResetSystemConfig{"tier.GOLD.discount_bps"});
        REQUIRE(reset.appended.size() == 1);
        CHECK(reset.appended[0].events.at(0).type == "SystemConfigReset");
        const auto after_reset = placed_event(ok(s, order_of("P-GOLD", {{"SERUM-30", 10}})));
        CHECK(after_reset.lines[0].unit_price_idr == 90'000);
        CHECK(after_reset.loyalty_multiplier_hundredths == 150);
        CHECK(after_reset.config_position == reset.append.last_position);
        // A change to the value in force, or a reset of a key at its default, appends nothing.
        CHECK(ok(s, ChangeTierConfig{"GOLD", 1'000, "1.50"}).append.first_position == 0);
        CHECK(ok(s, ChangeSystemConfig{"tier.GOLD.discount_bps", std::int64_t{1'000}})
                  .append.first_position == 0);
        CHECK(ok(s, ResetSystemConfig{"tier.GOLD.discount_bps"}).append.first_position == 0);
        CHECK(
            ok(s, ChangeSystemConfig{"erp.max_rps", std::string("100.00")}).append.first_position ==
            0);
        CHECK(ok(s, ResetSystemConfig{"stock.sync_interval_s"}).append.first_position == 0);
    }

    TEST_CASE("admin commands: registration, duplicates and unknown references") {
        TestDatabase db(backend);
        auto store = db.open();
        CommandService s(*store);
        seed(s);
        CHECK(refused(s, RegisterPartner{"P-GOLD", "x", "GOLD", "ID-JK", 1}) ==
              Rejected::already_exists);
        CHECK(refused(s, RegisterPartner{"P-NEW", "x", "gold", "ID-JK", 1}) ==
              Rejected::unknown_tier);
        CHECK(refused(s, RegisterPartner{"P-NEW", "x", "GOLD", "ID-JK", -1}) ==
              Rejected::invalid_request);
        CHECK(refused(s, ChangePartnerTier{"P-NONE", "GOLD"}) == Rejected::unknown_partner);
        CHECK(refused(s, RegisterProduct{"SERUM-30", "x", 1, 0}) == Rejected::already_exists);
        CHECK(refused(s, RegisterProduct{"NEW", "x", -5, 0}) == Rejected::invalid_request);
        CHECK(refused(s, RecordStockLevels{now_us(), {{"NOPE", "WH-JKT", 1}}}) ==
              Rejected::unknown_sku);
        CHECK(refused(s, RecordStockLevels{now_us(), {{"SERUM-30", "WH-X", 1}}}) ==
              Rejected::unknown_warehouse);
        CHECK(refused(s, RecordPartnerDebt{"P-GOLD", -1, now_us()}) == Rejected::invalid_request);
        // PLATINUM pricing after a tier change.
        ok(s, ChangePartnerTier{"P-GOLD", "PLATINUM"});
        CHECK(placed_event(ok(s, order_of("P-GOLD", {{"SERUM-30", 10}}))).lines[0].unit_price_idr ==
              85'000);
    }

    // DuckDB's shape: many threads, two instances, an invariant checked on the log.
    TEST_CASE("concurrent orders never exceed a partner's credit nor drive stock below zero") {
        TestDatabase db(backend);
        auto store_a = db.open();
        auto store_b = db.open();
        CommandService a(*store_a);
        CommandService b(*store_b);
        ok(a, RegisterWarehouse{"WH-1", {{"ID-JK", 24}}});
        ok(a, RegisterProduct{"SKU-A", "A", 100'000, 3});
        ok(a, RegisterProduct{"SKU-B", "B", 100'000, 0});
        ok(a, RegisterPartner{"P-1", "One", "BRONZE", "ID-JK", 5'000'000});
        ok(a, RegisterPartner{"P-2", "Two", "BRONZE", "ID-JK", 1'000'000'000});
        // SKU-A: 200 available (P-2 competes for it); SKU-B: plenty (P-1's credit is the limit).
        ok(a, RecordStockLevels{now_us(), {{"SKU-A", "WH-1", 203}, {"SKU-B", "WH-1", 10'000}}});

        std::atomic<int> routed{0};
        std::atomic<int> held{0};
        std::atomic<int> no_stock{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < 8; ++t) {
            threads.emplace_back([&, t] {
                CommandService& service = t % 2 == 0 ? a : b;
                for (int i = 0; i < 12; ++i) {
                    // P-1 can afford 10 orders of 5; P-2 has credit but competes for stock.
                    auto r = service.execute(
                        t < 4 ? order_of("P-1", {{"SKU-B", 5}}) : order_of("P-2", {{"SKU-A", 5}}),
                        as("agent"));
                    if (!r.ok()) {
                        CHECK(r.error().reason == Rejected::insufficient_stock);
                        ++no_stock;
                    } else if (r.value().appended[0].events[1].type == "OrderRouted") {
                        ++routed;
                    } else {
                        ++held;
                    }
                }
            });
        }
        for (auto& t : threads) {
            t.join();
        }
        // Replay the log: exposure of P-1 and reservations at WH-1.
        std::int64_t exposure_p1 = 0;
        std::int64_t reserved = 0;
        std::map<std::string, std::string> partner_of;
        for (const auto& e : store_a->read_all(0, 100'000)) {
            auto decoded = events::decode(e);
            REQUIRE(decoded.ok());
            if (auto* p = std::get_if<events::OrderPlaced>(&decoded.value())) {
                partner_of[p->order_id] = p->partner_id;
                if (p->partner_id == "P-1") {
                    exposure_p1 += p->subtotal_idr;
                }
            } else if (auto* h = std::get_if<events::OrderCreditHeld>(&decoded.value())) {
                if (h->partner_id == "P-1") {
                    exposure_p1 -= h->subtotal_idr;
                }
            } else if (auto* r = std::get_if<events::OrderRouted>(&decoded.value())) {
                if (r->lines.at(0).sku == "SKU-A") {
                    reserved += r->lines.at(0).qty;
                }
            }
        }
        CHECK(exposure_p1 <= 5'000'000);
        CHECK(exposure_p1 == 5'000'000);  // Exactly ten orders fit, and the limit was reached.
        CHECK(reserved <= 200);
        CHECK(reserved == 200);       // P-2's 48 orders × 5 want 240: stock ran out exactly.
        CHECK(routed.load() == 50);   // 10 for P-1 (credit), 40 for P-2 (stock).
        CHECK(held.load() == 38);     // P-1's orders beyond its ten.
        CHECK(no_stock.load() == 8);  // P-2's orders beyond the stock.
        MESSAGE("routed " << routed.load() << ", held " << held.load() << ", out of stock "
                          << no_stock.load());
    }

}  // TEST_SUITE
