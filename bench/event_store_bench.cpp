// Event-store benchmark: append and read throughput on SQLite and PostgreSQL.
//
//   event_store_bench [--backend sqlite|postgresql|both] [--seconds S] [--read-events N]
//
// PostgreSQL needs OE_TEST_PG_ADMIN_URL (scripts/with-test-services sets it); a scratch
// database is created and dropped. SQLite uses a scratch file under $TMPDIR. Prints a table.

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <pqxx/pqxx>

#include <oe/app/store_factory.hpp>
#include <oe/kernel/event_store.hpp>

namespace {

using Clock = std::chrono::steady_clock;

struct Row {
    std::string backend;
    std::string scenario;
    std::int64_t count = 0;
    double seconds = 0;
    std::string unit;
    std::string target;
};

// A realistic payload: an order line set of about 400 bytes.
const std::string payload =
    R"({"order_id":"O-01JD6Q7W3X9Y2Z5A8B4C6D0E1F","partner_id":"P-001","tier":"GOLD",)"
    R"("lines":[{"sku":"SKU-0001","qty":12,"base_price":125000,"unit_price":112500,)"
    R"("discount_bps":1000,"line_total":1350000},{"sku":"SKU-0002","qty":3,)"
    R"("base_price":89000,"unit_price":80100,"discount_bps":1000,"line_total":240300}],)"
    R"("subtotal":1590300,"loyalty_points":2385,"config_position":42})";

oe::NewEvent make_event() {
    oe::NewEvent e;
    e.type = "OrderPlaced";
    e.data = payload;
    e.metadata.actor = "P-001";
    e.metadata.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    e.metadata.idempotency_key = "bench";
    return e;
}

/// `writers` threads append `events_per_append` events per call for `seconds`; returns events.
std::int64_t run_appends(oe::EventStore& store, int writers, int events_per_append, double seconds,
                         double& elapsed) {
    static std::atomic<int> runs{0};
    const int run = ++runs;
    std::atomic<std::int64_t> events{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    const auto start = Clock::now();
    for (int w = 0; w < writers; ++w) {
        threads.emplace_back([&, w] {
            std::vector<oe::NewEvent> batch(static_cast<std::size_t>(events_per_append),
                                            make_event());
            for (std::int64_t i = 0; !stop.load(); ++i) {
                auto result =
                    store.append({oe::StreamAppend{fmt::format("order-r{}-w{}-{}", run, w, i),
                                                   oe::ExpectedVersion::no_stream(), batch}});
                if (!result.ok()) {
                    std::cerr << "append rejected: " << result.error().message << "\n";
                    std::exit(1);
                }
                events += events_per_append;
            }
        });
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    for (auto& t : threads) {
        t.join();
    }
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    return events.load();
}

void fill_to(oe::EventStore& store, std::int64_t total) {
    std::vector<oe::NewEvent> batch(1000, make_event());
    std::int64_t head = store.head_position();
    std::int64_t i = 0;
    while (head < total) {
        const auto n = std::min<std::int64_t>(1000, total - head);
        batch.resize(static_cast<std::size_t>(n), make_event());
        auto r = store.append(
            {oe::StreamAppend{fmt::format("fill-{}", i++), oe::ExpectedVersion::any(), batch}});
        if (!r.ok()) {
            std::cerr << "fill failed: " << r.error().message << "\n";
            std::exit(1);
        }
        head = r.value().last_position;
    }
}

std::vector<Row> bench_backend(const std::string& name, const std::string& url, double seconds,
                               std::int64_t read_events, bool pg) {
    oe::app::migrate(url);
    auto store = oe::app::open_store(url);
    std::vector<Row> rows;
    auto add = [&](std::string scenario, std::int64_t count, double elapsed, std::string unit,
                   std::string target) {
        rows.push_back(
            {name, std::move(scenario), count, elapsed, std::move(unit), std::move(target)});
        std::cerr << fmt::format("  {:<11} {:<34} {:>12.0f} {}\n", name, rows.back().scenario,
                                 static_cast<double>(count) / elapsed, rows.back().unit);
    };
    double elapsed = 0;
    auto n = run_appends(*store, 1, 1, seconds, elapsed);
    add("1-event appends, 1 writer", n, elapsed, "appends/s", pg ? ">= 2,800" : ">= 5,000");
    n = run_appends(*store, 8, 1, seconds, elapsed);
    add("1-event appends, 8 writers", n, elapsed, "appends/s", pg ? ">= 10,000" : ">= 30,000");
    n = run_appends(*store, 1, 100, seconds, elapsed);
    add("100-event appends, 1 writer", n, elapsed, "events/s", pg ? ">= 100,000" : "-");
    n = run_appends(*store, 4, 100, seconds, elapsed);
    add("100-event appends, 4 writers", n, elapsed, "events/s", pg ? ">= 100,000" : "-");

    fill_to(*store, read_events);
    const auto start = Clock::now();
    std::int64_t after = 0;
    std::int64_t read = 0;
    for (;;) {
        auto page = store->read_all(after, 10'000);
        if (page.empty()) {
            break;
        }
        after = page.back().global_position;
        read += static_cast<std::int64_t>(page.size());
    }
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    add(fmt::format("read-all over {} events", read), read, elapsed, "events/s",
        pg ? ">= 200,000" : ">= 1,000,000");
    return rows;
}

}  // namespace

int main(int argc, char** argv) {
    std::string backend = "both";
    double seconds = 5;
    std::int64_t read_events = 1'000'000;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--backend" && i + 1 < argc) {
            backend = argv[++i];
        } else if (arg == "--seconds" && i + 1 < argc) {
            seconds = std::stod(argv[++i]);
        } else if (arg == "--read-events" && i + 1 < argc) {
            read_events = std::stoll(argv[++i]);
        } else {
            std::cerr << "usage: event_store_bench [--backend sqlite|postgresql|both] "
                         "[--seconds S] [--read-events N]\n";
            return 2;
        }
    }
    std::vector<Row> rows;
    try {
        if (backend == "sqlite" || backend == "both") {
            const auto path =
                std::filesystem::temp_directory_path() / fmt::format("oe_bench_{}.db", ::getpid());
            auto r =
                bench_backend("sqlite", "sqlite://" + path.string(), seconds, read_events, false);
            rows.insert(rows.end(), r.begin(), r.end());
            for (const char* suffix : {"", "-wal", "-shm"}) {
                std::filesystem::remove(path.string() + suffix);
            }
        }
        if (backend == "postgresql" || backend == "both") {
            const char* admin = std::getenv("OE_TEST_PG_ADMIN_URL");
            if (admin == nullptr) {
                std::cerr << "event_store_bench: OE_TEST_PG_ADMIN_URL is not set (run through "
                             "scripts/with-test-services)\n";
                return 2;
            }
            const std::string database = fmt::format("oe_bench_{}", ::getpid());
            {
                pqxx::connection conn(admin);
                pqxx::nontransaction(conn).exec("CREATE DATABASE " + database);
            }
            std::string url(admin);
            url = url.substr(0, url.rfind('/') + 1) + database;
            auto r = bench_backend("postgresql", url, seconds, read_events, true);
            rows.insert(rows.end(), r.begin(), r.end());
            pqxx::connection conn(admin);
            pqxx::nontransaction(conn).exec("DROP DATABASE " + database + " WITH (FORCE)");
        }
    } catch (const std::exception& e) {
        std::cerr << "event_store_bench: " << e.what() << "\n";
        return 1;
    }
    std::cout << fmt::format("| {:<10} | {:<34} | {:>10} | {:>7} | {:>12} | {:<10} | {:<10} |\n",
                             "backend", "scenario", "count", "seconds", "rate", "unit", "target");
    std::cout << "|------------|------------------------------------|------------|---------|"
                 "--------------|------------|------------|\n";
    for (const auto& row : rows) {
        std::cout << fmt::format(
            "| {:<10} | {:<34} | {:>10} | {:>7.2f} | {:>12.0f} | {:<10} | {:<10} |\n", row.backend,
            row.scenario, row.count, row.seconds, static_cast<double>(row.count) / row.seconds,
            row.unit, row.target);
    }
    return 0;
}
