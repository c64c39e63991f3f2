// Command benchmark: the pure PlaceOrder decision, and PlaceOrder end to end through
// CommandService (decide + atomic append) with the read models following, on SQLite and
// PostgreSQL.
//
//   commands_bench [--backend sqlite|postgresql|both] [--seconds S] [--decide-calls N]
//
// PostgreSQL needs OE_TEST_PG_ADMIN_URL (scripts/with-test-services sets it); a scratch
// database is created and dropped, and the PostgreSQL rows are skipped when it is unset. SQLite
// uses a scratch file under $TMPDIR. Prints a table; rejections (by reason), credit holds and
// store errors are counted per scenario and printed under it — a well-seeded run has none.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <pqxx/pqxx>

#include <oe/app/store_factory.hpp>
#include <oe/commands/command_service.hpp>
#include <oe/events/events.hpp>
#include <oe/kernel/event_store.hpp>
#include <oe/kernel/time.hpp>
#include <oe/projections/projection.hpp>
#include <oe/projections/runner.hpp>

namespace {

using Clock = std::chrono::steady_clock;
using namespace oe;
using namespace oe::commands;

constexpr int partner_count = 50;
constexpr int product_count = 50;
constexpr std::int64_t credit_limit_idr = 1'000'000'000'000;  // 10^12: never the limit here.
constexpr std::int64_t on_hand = 100'000'000;                 // Per SKU and warehouse.

struct Row {
    std::string backend;
    std::string scenario;
    std::int64_t count = 0;
    double seconds = 0;
    std::string unit;   // Of the rate.
    double mean = NAN;  // Latency, in `latency_unit`; NaN when not measured.
    double p50 = NAN;
    double p99 = NAN;
    std::string latency_unit;
    std::string target;
    std::string reached;
};

/// What went wrong in a scenario (it should stay empty).
struct Anomalies {
    std::map<std::string, std::int64_t> counts;  // "rejected:<code>", "credit_hold", "store_error"
    std::string first_message;

