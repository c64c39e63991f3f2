// The read API (SPEC §6) against a real store, real commands and real read models: auth,
// roles, masquerade, BOLA, and the exact bodies. Compiled for SQLite and PostgreSQL.

#include <doctest/doctest.h>

#include <oe/auth/jwt.hpp>
#include <oe/commands/command_service.hpp>
#include <oe/http/api.hpp>
#include <oe/kernel/metrics.hpp>
#include <oe/kernel/time.hpp>
#include <oe/projections/runner.hpp>

#include "support/test_database.hpp"

using namespace oe;

namespace {

#if defined(OE_TEST_BACKEND_POSTGRESQL)
constexpr auto backend = oe::test::Backend::postgresql;
#else
constexpr auto backend = oe::test::Backend::sqlite;
#endif

constexpr const char* secret = "api-test-secret";

std::string token(auth::Role role, std::string partner = {}, std::vector<std::string> partners = {},
                  std::int64_t ttl_s = 600) {
    return auth::mint_token(auth::Principal{"u-" + std::string(auth::to_string(role)), role,
                                            std::move(partner), std::move(partners)},
                            secret, now_us() / 1'000'000 + ttl_s);
}

struct World {
    test::TestDatabase db{backend};
    std::unique_ptr<EventStore> store = db.open();
    commands::CommandService commands{*store};
    metrics::Registry registry;
    http::Api api{{*store, registry, secret}};

    template <typename Command>
    commands::Outcome run(const Command& c) {
        auto r = commands.execute(c, EventMetadata{"admin", "", "", "", "", ""});
        REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
        return std::move(r).value();
    }

