// Rebuild and replay benchmark (issue 6's targets): a log of N events (default 1,000,000:
// the demo data, then orders as OrderPlaced + OrderRouted pairs appended in large batches),
// then
//   - a point-in-time replay of the credit model at the head (app::replay),
//   - a full rebuild of every read model (projections::rebuild: fold, bulk write into the
//     shadow tables, swap), three times: over empty live tables, over full ones, and once
//     more with the previous rebuild's replaced rows to empty (the steady state).
//
//   rebuild_bench [--backend sqlite|postgresql|both] [--events N] [--keep PATH]
//                 [--keep-pg-database NAME]
//
// --keep PATH keeps the SQLite log at PATH, and reuses it when it exists already (the fill
// takes longer than what is measured; a rebuild leaves the log as it was).
// --keep-pg-database NAME does the same for PostgreSQL with a database of that name (a
// template for bench/rebuild_checkout_bench.sh's LOG_EVENTS).
//
// PostgreSQL needs OE_TEST_PG_ADMIN_URL (scripts/with-test-services sets it); a scratch
// database is created and dropped. Prints a table.

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <unistd.h>
#include <pqxx/pqxx>

#include <oe/app/demo.hpp>
#include <oe/app/finance.hpp>
#include <oe/app/store_factory.hpp>
#include <oe/commands/command_service.hpp>
#include <oe/events/events.hpp>
#include <oe/kernel/time.hpp>
#include <oe/pricing/pricing.hpp>
#include <oe/projections/rebuild.hpp>