    void add(const std::string& what, const std::string& message) {
        if (counts.empty()) {
            first_message = message;
        }
        ++counts[what];
    }
    void merge(const Anomalies& other) {
        for (const auto& [k, v] : other.counts) {
            counts[k] += v;
        }
        if (first_message.empty()) {
            first_message = other.first_message;
        }
    }
    [[nodiscard]] std::int64_t total() const {
        std::int64_t n = 0;
        for (const auto& [k, v] : counts) {
            n += v;
        }
        return n;
    }
    [[nodiscard]] std::string describe() const {
        if (counts.empty()) {
            return "none";
        }
        std::string out;
        for (const auto& [k, v] : counts) {
            out += fmt::format("{}{} {}", out.empty() ? "" : ", ", k, v);
        }
        return out + fmt::format(" (first: {})", first_message);
    }
};

struct Checks {
    std::string scenario;
    std::string result;
    bool ok = true;
};

std::vector<Checks> checks;

void check(const std::string& scenario, const std::string& result, bool ok) {
    checks.push_back({scenario, result, ok});
    std::cerr << fmt::format("  check {:<44} {}{}\n", scenario, result, ok ? "" : "  <-- FAILED");
}

/// Percentile by nearest rank of sorted samples.
double percentile(const std::vector<double>& sorted, double p) {
    if (sorted.empty()) {
        return NAN;
    }
    const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
    return sorted[std::min(sorted.size(), std::max<std::size_t>(rank, 1)) - 1];
}

double mean_of(const std::vector<double>& v) {
    return v.empty() ? NAN
                     : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

EventMetadata metadata_of(std::string actor) {
    EventMetadata m;
    m.actor = std::move(actor);
    m.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    return m;
}

std::string sku_of(int i) {
    return fmt::format("SKU-{:04}", i + 1);
}
std::string partner_of(int i) {
    return fmt::format("P-{:03}", i + 1);
}
const char* tier_of(int i) {
    static const char* const tiers[] = {"BRONZE", "SILVER", "GOLD", "PLATINUM"};
    return tiers[i % 4];
}
const char* region_of(int i) {
    return i % 2 == 0 ? "ID-JK" : "ID-JB";
}
// 100,000 .. 247,000 rupiah: with 3..5 lines of qty 3..12, even PLATINUM's 15 % off keeps every
// order above the default minimum of 500,000 (3 × 3 × 85,000 = 765,000), so the config stays
// at its defaults.
std::int64_t price_of(int i) {
    return 100'000 + 3'000 * i;
}

/// Never rounds up: floors at `decimals` places.
std::string floored(double v, int decimals) {
    if (std::isnan(v)) {
        return "";
    }
    const double scale = std::pow(10.0, decimals);
    return fmt::format("{:.{}f}", std::floor(v * scale) / scale, decimals);
}

// ---- 1. decide, pure -------------------------------------------------------------------

/// A CommerceState folded from events built here: 1 partner, 50 products, 2 warehouses, stock.
model::CommerceState pure_state() {
    std::vector<events::DomainEvent> domain;
    domain.push_back(events::WarehouseRegistered{"WH-JKT", {{"ID-JK", 24}, {"ID-JB", 48}}});
    domain.push_back(events::WarehouseRegistered{"WH-BDG", {{"ID-JB", 24}, {"ID-JK", 48}}});
    events::StockLevelsSynced stock;
    stock.as_of_us = now_us();
    for (int i = 0; i < product_count; ++i) {
        domain.push_back(
            events::ProductRegistered{sku_of(i), fmt::format("Product {}", i), price_of(i), 5});
        stock.levels.push_back({sku_of(i), "WH-JKT", 1'000});
        stock.levels.push_back({sku_of(i), "WH-BDG", 1'000});
    }
    domain.push_back(events::PartnerRegistered{"P-001", "Toko Emas", events::Tier::gold, "ID-JK",
                                               credit_limit_idr});
    domain.push_back(std::move(stock));

    model::CommerceState state;
    const std::string metadata = metadata_of("admin-1").to_json();
    std::int64_t position = 0;
    for (const auto& d : domain) {
        NewEvent e = events::encode(d);
        RecordedEvent r;
        r.global_position = ++position;
        r.stream_id = fmt::format("bench-{}", position);
        r.stream_version = 1;
        r.type = std::move(e.type);
        r.schema_version = e.schema_version;
        r.data = std::move(e.data);
        r.metadata = metadata;
        r.recorded_at_us = now_us();
        state.apply(r);
    }
    return state;
}

Row bench_decide(std::int64_t calls) {
    const auto state = pure_state();
    PlaceOrder order{"O-01JD6Q7W3X9Y2Z5A8B4C6D0E1F", "P-001", {}, ""};
    for (int i = 0; i < 20; ++i) {
        order.lines.push_back({sku_of(i * 2), 5 + i % 4});  // 20 of the 50 SKUs.
    }
    const auto metadata = metadata_of("agent-1");
    Anomalies anomalies;
    std::int64_t routed = 0;
    std::size_t bytes = 0;  // Keeps the result alive.
    auto once = [&] {
        auto decision = decide(order, state, metadata);
        if (!decision.ok()) {
            anomalies.add(fmt::format("rejected:{}", code(decision.error().reason)),
                          decision.error().message);
            return;
        }
        const auto& events = decision.value().at(0).events;
        if (events.size() == 2 && events[1].type == "OrderRouted") {
            ++routed;
        } else {
            anomalies.add("not_routed", events.size() > 1 ? events[1].type : "one event");
        }
        bytes += events[0].data.size();
    };
    for (int i = 0; i < 1'000; ++i) {  // Warm-up.
        once();
    }
    routed = 0;
    std::vector<double> us;
    us.reserve(static_cast<std::size_t>(calls));
    const auto start = Clock::now();
    for (std::int64_t i = 0; i < calls; ++i) {
        const auto t0 = Clock::now();
        once();
        us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    const double mean = mean_of(us);
    std::sort(us.begin(), us.end());
    Row row{"-",
            "decide PlaceOrder, 20 lines (pure)",
            calls,
            elapsed,
            "calls/s",
            mean,
            percentile(us, 0.50),
            percentile(us, 0.99),
            "us",
            "<= 20 us",
            ""};
    row.reached = mean <= 20 && row.p99 <= 20 ? "yes" : (mean <= 20 ? "mean only" : "no");
    check("decide: every call routed, none rejected",
          fmt::format("routed {} of {}; anomalies: {} ({} bytes)", routed, calls,
                      anomalies.describe(), bytes),
          routed == calls && anomalies.total() == 0);
    return row;
}

// ---- 2. End to end ---------------------------------------------------------------------

template <typename Command>
void must(CommandService& s, const Command& command) {
    auto result = s.execute(command, metadata_of("admin-1"));
    if (!result.ok()) {
        throw std::runtime_error("seeding failed: " + result.error().message);
    }
}

/// 2 warehouses, 50 products, 50 partners of every tier in two regions, stock everywhere.
void seed(CommandService& s) {
    must(s, RegisterWarehouse{"WH-JKT", {{"ID-JK", 24}, {"ID-JB", 48}}});
    must(s, RegisterWarehouse{"WH-BDG", {{"ID-JB", 24}, {"ID-JK", 48}}});
    RecordStockLevels stock{now_us(), {}};
    for (int i = 0; i < product_count; ++i) {
        must(s, RegisterProduct{sku_of(i), fmt::format("Product {}", i), price_of(i), 5});
        stock.levels.push_back({sku_of(i), "WH-JKT", on_hand});
        stock.levels.push_back({sku_of(i), "WH-BDG", on_hand});
    }
    for (int i = 0; i < partner_count; ++i) {
        must(s, RegisterPartner{partner_of(i), fmt::format("Toko {}", i), tier_of(i), region_of(i),
                                credit_limit_idr});
    }
    must(s, stock);
}

struct RunResult {
    std::int64_t orders = 0;  // Accepted and routed.
    double seconds = 0;
    std::vector<double> ms;  // Latency of every execute call, sorted.
    Anomalies anomalies;
};

/// `callers` threads place 3–5-line orders through one CommandService for `seconds`.
RunResult run_orders(CommandService& service, int callers, double seconds) {
    static std::atomic<int> runs{0};
    const int run = ++runs;
    std::atomic<bool> stop{false};
    std::mutex merge_mutex;
    RunResult out;
    std::vector<std::thread> threads;
    const auto start = Clock::now();
    for (int c = 0; c < callers; ++c) {
        threads.emplace_back([&, c] {
            std::mt19937_64 rng(static_cast<std::uint64_t>(run * 100 + c));
            std::uniform_int_distribution<int> partner(0, partner_count - 1);
            std::uniform_int_distribution<int> line_count(3, 5);
            std::uniform_int_distribution<int> qty(3, 12);
            std::vector<int> skus(product_count);
            std::iota(skus.begin(), skus.end(), 0);
            const auto metadata = metadata_of(fmt::format("agent-{}", c));
            std::vector<double> ms;
            Anomalies anomalies;
            std::int64_t orders = 0;
            while (!stop.load(std::memory_order_relaxed)) {
                PlaceOrder order{CommandService::new_order_id(), partner_of(partner(rng)), {}, ""};
                const int n = line_count(rng);
                for (int i = 0; i < n; ++i) {  // n distinct SKUs.
                    std::uniform_int_distribution<int> pick(i, product_count - 1);
                    std::swap(skus[static_cast<std::size_t>(i)],
                              skus[static_cast<std::size_t>(pick(rng))]);
                    order.lines.push_back({sku_of(skus[static_cast<std::size_t>(i)]), qty(rng)});
                }
                const auto t0 = Clock::now();
                try {
                    auto result = service.execute(order, metadata);
                    ms.push_back(
                        std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
                    if (!result.ok()) {
                        anomalies.add(fmt::format("rejected:{}", code(result.error().reason)),
                                      result.error().message);
                    } else if (result.value().appended.at(0).events.at(1).type != "OrderRouted") {
                        anomalies.add(result.value().appended[0].events[1].type,
                                      "order not routed");
                    } else {
                        ++orders;
                    }
                } catch (const std::exception& e) {
                    ms.push_back(
                        std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
                    anomalies.add("store_error", e.what());
                }
            }
            std::lock_guard lock(merge_mutex);
            out.orders += orders;
            out.ms.insert(out.ms.end(), ms.begin(), ms.end());
            out.anomalies.merge(anomalies);
        });
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    for (auto& t : threads) {
        t.join();
    }
    out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::sort(out.ms.begin(), out.ms.end());
    return out;
}

std::vector<Row> bench_backend(const std::string& name, const std::string& url, double seconds,
                               bool pg) {
    oe::app::migrate(url);
    auto store = oe::app::open_store(url);
    CommandService service(*store);
    seed(service);
    std::vector<Row> rows;
    const double target = pg ? 2'000 : 3'000;
    const std::string target_text = pg ? ">= 2,000" : ">= 3,000";

    auto orders_row = [&](const std::string& scenario, const RunResult& r, bool with_target) {
        Row row{name,
                scenario,
                r.orders,
                r.seconds,
                "orders/s",
                mean_of(r.ms),
                percentile(r.ms, 0.50),
                percentile(r.ms, 0.99),
                "ms",
                "-",
                ""};
        if (with_target) {
            row.target = target_text;
            row.reached = static_cast<double>(r.orders) / r.seconds >= target ? "yes" : "no";
        }
        std::cerr << fmt::format("  {:<11} {:<44} {:>9} orders/s  p50 {} ms  p99 {} ms\n", name,
                                 scenario, floored(static_cast<double>(r.orders) / r.seconds, 1),
                                 floored(row.p50, 3), floored(row.p99, 3));
        return row;
    };
    // Each accepted order appends OrderPlaced + OrderRouted; nothing else writes.
    auto run_checked = [&](const std::string& scenario, int callers) {
        const auto head_before = store->head_position();
        auto r = run_orders(service, callers, seconds);
        const auto head_after = store->head_position();
        check(fmt::format("{} {}", name, scenario),
              fmt::format("{} orders, +{} events (expect 2 per order); anomalies: {}", r.orders,
                          head_after - head_before, r.anomalies.describe()),
              r.anomalies.total() == 0 && head_after - head_before == 2 * r.orders);
        return r;
    };

    auto one = run_checked("1 caller", 1);
    rows.push_back(orders_row("PlaceOrder, 1 caller", one, false));
    auto eight = run_checked("8 callers, no projections", 8);
    rows.push_back(orders_row("PlaceOrder, 8 callers, no projections", eight, false));

    // The read models follow the log on their own thread while 8 callers place orders.
    projections::ProjectionRunner runner(*store, projections::make_read_models());
    {
        const auto t0 = Clock::now();
        const auto reached = runner.catch_up();
        std::cerr << fmt::format(
            "  {:<11} read models: initial catch-up to {} took {} s\n", name, reached,
            floored(std::chrono::duration<double>(Clock::now() - t0).count(), 2));
    }
    runner.start();
    auto with = run_checked("8 callers + read models", 8);
    const auto head = store->head_position();
    std::int64_t behind = 0;
    for (const auto& [projection, position] : runner.checkpoints()) {
        behind = std::max(behind, head - position);
    }
    const auto t0 = Clock::now();
    const bool caught_up = runner.wait_for(head, std::chrono::minutes(10));
    const double catch_up = std::chrono::duration<double>(Clock::now() - t0).count();
    runner.stop();
    std::string positions;
    bool all_at_head = caught_up;
    for (const auto& [projection, position] : runner.checkpoints()) {
        positions += fmt::format("{}{}={}", positions.empty() ? "" : " ", projection, position);
        all_at_head = all_at_head && position >= head;
    }
    check(fmt::format("{} read models at head {}", name, head),
          fmt::format("{} events behind when the callers stopped; caught up in {} s: {}", behind,
                      floored(catch_up, 3), positions),
          all_at_head);

    rows.push_back(orders_row("PlaceOrder, 8 callers + read models", with, true));
    Row lag{name,
            fmt::format("read models: {} events behind, in {} ms", behind,
                        floored(catch_up * 1'000, 1)),
            behind,
            catch_up,
            "events/s",
            NAN,
            NAN,
            NAN,
            "",
            "-",
            ""};
    rows.push_back(lag);
    // Orders whose read models are written, over the run plus the catch-up after it.
    RunResult whole = with;
    whole.seconds += catch_up;
    Row projected = orders_row("PlaceOrder, 8 callers, incl. catch-up", whole, true);
    projected.mean = projected.p50 = projected.p99 = NAN;
    projected.latency_unit.clear();
    rows.push_back(projected);
    return rows;
}

}  // namespace

int main(int argc, char** argv) {
    std::string backend = "both";
    double seconds = 5;
    std::int64_t decide_calls = 200'000;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--backend" && i + 1 < argc) {
            backend = argv[++i];
        } else if (arg == "--seconds" && i + 1 < argc) {
            seconds = std::stod(argv[++i]);
        } else if (arg == "--decide-calls" && i + 1 < argc) {
            decide_calls = std::stoll(argv[++i]);
        } else {
            std::cerr << "usage: commands_bench [--backend sqlite|postgresql|both] [--seconds S] "
                         "[--decide-calls N]\n";
            return 2;
        }
    }
    std::vector<Row> rows;
    try {
        rows.push_back(bench_decide(decide_calls));
        std::cerr << fmt::format("  decide: mean {} us, p99 {} us\n", floored(rows.back().mean, 2),
                                 floored(rows.back().p99, 2));
        if (backend == "sqlite" || backend == "both") {
            const auto path = std::filesystem::temp_directory_path() /
                              fmt::format("oe_commands_bench_{}.db", ::getpid());
            auto r = bench_backend("sqlite", "sqlite://" + path.string(), seconds, false);
            rows.insert(rows.end(), r.begin(), r.end());
            for (const char* suffix : {"", "-wal", "-shm"}) {
                std::filesystem::remove(path.string() + suffix);
            }
        }
        if (backend == "postgresql" || backend == "both") {
            const char* admin = std::getenv("OE_TEST_PG_ADMIN_URL");
            if (admin == nullptr) {
                std::cerr << "commands_bench: OE_TEST_PG_ADMIN_URL is not set, skipping "
                             "PostgreSQL (run through scripts/with-test-services)\n";
            } else {
                const std::string database = fmt::format("oe_commands_bench_{}", ::getpid());
                {
                    pqxx::connection conn(admin);
                    pqxx::nontransaction(conn).exec("CREATE DATABASE " + database);
                }
                std::string url(admin);
                url = url.substr(0, url.rfind('/') + 1) + database;
                auto r = bench_backend("postgresql", url, seconds, true);
                rows.insert(rows.end(), r.begin(), r.end());
                pqxx::connection conn(admin);
                pqxx::nontransaction(conn).exec("DROP DATABASE " + database + " WITH (FORCE)");
            }
        }
    } catch (const std::exception& e) {
        std::cerr << "commands_bench: " << e.what() << "\n";
        return 1;
    }
    std::cout << fmt::format(
        "| {:<10} | {:<44} | {:>8} | {:>7} | {:>10} | {:<9} | {:>8} | {:>8} | {:>8} | {:<7} | "
        "{:<9} | {:<9} |\n",
        "backend", "scenario", "count", "seconds", "rate", "unit", "mean", "p50", "p99", "latency",
        "target", "reached");
    std::cout
        << "|------------|----------------------------------------------|----------|---------|"
           "------------|-----------|----------|----------|----------|---------|-----------|"
           "-----------|\n";
    for (const auto& row : rows) {
        const int decimals = row.latency_unit == "us" ? 2 : 3;
        std::cout << fmt::format(
            "| {:<10} | {:<44} | {:>8} | {:>7} | {:>10} | {:<9} | {:>8} | {:>8} | {:>8} | {:<7} | "
            "{:<9} | {:<9} |\n",
            row.backend, row.scenario, row.count, floored(row.seconds, 2),
            floored(static_cast<double>(row.count) / row.seconds, 0), row.unit,
            floored(row.mean, decimals), floored(row.p50, decimals), floored(row.p99, decimals),
            row.latency_unit, row.target, row.reached);
    }
    std::cout << "\nChecks (rejections by reason, credit holds and store errors per scenario; "
                 "expected: none):\n";
    bool all_ok = true;
    for (const auto& c : checks) {
        std::cout << fmt::format("- {}{}: {}\n", c.ok ? "" : "FAILED ", c.scenario, c.result);
        all_ok = all_ok && c.ok;
    }
    return all_ok ? 0 : 1;
}