    World() {
        using namespace commands;
        run(RegisterWarehouse{"WH-JKT", {{"ID-JK", 24}}});
        run(RegisterWarehouse{"WH-SBY", {{"ID-JI", 24}, {"ID-JK", 72}}});
        run(RegisterWarehouse{"WH-BALI", {{"ID-BA", 24}}});
        run(RegisterProduct{"SERUM", "Serum", 100'001, 5});
        run(RegisterProduct{"TONER", "Toner", 50'000, 0});
        run(RegisterPartner{"P-1", "One", "GOLD", "ID-JK", 3'000'000});
        run(RegisterPartner{"P-2", "Two", "BRONZE", "ID-JI", 1'000'000});
        run(RecordStockLevels{now_us(),
                              {{"SERUM", "WH-JKT", 20},
                               {"SERUM", "WH-SBY", 3},
                               {"SERUM", "WH-BALI", 500},
                               {"TONER", "WH-JKT", 7},
                               {"TONER", "WH-SBY", 20}}});
        run(PlaceOrder{"O-P1-A", "P-1", {{"SERUM", 10}}, "first"});
        run(PlaceOrder{"O-P2-A", "P-2", {{"TONER", 0 + 10}}, ""});
    }

    http::Response get(const std::string& target, const std::string& bearer,
                       std::optional<std::string> on_behalf_of = {}) {
        projections::ProjectionRunner runner(*store, projections::make_read_models());
        runner.catch_up();
        http::Request r;
        r.method = "GET";
        r.target = target;
        if (!bearer.empty()) {
            r.headers.emplace_back("Authorization", "Bearer " + bearer);
        }
        if (on_behalf_of) {
            r.headers.emplace_back("X-On-Behalf-Of", *on_behalf_of);
        }
        return api.handle(r);
    }
};

}  // namespace

TEST_SUITE("api") {
    TEST_CASE("catalog and credit for the caller's partner, tier and region") {
        World w;
        const auto catalog = w.get("/api/catalog", token(auth::Role::reseller, "P-1"));
        CHECK(catalog.status == 200);
        // GOLD: 100,001 → 90,001. SERUM available in ID-JK: WH-JKT 20 − 10 reserved − 5 buffer = 5,
        // WH-SBY max(0, 3 − 5) = 0; WH-BALI does not serve ID-JK. TONER: 7 + (20 − 10 for P-2).
        CHECK(
            catalog.body ==
            R"([{"sku":"SERUM","name":"Serum","base_price":100001,"unit_price":90001,"available":5},)"
            R"({"sku":"TONER","name":"Toner","base_price":50000,"unit_price":45000,"available":17}])");
        const auto credit =
            w.get("/api/credit", token(auth::Role::agent, "", {"P-1", "P-2"}), "P-1");
        CHECK(credit.status == 200);
        CHECK(credit.body == R"({"partner_id":"P-1","credit_limit":3000000,"erp_debt":0,)"
                             R"("open_orders_total":900010,"available_credit":2099990,)"
                             R"("debt_synced_at":null})");
    }

    TEST_CASE("orders: own orders only; another partner's order is 404 like an unknown one") {
        World w;
        const auto mine = w.get("/api/orders/O-P1-A", token(auth::Role::reseller, "P-1"));
        CHECK(mine.status == 200);
        CHECK(
            mine.body.find(R"("order_id":"O-P1-A","partner_id":"P-1","status":"placed",)"
                           R"("tier":"GOLD","lines":[{"sku":"SERUM","qty":10,"base_price":100001,)"
                           R"("unit_price":90001,"discount_bps":1000,"line_total":900010}],)"
                           R"("subtotal":900010,"loyalty_points":1350,"warehouse":"WH-JKT",)") !=
            std::string::npos);
        const auto theirs = w.get("/api/orders/O-P2-A", token(auth::Role::reseller, "P-1"));
        const auto unknown = w.get("/api/orders/O-NOPE", token(auth::Role::reseller, "P-1"));
        CHECK(theirs.status == 404);
        CHECK(theirs.body == unknown.body);
        CHECK(unknown.status == 404);
        CHECK(w.get("/api/orders/O-P2-A", token(auth::Role::agent, "", {"P-1"})).status == 404);
        CHECK(w.get("/api/orders/O-P2-A", token(auth::Role::agent, "", {"P-2"})).status == 200);
        CHECK(w.get("/api/orders/O-P2-A", token(auth::Role::finance)).status == 200);
        CHECK(w.get("/api/orders/O-P2-A", token(auth::Role::admin)).status == 200);
        CHECK(w.get("/api/orders/bad id!", token(auth::Role::admin)).status == 404);

        const auto list = w.get("/api/orders?limit=1", token(auth::Role::reseller, "P-1"));
        CHECK(list.status == 200);
        CHECK(list.body.find(R"("order_id":"O-P1-A")") != std::string::npos);
        CHECK(list.body.find("O-P2-A") == std::string::npos);
        CHECK(list.body.ends_with(R"(],"next_after":null})"));
        CHECK(w.get("/api/orders?status=cancelled", token(auth::Role::reseller, "P-1")).body ==
              R"({"orders":[],"next_after":null})");
        CHECK(w.get("/api/orders?limit=0", token(auth::Role::reseller, "P-1")).status == 400);
        CHECK(w.get("/api/orders?limit=abc", token(auth::Role::reseller, "P-1")).status == 400);
        CHECK(w.get("/api/orders?status=weird", token(auth::Role::reseller, "P-1")).status == 400);
        CHECK(w.get("/api/orders?price=1", token(auth::Role::reseller, "P-1")).status == 400);
    }

    TEST_CASE("authentication, roles and masquerade errors have the SPEC codes") {
        World w;
        auto code_of = [](const http::Response& r) {
            const auto at = r.body.find(R"("code":")");
            return r.body.substr(at + 8, r.body.find('"', at + 8) - at - 8);
        };
        const auto none = w.get("/api/catalog", "");
        CHECK(none.status == 401);
        CHECK(code_of(none) == "unauthenticated");
        CHECK(w.get("/api/catalog", "garbage").status == 401);
        CHECK(w.get("/api/catalog", token(auth::Role::reseller, "P-1", {}, -10)).status == 401);
        const auto admin_catalog = w.get("/api/catalog", token(auth::Role::admin));
        CHECK(admin_catalog.status == 403);
        CHECK(code_of(admin_catalog) == "forbidden");
        // An agent must say for whom, and only for its own partners.
        CHECK(w.get("/api/credit", token(auth::Role::agent, "", {"P-1"})).status == 400);
        CHECK(w.get("/api/credit", token(auth::Role::agent, "", {"P-1"}), "P-2").status == 403);
        // A reseller may not name another partner.
        CHECK(w.get("/api/credit", token(auth::Role::reseller, "P-1"), "P-2").status == 403);
        CHECK(w.get("/api/nothing-here", token(auth::Role::admin)).status == 404);
    }

}  // TEST_SUITE
