// The ERP ACL's parts on their own: circuit breaker and error window (with a fake clock), the
// wire format's strict reader, ERP_URL parsing, and the HTTP client against the real simulated
// ERP in every fault mode.

#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include <oe/erp/fake_erp.hpp>
#include <oe/erp/gateway.hpp>
#include <oe/erp/http_erp.hpp>
#include <oe/erp/wire.hpp>
#include <oe/kernel/metrics.hpp>

using namespace std::chrono_literals;
using oe::erp::CircuitBreaker;
using oe::erp::ErpFailure;

namespace {

struct FakeClock {
    std::chrono::steady_clock::time_point now{std::chrono::steady_clock::duration(1'000'000)};
    CircuitBreaker::Clock fn() {
        return [this] { return now; };
    }
};

ErpFailure::Kind kind_of(const std::function<void()>& call) {
    try {
        call();
    } catch (const ErpFailure& e) {
        return e.kind();
    }
    FAIL("expected an ErpFailure");
    return ErpFailure::Kind::failed;
}

oe::erp::SalesOrder order(const std::string& id) {
    return {id, "P-1", "WH-1", {{"SKU-1", 3, 1000}}, 3000};
}

}  // namespace

TEST_SUITE("erp") {
    TEST_CASE("circuit breaker: opens after 5 consecutive failures, probes once after open_for") {
        FakeClock clock;
        CircuitBreaker breaker({5, 30s}, clock.fn());
        for (int i = 0; i < 4; ++i) {
            REQUIRE(breaker.allow());
            breaker.failed();
        }
        CHECK(breaker.state() == CircuitBreaker::State::closed);
        breaker.succeeded();  // A success resets the count.
        for (int i = 0; i < 5; ++i) {
            REQUIRE(breaker.allow());
            breaker.failed();
        }
        CHECK(breaker.state() == CircuitBreaker::State::open);
        CHECK_FALSE(breaker.allow());
        CHECK(breaker.wait() == 30'000ms);
        clock.now += 29'999ms;
        CHECK_FALSE(breaker.allow());
        clock.now += 1ms;
        CHECK(breaker.state() == CircuitBreaker::State::half_open);
        CHECK(breaker.allow());        // The probe.
        CHECK_FALSE(breaker.allow());  // Only one at a time.
        breaker.failed();              // The probe failed: open again for 30 s.
        CHECK(breaker.state() == CircuitBreaker::State::open);
        clock.now += 30s;
        CHECK(breaker.allow());
        breaker.succeeded();
        CHECK(breaker.state() == CircuitBreaker::State::closed);
        CHECK(breaker.allow());
        CHECK(breaker.allow());
    }

    TEST_CASE("call window: failed / all over the last 5 minutes, 0 without calls") {
        FakeClock clock;
        oe::erp::CallWindow window(300s, clock.fn());
        CHECK(window.error_rate() == 0.0);
        window.record(true);
        window.record(false);
        window.record(false);
        window.record(false);
        CHECK(window.error_rate() == 0.25);
        clock.now += 299s;
        window.record(false);
        CHECK(window.error_rate() == 0.2);
        clock.now += 1s;  // The first second's calls are now 300 s old: out of the window.
        CHECK(window.error_rate() == 0.0);
    }

    TEST_CASE("wire: answers are read strictly; an error body with HTTP 200 is a failure") {
        using namespace oe::erp::wire;
        const auto ok = read_sales_order_answer(R"({"result":"OK","so_number":"SO-1"})");
        CHECK(ok.accepted);
        CHECK(ok.erp_order_ref == "SO-1");
        const auto no = read_sales_order_answer(R"({"result":"REJECTED","reason":"blocked"})");
        CHECK_FALSE(no.accepted);
        CHECK(no.reason == "blocked");
        for (const char* body : {"<html>oops</html>", R"({"result":"OK","so_nu)",
                                 R"({"result":"ERROR","message":"x"})", R"({"result":"OK"})",
                                 R"({"result":"OK","so_number":""})", R"({"result":"MAYBE"})", "[]",
                                 R"({"result":7})"}) {
            CAPTURE(body);
            CHECK(kind_of([&] { (void)read_sales_order_answer(body); }) ==
                  ErpFailure::Kind::failed);
        }
        const auto stock = read_stock(
            R"({"result":"OK","as_of":"2026-11-26T10:00:00Z","rows":[{"item":"S","warehouse":"W","on_hand":-4}]})");
        REQUIRE(stock.figures.size() == 1);
        CHECK(stock.figures[0].on_hand == -4);  // Refusing it is translate()'s job.
        CHECK(kind_of([&] {
                  (void)read_stock(R"({"result":"OK","as_of":"yesterday","rows":[]})");
              }) == ErpFailure::Kind::failed);
        CHECK(
            kind_of([&] {
                (void)read_receivables(
                    R"({"result":"OK","as_of":"2026-11-26T10:00:00Z","rows":[{"customer":"P","outstanding":1.5}]})");
            }) == ErpFailure::Kind::failed);
        read_cancel_answer(R"({"result":"NOT_FOUND"})");  // Counts as cancelled.
    }

    TEST_CASE("ERP_URL: http://host[:port][/path] only") {
        const auto e = oe::erp::parse_erp_url("http://erp.internal:8081/legacy/");
        REQUIRE(e);
        CHECK(e->host == "erp.internal");
        CHECK(e->port == 8081);
        CHECK(e->base_path == "/legacy");
        CHECK(oe::erp::parse_erp_url("http://erp")->port == 80);
        CHECK_FALSE(oe::erp::parse_erp_url("https://erp"));
        CHECK_FALSE(oe::erp::parse_erp_url("http://erp:0"));
        CHECK_FALSE(oe::erp::parse_erp_url("http://erp:99999"));
        CHECK_FALSE(oe::erp::parse_erp_url("http://user@erp"));
        CHECK_FALSE(oe::erp::parse_erp_url("http://"));
    }

    TEST_CASE("client against the simulated ERP: idempotent create, cancel, faults by kind") {
        oe::erp::FakeErpOptions options;
        options.seed_json = R"({"stock":[{"sku":"SKU-1","warehouse_id":"WH-1","on_hand":10}],)"
                            R"("debt":{"P-1":500}})";
        oe::erp::FakeErp erp(options);
        erp.start();
        auto client = oe::erp::make_http_erp({"127.0.0.1", erp.port(), ""}, 300ms);
        const std::string trace(32, 'a');

        const auto first = client->create_sales_order(order("O-1"), trace);
        const auto again = client->create_sales_order(order("O-1"), trace);
        CHECK(first.accepted);
        CHECK(again.erp_order_ref == first.erp_order_ref);  // Nothing created twice.
        // The ERP's books: 3 taken off stock, 3,000 added to debt.
        const auto stock = client->pull_stock(trace);
        REQUIRE(stock.figures.size() == 1);
        CHECK(stock.figures[0].on_hand == 7);
        const auto debt = client->pull_debt(trace);
        REQUIRE(debt.figures.size() == 1);
        CHECK(debt.figures[0].outstanding_idr == 3'500);
        client->cancel_sales_order("O-1", trace);
        client->cancel_sales_order("O-never", trace);  // NOT_FOUND counts as cancelled.
        CHECK(client->pull_stock(trace).figures[0].on_hand == 10);

        erp.stop();
        CHECK(kind_of([&] { (void)client->pull_stock(trace); }) == ErpFailure::Kind::unavailable);
    }

    TEST_CASE("client: every fault mode of the simulated ERP maps to the documented kind") {
        struct Case {
            const char* fault;
            ErpFailure::Kind kind;
        };
        for (const Case c :
             {Case{"garbage", ErpFailure::Kind::failed},
              Case{"partial_json", ErpFailure::Kind::failed},
              Case{"error_body", ErpFailure::Kind::failed}, Case{"reset", ErpFailure::Kind::failed},
              Case{"hang", ErpFailure::Kind::unavailable},
              Case{"down", ErpFailure::Kind::unavailable},
              Case{"fail", ErpFailure::Kind::failed}}) {
            CAPTURE(c.fault);
            oe::erp::FakeErpOptions options;
            options.mode.hang_ms = 2'000;
            if (std::string(c.fault) == "down") {
                options.mode.down = true;
            } else if (std::string(c.fault) == "fail") {
                options.mode.fail_rate = 1;
            } else {
                options.mode.fault = c.fault;
            }
            oe::erp::FakeErp erp(options);
            erp.start();
            auto client = oe::erp::make_http_erp({"127.0.0.1", erp.port(), ""}, 200ms);
            const auto started = std::chrono::steady_clock::now();
            CHECK(kind_of([&] { (void)client->create_sales_order(order("O-1"), ""); }) == c.kind);
            CHECK(std::chrono::steady_clock::now() - started < 1500ms);  // The deadline holds.
        }
    }

    TEST_CASE("gateway: an open circuit fails fast without calling, and counts nothing") {
        oe::erp::FakeErpOptions options;
        options.mode.down = true;
        oe::erp::FakeErp erp(options);
        erp.start();
        oe::metrics::Registry metrics;
        oe::erp::ErpGateway gateway(oe::erp::make_http_erp({"127.0.0.1", erp.port(), ""}, 500ms),
                                    {5, 60s}, metrics);
        for (int i = 0; i < 5; ++i) {
            CHECK(kind_of([&] { (void)gateway.pull_stock(""); }) == ErpFailure::Kind::unavailable);
        }
        CHECK(gateway.breaker().state() == CircuitBreaker::State::open);
        CHECK(kind_of([&] { (void)gateway.pull_stock(""); }) == ErpFailure::Kind::circuit_open);
        const auto text = metrics.render();
        CHECK(text.find("erp_sync_attempts_total 5\n") != std::string::npos);
        CHECK(text.find("erp_sync_errors_total 5\n") != std::string::npos);
        CHECK(text.find("erp_sync_error_rate 1\n") != std::string::npos);
        CHECK(text.find("erp_circuit_state 2\n") != std::string::npos);
    }
}
