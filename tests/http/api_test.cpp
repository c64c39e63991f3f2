// The read API (SPEC §6) against a real store, real commands and real read models: auth,
// roles, masquerade, BOLA, and the exact bodies. Compiled for SQLite and PostgreSQL.

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <oe/app/config_service.hpp>
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
    projections::ProjectionRunner runner{*store, projections::make_read_models()};
    std::unique_ptr<ConfigCache> cache = app::make_config_cache(std::nullopt);
    app::ConfigService config{*store, commands, runner, *cache};
    http::Api api{{*store, commands, config, registry, secret}};

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
        run(ChangeSystemConfig{"order.min_threshold_idr", std::int64_t{100'000}});
        runner.start();  // As in serve: config writes wait for the read model, then purge.
    }

    http::Response post(const std::string& target, const std::string& bearer,
                        const std::string& body, std::optional<std::string> key,
                        std::optional<std::string> on_behalf_of = {}) {
        http::Request r;
        r.method = "POST";
        r.target = target;
        r.body = body;
        r.headers.emplace_back("Authorization", "Bearer " + bearer);
        if (key) {
            r.headers.emplace_back("Idempotency-Key", *key);
        }
        if (on_behalf_of) {
            r.headers.emplace_back("X-On-Behalf-Of", *on_behalf_of);
        }
        return api.handle(r);
    }

    http::Response send(const std::string& method, const std::string& target,
                        const std::string& bearer, const std::string& body,
                        const std::string& key) {
        http::Request r;
        r.method = method;
        r.target = target;
        r.body = body;
        r.headers = {{"Authorization", "Bearer " + bearer}, {"Idempotency-Key", key}};
        return api.handle(r);
    }

    http::Response get(const std::string& target, const std::string& bearer,
                       std::optional<std::string> on_behalf_of = {}) {
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

    TEST_CASE("a read-model row in no known form is a 500 with the error body, not a crash") {
        World w;
        (void)w.get("/api/orders/O-P1-A", token(auth::Role::reseller, "P-1"));  // Projected.
        REQUIRE_FALSE(
            w.db.exec_raw("UPDATE rm_orders SET lines = '[[oops' WHERE order_id = 'O-P1-A'")
                .has_value());
        const auto one = w.get("/api/orders/O-P1-A", token(auth::Role::reseller, "P-1"));
        CHECK(one.status == 500);
        CHECK(one.body == R"({"error":{"code":"internal","message":"internal error"}})");
        CHECK(w.get("/api/orders", token(auth::Role::reseller, "P-1")).status == 500);
        // Another partner's orders are unaffected.
        CHECK(w.get("/api/orders/O-P2-A", token(auth::Role::reseller, "P-2")).status == 200);
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
        // The scheme name is case-insensitive; what follows it is not.
        const auto with_authorization = [&](std::string value) {
            http::Request r;
            r.method = "GET";
            r.target = "/api/catalog";
            r.headers.emplace_back("Authorization", std::move(value));
            return w.api.handle(r).status;
        };
        const auto p1 = token(auth::Role::reseller, "P-1");
        CHECK(with_authorization("bearer " + p1) == 200);
        CHECK(with_authorization("BEARER " + p1) == 200);
        CHECK(with_authorization("Bearer" + p1) == 401);
        CHECK(with_authorization("Basic " + p1) == 401);
        CHECK(with_authorization("Bearer ") == 401);
    }

    TEST_CASE("metrics: the order counters are exposed at 0 before the first order") {
        World w;
        const auto text = w.registry.render();
        CHECK(text.find("credit_check_rejection_count_total 0") != std::string::npos);
        CHECK(text.find(R"(orders_placed_total{status="placed"} 0)") != std::string::npos);
        CHECK(text.find(R"(orders_placed_total{status="credit_hold"} 0)") != std::string::npos);
        CHECK(text.find(R"(order_failures_total{code="insufficient_stock"} 0)") !=
              std::string::npos);
    }

    TEST_CASE("place order: 201 with the view; the key replays it; misuse of the key is refused") {
        World w;
        const auto p1 = token(auth::Role::reseller, "P-1");
        const std::string body = R"({"lines":[{"sku":"SERUM","qty":2}],"note":"rush"})";
        const auto head = w.store->head_position();
        const auto first = w.post("/api/orders", p1, body, "key-1");
        REQUIRE(first.status == 201);
        CHECK(first.body.find(R"("status":"placed")") != std::string::npos);
        CHECK(first.body.find(R"("warehouse":"WH-JKT")") != std::string::npos);
        CHECK(first.body.find(R"("unit_price":90001)") != std::string::npos);
        CHECK(first.body.find(R"("placed_by":"u-reseller")") != std::string::npos);
        CHECK(first.body.find(R"("placed_at":"20)") != std::string::npos);
        CHECK(w.store->head_position() == head + 3);  // OrderPlaced, OrderRouted, the record.

        const auto again = w.post("/api/orders", p1, body, "key-1");
        CHECK(again.status == 201);
        CHECK(again.body == first.body);
        REQUIRE(again.headers.size() == 1);
        CHECK(again.headers[0] ==
              std::pair<std::string, std::string>("Idempotent-Replayed", "true"));
        CHECK(w.store->head_position() == head + 3);  // Nothing placed twice.

        CHECK(w.post("/api/orders", p1, R"({"lines":[{"sku":"SERUM","qty":3}]})", "key-1").status ==
              422);
        CHECK(w.post("/api/orders", p1, body, std::nullopt).status == 400);
        CHECK(w.post("/api/orders", p1, body, "").status == 400);
        // The same key from another principal is another key.
        CHECK(w.post("/api/orders", token(auth::Role::agent, "", {"P-1"}), body, "key-1", "P-1")
                  .status == 201);
        // The view can be read back (through the read model).
        const auto id_at = first.body.find(R"("order_id":")") + 12;
        const auto id = first.body.substr(id_at, first.body.find('"', id_at) - id_at);
        CHECK(w.get("/api/orders/" + id, p1).body == first.body);
    }

    TEST_CASE("read your writes: a GET right after a write sees it, without waiting") {
        World w;
        // Wired as `serve` wires it: the API knows the projectors, and nothing catches the read
        // models up before a GET (World::get does; this test must not).
        http::Api api{{*w.store, w.commands, w.config, w.registry, secret, nullptr, &w.runner}};
        w.runner.catch_up();  // The world's set-up, written past this API, is in the read models.
        auto call = [&](const std::string& method, const std::string& target,
                        const std::string& bearer, const std::string& key = {}) {
            http::Request r;
            r.method = method;
            r.target = target;
            r.headers.emplace_back("Authorization", "Bearer " + bearer);
            if (!key.empty()) {
                r.headers.emplace_back("Idempotency-Key", key);
                r.body = method == "POST" && target == "/api/orders"
                             ? R"({"lines":[{"sku":"TONER","qty":2}]})"
                             : "";
            }
            return api.handle(r);
        };
        auto field = [](const std::string& body, const std::string& name) {
            const auto at = body.find("\"" + name + "\":") + name.size() + 3;
            return body.substr(at, body.find_first_of(",}", at) - at);
        };
        const auto p2 = token(auth::Role::reseller, "P-2");
        // P-2 is BRONZE (no discount): each order is 2 × 50,000 = 100,000 of open credit.
        const auto open_before =
            std::stoll(field(call("GET", "/api/credit", p2).body, "open_orders_total"));
        constexpr int rounds = 20;
        for (int i = 0; i < rounds; ++i) {
            const auto placed = call("POST", "/api/orders", p2, fmt::format("ryw-{}", i));
            REQUIRE(placed.status == 201);
            const auto id = field(placed.body, "order_id");
            const auto read = call("GET", "/api/orders/" + id.substr(1, id.size() - 2), p2);
            REQUIRE(read.status == 200);
            CHECK(read.body == placed.body);
            CHECK(std::stoll(field(call("GET", "/api/credit", p2).body, "open_orders_total")) ==
                  open_before + 100'000);
            const auto listed = call("GET", "/api/orders?status=placed&limit=100", p2);
            CHECK(listed.body.find(id) != std::string::npos);
            const auto cancelled =
                call("POST", "/api/orders/" + id.substr(1, id.size() - 2) + "/cancel", p2,
                     fmt::format("ryw-cancel-{}", i));
            REQUIRE(cancelled.status == 200);
            CHECK(call("GET", "/api/orders/" + id.substr(1, id.size() - 2), p2).body ==
                  cancelled.body);
            CHECK(std::stoll(field(call("GET", "/api/credit", p2).body, "open_orders_total")) ==
                  open_before);
        }
        // What admin appends, every caller sees at once: a new product is in P-2's catalog
        // right after its 201.
        for (int i = 0; i < rounds; ++i) {
            http::Request r;
            r.method = "POST";
            r.target = "/api/admin/products";
            r.body = fmt::format(R"({{"sku":"NEW-{}","name":"New","base_price":1000,)"
                                 R"("buffer_qty":0}})",
                                 i);
            r.headers = {{"Authorization", "Bearer " + token(auth::Role::admin)},
                         {"Idempotency-Key", fmt::format("ryw-product-{}", i)}};
            REQUIRE(api.handle(r).status == 201);
            CHECK(call("GET", "/api/catalog", p2).body.find(fmt::format(R"("sku":"NEW-{}")", i)) !=
                  std::string::npos);
        }
    }

    TEST_CASE("place order: bad bodies are 400 and not stored; business refusals are stored") {
        World w;
        const auto p1 = token(auth::Role::reseller, "P-1");
        auto code = [](const http::Response& r) {
            const auto at = r.body.find(R"("code":")");
            return r.body.substr(at + 8, r.body.find('"', at + 8) - at - 8);
        };
        CHECK(code(w.post("/api/orders", p1, "{", "k")) == "invalid_json");
        CHECK(code(w.post("/api/orders", p1, R"({"lines":[{"sku":"SERUM","qty":1,"price":1}]})",
                          "k")) == "invalid_request");
        CHECK(code(w.post("/api/orders", p1, R"({"lines":[{"sku":"SERUM","qty":0}]})", "k")) ==
              "invalid_request");
        CHECK(code(w.post("/api/orders", p1, R"({"lines":[{"sku":"SERUM","qty":-1}]})", "k")) ==
              "invalid_request");
        CHECK(code(w.post("/api/orders", p1, R"({"lines":[{"sku":"SERUM","qty":1e3}]})", "k")) ==
              "invalid_request");
        CHECK(code(w.post("/api/orders", p1,
                          R"({"lines":[{"sku":"SERUM","qty":1},{"sku":"SERUM","qty":1}]})", "k")) ==
              "invalid_request");
        CHECK(code(w.post("/api/orders", p1, R"({"lines":[]})", "k")) == "invalid_request");
        // None of those was stored: the key still works.
        const auto below = w.post("/api/orders", p1, R"({"lines":[{"sku":"TONER","qty":1}]})", "k");
        CHECK(below.status == 422);
        CHECK(code(below) == "below_minimum_order");
        const auto replayed =
            w.post("/api/orders", p1, R"({"lines":[{"sku":"TONER","qty":1}]})", "k");
        CHECK(replayed.status == 422);
        CHECK(replayed.headers.size() == 1);
        CHECK(code(w.post("/api/orders", p1, R"({"lines":[{"sku":"NOPE","qty":1}]})", "k2")) ==
              "unknown_sku");
        CHECK(code(w.post("/api/orders", p1, R"({"lines":[{"sku":"SERUM","qty":6}]})", "k3")) ==
              "insufficient_stock");
        CHECK(w.post("/api/orders", token(auth::Role::finance), "{}", "k4").status == 403);
        const auto text = w.registry.render();
        CHECK(text.find(R"(order_failures_total{code="below_minimum_order"} 1)") !=
              std::string::npos);
    }

    TEST_CASE("credit hold is 201 without a warehouse; cancel frees it; BOLA on cancel") {
        World w;
        const auto p1 = token(auth::Role::reseller, "P-1");
        // 3,000,000 limit, 900,010 open: 24 × 90,001 = 2,160,024 is over.
        const auto held = w.post("/api/orders", p1, R"({"lines":[{"sku":"SERUM","qty":24}]})", "h");
        REQUIRE(held.status == 201);
        CHECK(held.body.find(R"("status":"credit_hold")") != std::string::npos);
        CHECK(held.body.find(R"("warehouse":null)") != std::string::npos);
        CHECK(w.registry.render().find("credit_check_rejection_count_total 1") !=
              std::string::npos);
        const auto id_at = held.body.find(R"("order_id":")") + 12;
        const auto id = held.body.substr(id_at, held.body.find('"', id_at) - id_at);

        CHECK(w.post("/api/orders/" + id + "/cancel", token(auth::Role::reseller, "P-2"), "", "c1")
                  .status == 404);
        const auto cancelled = w.post("/api/orders/" + id + "/cancel", p1, "", "c1");
        CHECK(cancelled.status == 200);
        CHECK(cancelled.body.find(R"("status":"cancelled")") != std::string::npos);
        CHECK(w.post("/api/orders/" + id + "/cancel", p1, "", "c1").headers.size() == 1);
        const auto twice = w.post("/api/orders/" + id + "/cancel", p1, "", "c2");
        CHECK(twice.status == 409);
        CHECK(twice.body.find("not_cancellable") != std::string::npos);
        CHECK(w.post("/api/orders/O-NOPE/cancel", token(auth::Role::admin), "", "c3").status ==
              404);
        CHECK(w.post("/api/orders/" + id + "/cancel", p1, R"({"why":1})", "c4").status == 400);
    }

    TEST_CASE("release of a credit hold by finance; raw event feed for admin and finance") {
        World w;
        const auto p1 = token(auth::Role::reseller, "P-1");
        const auto held = w.post("/api/orders", p1, R"({"lines":[{"sku":"SERUM","qty":24}]})", "h");
        REQUIRE(held.status == 201);
        const auto id_at = held.body.find(R"("order_id":")") + 12;
        const auto id = held.body.substr(id_at, held.body.find('"', id_at) - id_at);
        const auto path = "/api/admin/orders/" + id + "/release-credit-hold";
        CHECK(w.post(path, p1, "", "r1").status == 403);
        // 24 units: WH-JKT has 5 available, WH-SBY none — the order stays on hold.
        const auto no_stock = w.post(path, token(auth::Role::finance), "", "r1");
        CHECK(no_stock.status == 422);
        CHECK(no_stock.body.find("insufficient_stock") != std::string::npos);
        w.run(commands::RecordStockLevels{now_us(), {{"SERUM", "WH-JKT", 100}}});
        const auto released = w.post(path, token(auth::Role::finance), "", "r2");
        CHECK(released.status == 200);
        CHECK(released.body.find(R"("status":"placed")") != std::string::npos);
        CHECK(released.body.find(R"("warehouse":"WH-JKT")") != std::string::npos);
        const auto again = w.post(path, token(auth::Role::admin), "", "r3");
        CHECK(again.status == 409);
        CHECK(again.body.find("not_on_hold") != std::string::npos);

        const auto feed = w.get("/api/events?after=2&limit=3", token(auth::Role::admin));
        CHECK(feed.status == 200);
        CHECK(feed.body.starts_with(R"({"events":[{"global_position":3,)"));
        CHECK(feed.body.ends_with(R"(],"next_after":5})"));
        CHECK(w.get("/api/events", token(auth::Role::finance)).status == 200);
        CHECK(w.get("/api/events", p1).status == 403);
        CHECK(w.get("/api/events?limit=1001", token(auth::Role::admin)).status == 400);
        CHECK(w.get("/api/events?after=-1", token(auth::Role::admin)).status == 400);
        CHECK(w.get("/api/events?after=x", token(auth::Role::admin)).status == 400);
        const auto end = w.get("/api/events?after=100000", token(auth::Role::admin));
        CHECK(end.body == R"({"events":[],"next_after":100000})");
    }

    TEST_CASE("config reads: all keys with defaults, one key, history from the log") {
        World w;  // Its setup set order.min_threshold_idr to 100,000.
        const auto admin = token(auth::Role::admin);
        const auto all = w.get("/api/admin/config", admin);
        CHECK(all.status == 200);
        CHECK(all.body.find(
                  R"({"key":"erp.max_rps","value":"2.00","version":0,"updated_by":null,)") !=
              std::string::npos);
        const auto one = w.get("/api/admin/config/order.min_threshold_idr", admin);
        CHECK(one.status == 200);
        CHECK(one.body.starts_with(
            R"({"key":"order.min_threshold_idr","value":100000,"version":1,"updated_by":"admin",)"));
        CHECK(w.get("/api/admin/config/no.such.key", admin).status == 404);
        CHECK(w.get("/api/admin/config", token(auth::Role::finance)).status == 403);
        w.run(commands::ResetSystemConfig{"order.min_threshold_idr"});
        w.run(commands::ChangeTierConfig{"GOLD", 1'200, "1.50"});
        const auto history =
            w.get("/api/admin/config/order.min_threshold_idr/history", token(auth::Role::finance));
        CHECK(history.status == 200);
        CHECK(history.body.find(
                  R"([{"version":1,"value":100000,"change":"set","updated_by":"admin",)") == 0);
        CHECK(history.body.find(R"({"version":2,"value":500000,"change":"reset",)") !=
              std::string::npos);
        const auto tier = w.get("/api/admin/config/tier.GOLD.loyalty_multiplier/history", admin);
        CHECK(tier.body == "[]");  // The tier change left the multiplier as it was.
        CHECK(w.get("/api/admin/config/tier.GOLD.discount_bps/history", admin)
                  .body.find(R"("version":1,"value":1200,"change":"set")") != std::string::npos);
    }

    TEST_CASE("trace context: a valid traceparent is continued, anything else starts a trace") {
        const std::string valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        auto [trace, header] = http::trace_context(valid);
        CHECK(trace == "4bf92f3577b34da6a3ce929d0e0e4736");
        CHECK(header.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        CHECK(header.size() == 55);
        CHECK(header.substr(36, 16) != "00f067aa0ba902b7");  // Our own span.
        for (const char* bad :
             {"", "garbage", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
              "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
              "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
              "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"}) {
            auto [fresh, fresh_header] = http::trace_context(std::string_view(bad));
            CHECK(fresh.size() == 32);
            CHECK(fresh != "4bf92f3577b34da6a3ce929d0e0e4736");
            CHECK(fresh_header.substr(3, 32) == fresh);
        }
        CHECK(http::trace_context(std::nullopt).first.size() == 32);
    }

    TEST_CASE("the request's trace id is recorded in the metadata of every event it appends") {
        World w;
        http::Request r;
        r.method = "POST";
        r.target = "/api/orders";
        r.body = R"({"lines":[{"sku":"SERUM","qty":2}]})";
        r.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
        r.headers = {{"Authorization", "Bearer " + token(auth::Role::reseller, "P-1")},
                     {"Idempotency-Key", "t-1"}};
        REQUIRE(w.api.handle(r).status == 201);
        const auto events = w.store->read_all(w.store->head_position() - 3, 10);
        REQUIRE(events.size() == 3);
        for (const auto& e : events) {
            const auto m = EventMetadata::from_json(e.metadata);
            CHECK(m.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
            CHECK(m.idempotency_key == "t-1");
            CHECK(m.actor == "u-reseller");
        }
    }

    TEST_CASE("admin: partners, products, warehouses and tiers through the API") {
        World w;
        const auto admin = token(auth::Role::admin);
        const auto created = w.send("POST", "/api/admin/partners", admin,
                                    R"({"partner_id":"P-9","name":"Sembilan","tier":"SILVER",)"
                                    R"("region":"ID-JB","credit_limit":5000000})",
                                    "a1");
        CHECK(created.status == 201);
        CHECK(created.body == R"({"partner_id":"P-9","name":"Sembilan","tier":"SILVER",)"
                              R"("region":"ID-JB","credit_limit":5000000})");
        CHECK(w.send("POST", "/api/admin/partners", admin,
                     R"({"partner_id":"P-9","name":"x","tier":"SILVER","region":"ID-JB",)"
                     R"("credit_limit":1})",
                     "a2")
                  .status == 409);
        CHECK(w.send("POST", "/api/admin/partners", admin,
                     R"({"partner_id":"P-8","name":"x","tier":"GOLDEN","region":"ID-JB",)"
                     R"("credit_limit":1})",
                     "a3")
                  .body.find("unknown_tier") != std::string::npos);
        CHECK(w.send("POST", "/api/admin/partners", admin,
                     R"({"partner_id":"P-8","name":"x","tier":"GOLD","region":"ID-JB",)"
                     R"("credit_limit":-1})",
                     "a4")
                  .status == 400);
        const auto patched = w.send("PATCH", "/api/admin/partners/P-9", admin,
                                    R"({"tier":"PLATINUM","credit_limit":7000000})", "a5");
        CHECK(patched.status == 200);
        CHECK(patched.body == R"({"partner_id":"P-9","name":"Sembilan","tier":"PLATINUM",)"
                              R"("region":"ID-JB","credit_limit":7000000})");
        CHECK(w.send("PATCH", "/api/admin/partners/P-404", admin, R"({"tier":"GOLD"})", "a6")
                  .status == 404);
        CHECK(w.send("PATCH", "/api/admin/partners/P-9", admin, R"({"partner_id":"P-1"})", "a7")
                  .status == 400);
        CHECK(w.send("POST", "/api/admin/products", admin,
                     R"({"sku":"MASK","name":"Mask","base_price":12345})", "a8")
                  .body == R"({"sku":"MASK","name":"Mask","base_price":12345,"buffer_qty":0})");
        CHECK(w.send("POST", "/api/admin/warehouses", admin,
                     R"({"warehouse_id":"WH-NEW","sla_hours":{"ID-JK":48,"ID-BA":12}})", "a9")
                  .body == R"({"warehouse_id":"WH-NEW","sla_hours":{"ID-BA":12,"ID-JK":48}})");
        CHECK(w.send("POST", "/api/admin/products", token(auth::Role::reseller, "P-1"),
                     R"({"sku":"X","name":"X","base_price":1})", "a10")
                  .status == 403);

        // A tier change applies to the very next read of its config.
        CHECK(
            w.get("/api/admin/config/tier.GOLD.discount_bps", admin).body.find(R"("value":1000)") !=
            std::string::npos);
        const auto tier = w.send("PUT", "/api/admin/tiers/GOLD", admin,
                                 R"({"discount_bps":1500,"loyalty_multiplier":"2.25"})", "a11");
        CHECK(tier.status == 200);
        CHECK(tier.body == R"({"tier":"GOLD","discount_bps":1500,"loyalty_multiplier":"2.25"})");
        CHECK(
            w.get("/api/admin/config/tier.GOLD.discount_bps", admin).body.find(R"("value":1500)") !=
            std::string::npos);
        CHECK(w.send("PUT", "/api/admin/tiers/GOLD", admin,
                     R"({"discount_bps":9001,"loyalty_multiplier":"1.00"})", "a12")
                  .body.find("invalid_config_value") != std::string::npos);
        CHECK(w.send("PUT", "/api/admin/tiers/GOLD", admin,
                     R"({"discount_bps":100,"loyalty_multiplier":1.5})", "a13")
                  .status == 400);
        // And prices follow: GOLD now 15 % off.
        CHECK(w.get("/api/catalog", token(auth::Role::reseller, "P-1"))
                  .body.find(R"("unit_price":85001)") != std::string::npos);

        // A product's price: the catalog follows at once (200,000 × 8,500 / 10,000 = 170,000);
        // an order placed before keeps the price it recorded.
        const auto before = w.get("/api/orders/O-P1-A", admin);
        REQUIRE(before.status == 200);
        const auto repriced =
            w.send("PATCH", "/api/admin/products/SERUM", admin, R"({"base_price":200000})", "a14");
        CHECK(repriced.status == 200);
        CHECK(repriced.body == R"({"sku":"SERUM","name":"Serum","base_price":200000,)"
                               R"("buffer_qty":5})");
        CHECK(w.get("/api/catalog", token(auth::Role::reseller, "P-1"))
                  .body.find(R"("sku":"SERUM","name":"Serum","base_price":200000,)"
                             R"("unit_price":170000)") != std::string::npos);
        CHECK(w.get("/api/orders/O-P1-A", admin).body == before.body);
        CHECK(w.send("PATCH", "/api/admin/products/NOPE", admin, R"({"base_price":1})", "a15")
                  .status == 404);
        CHECK(w.send("PATCH", "/api/admin/products/SERUM", admin,
                     R"({"sku":"TONER","base_price":1})", "a16")
                  .status == 400);
        CHECK(w.send("PATCH", "/api/admin/products/SERUM", token(auth::Role::finance),
                     R"({"base_price":1})", "a17")
                  .status == 403);
    }

    TEST_CASE("config writes: PUT sets, DELETE resets, the next read sees it, bad values are 422") {
        World w;
        const auto admin = token(auth::Role::admin);
        const auto set =
            w.send("PUT", "/api/admin/config/erp.max_rps", admin, R"({"value":"5.50"})", "w1");
        CHECK(set.status == 200);
        CHECK(set.body.starts_with(
            R"({"key":"erp.max_rps","value":"5.50","version":1,"updated_by":"u-admin","updated_at":"20)"));
        // The very next read, through the cache, has it; the read model agrees to the microsecond.
        const auto read = w.get("/api/admin/config/erp.max_rps", admin);
        CHECK(read.body == set.body);
        const auto replay =
            w.send("PUT", "/api/admin/config/erp.max_rps", admin, R"({"value":"5.50"})", "w1");
        CHECK(replay.body == set.body);
        CHECK(replay.headers.size() == 1);

        const auto reset = w.send("DELETE", "/api/admin/config/erp.max_rps", admin, "", "w2");
        CHECK(reset.status == 200);
        CHECK(reset.body.find(R"("value":"2.00","version":2)") != std::string::npos);
        CHECK(w.get("/api/admin/config/erp.max_rps", admin).body == reset.body);
        CHECK(w.get("/api/admin/config/erp.max_rps/history", admin)
                  .body.find(R"({"version":2,"value":"2.00","change":"reset")") !=
              std::string::npos);

        auto code = [](const http::Response& r) {
            const auto at = r.body.find(R"("code":")");
            return r.body.substr(at + 8, r.body.find('"', at + 8) - at - 8);
        };
        CHECK(code(w.send("PUT", "/api/admin/config/erp.max_rps", admin, R"({"value":2})", "w3")) ==
              "invalid_config_value");
        CHECK(code(w.send("PUT", "/api/admin/config/stock.sync_interval_s", admin, R"({"value":9})",
                          "w4")) == "invalid_config_value");
        CHECK(code(w.send("PUT", "/api/admin/config/nope", admin, R"({"value":1})", "w5")) ==
              "unknown_config_key");
        CHECK(code(w.send("PUT", "/api/admin/config/erp.max_rps", admin, R"({"val":1})", "w6")) ==
              "invalid_request");
        CHECK(code(w.send("PUT", "/api/admin/config/erp.max_rps", admin, R"({"value":[1]})",
                          "w7")) == "invalid_config_value");
        CHECK(w.send("PUT", "/api/admin/config/erp.max_rps", token(auth::Role::finance),
                     R"({"value":"3.00"})", "w8")
                  .status == 403);
        // A tier key through the generic route: the order minimum follows config at once too.
        CHECK(w.send("PUT", "/api/admin/config/tier.BRONZE.discount_bps", admin, R"({"value":250})",
                     "w9")
                  .body.find(R"("value":250,"version":1)") != std::string::npos);
        CHECK(w.get("/api/admin/config/tier.BRONZE.discount_bps", admin)
                  .body.find(R"("value":250)") != std::string::npos);
    }

    TEST_CASE("config history: every change the version counts, resets of tier keys too") {
        World w;
        const auto admin = token(auth::Role::admin);
        const auto history = [&](std::string_view key) {
            return w.get(fmt::format("/api/admin/config/{}/history", key), admin).body;
        };
        const auto config = [&](std::string_view key) {
            return w.get(fmt::format("/api/admin/config/{}", key), admin).body;
        };
        // The value in force again (PUT is idempotent) changes nothing: no version, no entry.
        const char* key = "stock.sync_interval_s";
        const auto first = w.send("PUT", fmt::format("/api/admin/config/{}", key), admin,
                                  R"({"value":600})", "h1");
        CHECK(first.body.find(R"("value":600,"version":1,)") != std::string::npos);
        const auto again = w.send("PUT", fmt::format("/api/admin/config/{}", key), admin,
                                  R"({"value":600})", "h2");
        CHECK(again.status == 200);
        CHECK(again.body == first.body);
        CHECK(config(key) == first.body);
        CHECK(history(key).find(R"("version":2)") == std::string::npos);

        // DELETE of a tier key is a reset, in the history as in the version.
        const char* discount = "tier.SILVER.discount_bps";
        const char* multiplier = "tier.SILVER.loyalty_multiplier";
        const auto multiplier_set = w.send("PUT", fmt::format("/api/admin/config/{}", multiplier),
                                           admin, R"({"value":"1.30"})", "h0");
        CHECK(multiplier_set.body.find(R"("version":1,)") != std::string::npos);
        w.send("PUT", fmt::format("/api/admin/config/{}", discount), admin, R"({"value":700})",
               "h3");
        const auto reset =
            w.send("DELETE", fmt::format("/api/admin/config/{}", discount), admin, "", "h4");
        CHECK(reset.status == 200);
        CHECK(reset.body.find(R"("value":500,"version":2)") != std::string::npos);
        CHECK(history(discount).find(R"({"version":2,"value":500,"change":"reset")") !=
              std::string::npos);
        // A reset of a key at its default changes nothing either.
        const auto reset_again =
            w.send("DELETE", fmt::format("/api/admin/config/{}", discount), admin, "", "h5");
        CHECK(reset_again.status == 200);
        CHECK(reset_again.body == reset.body);
        // None of it touched the multiplier: its version, author and time stay as they were.
        CHECK(config(multiplier) == multiplier_set.body);
        CHECK(history(multiplier).find(R"("version":2)") == std::string::npos);
    }

}  // TEST_SUITE