namespace {

using Clock = std::chrono::steady_clock;
using namespace oe;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Row {
    std::string backend, what;
    std::int64_t events = 0;
    double seconds = 0;
    std::string target;
};

/// The demo data, big limits and stock, then orders until the log holds `events` events.
void fill(EventStore& store, std::int64_t events) {
    commands::CommandService commands(store);
    app::load_demo_data(commands);
    EventMetadata m;
    m.actor = "bench";
    const char* partners[] = {"P-001", "P-002", "P-003", "P-004", "P-005", "P-006", "P-007"};
    for (const char* p : partners) {
        auto r = commands.execute(commands::SetCreditLimit{p, 1'000'000'000'000'000}, m);
        if (!r.ok()) {
            throw std::runtime_error(r.error().message);
        }
    }
    commands::RecordStockLevels stock{now_us(), {}};
    std::vector<std::pair<std::string, std::int64_t>> products;  // sku, base price
    std::vector<std::string> regions;
    std::vector<std::string> warehouse_of;  // per partner
    std::vector<events::Tier> tier_of;
    commands.with_state([&](const model::CommerceState& s) {
        for (const auto& sku : s.product_skus()) {
            products.emplace_back(sku, s.product(sku)->base_price_idr);
            for (const auto* w : s.warehouses()) {
                stock.levels.push_back({sku, w->warehouse_id, 1'000'000'000});
            }
        }
        for (const char* p : partners) {
            const auto* partner = s.partner(p);
            tier_of.push_back(partner->tier);
            regions.push_back(partner->region);
            // The fastest warehouse that lists the region (stock is never short here).
            std::string best;
            std::int32_t best_hours = INT32_MAX;
            for (const auto* w : s.warehouses()) {
                const auto found = w->sla_hours.find(partner->region);
                if (found != w->sla_hours.end() && found->second < best_hours) {
                    best = w->warehouse_id;
                    best_hours = found->second;
                }
            }
            warehouse_of.push_back(best);
        }
    });
    if (auto r = commands.execute(stock, m); !r.ok()) {
        throw std::runtime_error(r.error().message);
    }
    const auto terms = [&](events::Tier tier) {
        pricing::TierTerms t;
        commands.with_state([&](const model::CommerceState& s) { t = s.terms(tier); });
        return t;
    };
    std::vector<pricing::TierTerms> tier_terms;
    for (std::size_t i = 0; i < tier_of.size(); ++i) {
        tier_terms.push_back(terms(tier_of[i]));
    }
    const auto placed_at = now_us();
    std::int64_t n = 0;
    std::vector<StreamAppend> batch;
    while (store.head_position() < events) {
        batch.clear();
        const auto room = (events - store.head_position()) / 2;
        for (std::int64_t k = 0; k < std::min<std::int64_t>(1'000, std::max<std::int64_t>(room, 1));
             ++k, ++n) {
            const std::size_t p = static_cast<std::size_t>(n % 7);
            events::OrderPlaced placed;
            placed.order_id = fmt::format("O-BENCH-{:09}", n);
            placed.partner_id = partners[p];
            placed.tier = tier_of[p];
            placed.region = regions[p];
            placed.discount_bps = tier_terms[p].discount_bps;
            placed.loyalty_multiplier_hundredths = tier_terms[p].loyalty_multiplier_hundredths;
            events::OrderRouted routed;
            routed.order_id = placed.order_id;
            routed.warehouse_id = warehouse_of[p];
            for (int line = 0; line < 3; ++line) {
                const auto& [sku, base] = products[static_cast<std::size_t>((n + line) % 24)];
                const auto unit = pricing::unit_price_idr(base, placed.discount_bps);
                const std::int64_t qty = 1 + line;
                placed.lines.push_back({sku, qty, base, unit, placed.discount_bps, unit * qty});
                placed.subtotal_idr += unit * qty;
                routed.lines.push_back({sku, qty});
            }
            placed.loyalty_points =
                placed.subtotal_idr * placed.loyalty_multiplier_hundredths / 100'000;
            placed.placed_by = std::string("reseller-") + partners[p];
            placed.placed_at_us = placed_at + n;
            StreamAppend append{events::order_stream(placed.order_id),
                                ExpectedVersion::no_stream(),
                                {events::encode(placed), events::encode(routed)}};
            for (auto& e : append.events) {
                e.metadata = m;
            }
            batch.push_back(std::move(append));
        }
        auto r = store.append(std::move(batch));
        if (!r.ok()) {
            throw std::runtime_error("append failed");
        }
        batch = {};
    }
}

std::vector<Row> run(const std::string& backend, const std::string& url, std::int64_t events,
                     bool reuse = false) {
    std::vector<Row> rows;
    app::migrate(url, std::nullopt);
    auto store = app::open_store(url);
    auto start = Clock::now();
    if (!reuse) {
        fill(*store, events);
    }
    const auto head = store->head_position();
    std::cerr << fmt::format("{}: {} events written in {:.1f} s\n", backend, head,
                             seconds_since(start));

    start = Clock::now();
    auto credit =
        app::replay(*store, app::AsOf::at_position(head), app::ReplayModel::credit, now_us());
    if (!credit.ok()) {
        throw std::runtime_error(credit.error().message);
    }
    rows.push_back({backend, "replay credit as of the head", head, seconds_since(start),
                    backend == "sqlite" ? "<= 5 s" : "(none)"});

    // Round 1 replaces empty live tables (nothing projected them here). Round 2 replaces full
    // ones (checksums of both sides). Round 3 is the steady state of a running system: full
    // live tables, and the rows round 2 swapped out to empty while it folds.
    const char* labels[] = {"rebuild all, 1: live empty", "rebuild all, 2: live full",
                            "rebuild all, 3: steady state"};
    for (int round = 1; round <= 3; ++round) {
        start = Clock::now();
        const auto done = projections::rebuild(*store, {});
        rows.push_back({backend, labels[round - 1], head, seconds_since(start),
                        backend == "sqlite" ? "<= 5 s" : "<= 10 s"});
        std::cerr << fmt::format(
            "{}: rebuild {}: fold {} ms, shadow write {} ms, swap {} ms (checksums {} ms, "
            "checkpoints held {} ms, renaming transaction {} ms)\n",
            backend, round, done.fold_ms, done.write_ms, done.swap_ms, done.checksum_ms,
            done.held_ms, done.locked_ms);
        // From round 2 on the live tables are the previous round's rebuild of the same log.
        for (const auto& c : done.checksums) {
            if (round >= 2 && c.live != c.rebuilt) {
                throw std::runtime_error(fmt::format("round {}: {} rebuilt as {} but live is {}",
                                                     round, c.projection, c.rebuilt, c.live));
            }
        }
    }
    return rows;
}

}  // namespace

int main(int argc, char** argv) {
    std::string backend = "both";
    std::int64_t events = 1'000'000;
    std::string keep;
    std::string keep_pg;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--backend" && i + 1 < argc) {
            backend = argv[++i];
        } else if (arg == "--events" && i + 1 < argc) {
            events = std::stoll(argv[++i]);
        } else if (arg == "--keep" && i + 1 < argc) {
            keep = argv[++i];
        } else if (arg == "--keep-pg-database" && i + 1 < argc) {
            keep_pg = argv[++i];
        } else {
            std::cerr << "usage: rebuild_bench [--backend sqlite|postgresql|both] [--events N] "
                         "[--keep PATH] [--keep-pg-database NAME]\n";
            return 2;
        }
    }
    std::vector<Row> rows;
    try {
        if (backend == "sqlite" || backend == "both") {
            const std::filesystem::path path =
                keep.empty() ? std::filesystem::temp_directory_path() /
                                   fmt::format("oe_rebuild_bench_{}.db", ::getpid())
                             : std::filesystem::absolute(keep);
            const bool reuse = !keep.empty() && std::filesystem::exists(path);
            auto r = run("sqlite", "sqlite://" + path.string(), events, reuse);
            rows.insert(rows.end(), r.begin(), r.end());
            for (const char* suffix : {"", "-wal", "-shm"}) {
                if (keep.empty()) {
                    std::filesystem::remove(path.string() + suffix);
                }
            }
        }
        if (backend == "postgresql" || backend == "both") {
            const char* admin = std::getenv("OE_TEST_PG_ADMIN_URL");
            if (admin == nullptr) {
                std::cerr << "rebuild_bench: OE_TEST_PG_ADMIN_URL is not set, skipping "
                             "PostgreSQL (run through scripts/with-test-services)\n";
            } else {
                const std::string database =
                    keep_pg.empty() ? fmt::format("oe_rebuild_bench_{}", ::getpid()) : keep_pg;
                bool reuse = false;
                {
                    pqxx::connection conn(admin);
                    pqxx::nontransaction tx(conn);
                    reuse =
                        !keep_pg.empty() &&
                        !tx.exec_params("SELECT 1 FROM pg_database WHERE datname = $1", database)
                             .empty();
                    if (!reuse) {
                        tx.exec("CREATE DATABASE " + tx.quote_name(database));
                    }
                }
                std::string url(admin);
                url = url.substr(0, url.rfind('/') + 1) + database;
                auto r = run("postgresql", url, events, reuse);
                rows.insert(rows.end(), r.begin(), r.end());
                if (keep_pg.empty()) {
                    pqxx::connection conn(admin);
                    pqxx::nontransaction(conn).exec("DROP DATABASE " + database + " WITH (FORCE)");
                }
            }
        }
    } catch (const std::exception& e) {
        std::cerr << "rebuild_bench: " << e.what() << "\n";
        return 1;
    }
    std::cout << fmt::format("| {:<10} | {:<30} | {:>9} | {:>8} | {:>12} | {:<8} |\n", "backend",
                             "what", "events", "seconds", "events/s", "target");
    std::cout << "|------------|--------------------------------|-----------|----------|---------"
                 "-----|----------|\n";
    for (const auto& row : rows) {
        std::cout << fmt::format("| {:<10} | {:<30} | {:>9} | {:>8.2f} | {:>12.0f} | {:<8} |\n",
                                 row.backend, row.what, row.events, row.seconds,
                                 static_cast<double>(row.events) / row.seconds, row.target);
    }
    return 0;
}
