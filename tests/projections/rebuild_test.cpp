// Zero-downtime rebuild through the real store (compiled for SQLite and PostgreSQL): a rebuild
// of unchanged projections is identical to the live tables (checksums), it catches up with
// orders placed while it runs, a cancelled rebuild leaves the live tables untouched and the
// next one starts over, and one rebuild runs at a time.

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>

#include <doctest/doctest.h>

#include <oe/app/demo.hpp>
#include <oe/app/rebuild_process.hpp>
#include <oe/app/store_factory.hpp>
#include <oe/commands/command_service.hpp>
#include <oe/events/events.hpp>
#include <oe/kernel/time.hpp>
#include <oe/model/commerce_state.hpp>
#include <oe/projections/projection.hpp>
#include <oe/projections/rebuild.hpp>
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

EventMetadata actor(const char* name) {
    EventMetadata m;
    m.actor = name;
    return m;
}

template <typename Command>
Outcome ok(CommandService& service, const Command& command) {
    auto result = service.execute(command, actor("admin-7"));
    REQUIRE_MESSAGE(result.ok(), (result.ok() ? "" : result.error().message));
    return std::move(result).value();
}

/// Every row of every live read-model table, sorted: what "unchanged" means.
std::vector<std::vector<SqlRow>> live_rows(EventStore& store) {
    std::vector<std::vector<SqlRow>> all;
    for (const char* table : {"rm_partners", "rm_warehouses", "rm_pricing", "rm_credit", "rm_stock",
                              "rm_orders", "rm_system_config"}) {
        auto rows = store.query(std::string("SELECT * FROM ") + table);
        std::sort(rows.begin(), rows.end());
        all.push_back(std::move(rows));
    }
    return all;
}

/// A history that touches every projection: demo data, orders of several kinds, an ERP
/// acceptance and rejection, a cancel, a hold and its release, tier and system config changes.
void history(CommandService& s) {
    app::load_demo_data(s);
    std::vector<std::string> ids;
    for (int i = 0; i < 6; ++i) {
        const auto id = CommandService::new_order_id();
        ok(s, PlaceOrder{id, i % 2 == 0 ? "P-003" : "P-004", {{"SRM-VITC-30", 3 + i}}, "n"});
        ids.push_back(id);
    }
    ok(s, MarkOrderSentToErp{ids[0]});
    ok(s, RecordErpAcceptance{ids[0], "SO-1"});
    ok(s, MarkOrderSentToErp{ids[1]});
    ok(s, RecordErpRejection{ids[1], "blocked"});
    ok(s, CancelOrder{ids[2]});
    ok(s, ChangeTierConfig{"GOLD", 1200, "1.75"});
    ok(s, ChangeSystemConfig{"erp.max_rps", std::string("5.00")});
    // P-007 (BRONZE, 2,500,000) cannot afford 20 serums: held, then released by finance.
    const auto held = CommandService::new_order_id();
    ok(s, PlaceOrder{held, "P-007", {{"SRM-VITC-30", 20}}, ""});
    auto released = s.execute(ReleaseCreditHold{held}, actor("finance-1"));
    REQUIRE(released.ok());
    ok(s, RecordPartnerDebt{"P-003", 750'000, now_us()});
}

/// A store holding history(), its read models projected by a runner that has caught up (not
/// started: a test that wants the live projector running starts it).
struct Projected {
    TestDatabase db{backend};
    std::unique_ptr<EventStore> store = db.open();
    CommandService s{*store};
    projections::ProjectionRunner runner{*store, projections::make_read_models()};

    Projected() {
        history(s);
        runner.catch_up();
    }
};

}  // namespace

TEST_SUITE("rebuild") {
    TEST_CASE("a rebuild of unchanged projections is identical to the live tables") {
        Projected projected;
        auto& [db, store, s, runner] = projected;
        const auto before = live_rows(*store);

        // On every core, then on one (as a server's rebuild runs), which empties the rows the
        // first swapped out and writes each chunk on the calling thread.
        for (const auto cores : {projections::RebuildCores::all, projections::RebuildCores::one}) {
            CAPTURE(static_cast<int>(cores));
            const auto done = projections::rebuild(*store, {}, {}, nullptr, cores);
            CHECK(done.state == "done");
            CHECK(done.swapped_at == store->head_position());
            REQUIRE(done.checksums.size() == 7);
            std::int64_t rows = 0;
            for (const auto& c : done.checksums) {
                CAPTURE(c.projection);
                CHECK(c.live == c.rebuilt);
                CHECK(c.live_at == done.swapped_at);
                CHECK(c.rows > 0);
                rows += c.rows;
            }
            // Nothing was appended meanwhile: the bulk write wrote every row there is.
            CHECK(done.written_rows == rows);
            CHECK(live_rows(*store) == before);
            // The shadow tables keep the replaced rows (identical here) until the next rebuild
            // empties them, and the checkpoints did not move back.
            auto replaced = store->query("SELECT * FROM rm_orders_rebuild");
            std::sort(replaced.begin(), replaced.end());
            CHECK(replaced == before[5]);
            for (const auto& [name, position] : runner.checkpoints()) {
                CHECK(store->load_checkpoint(name) == position);
            }
        }
        // The live projector carries on from where the swap left it.
        ok(s, PlaceOrder{CommandService::new_order_id(), "P-004", {{"SRM-VITC-30", 4}}, ""});
        CHECK(runner.catch_up() == store->head_position());
    }

    TEST_CASE(
        "on one core, tables of hundreds of rows are written and emptied in short "
        "commits and stay identical") {
        // Beside a server, SQLite's shadow rows go in (and the old ones out) 100 at a time; a
        // 500-row bulk insert is split. 230 orders: rm_orders is written in three inserts.
        TestDatabase db(backend);
        auto store = db.open();
        CommandService s(*store);
        history(s);
        ok(s, ChangeSystemConfig{"order.min_threshold_idr", std::int64_t{0}});
        for (int i = 0; i < 230; ++i) {
            auto r = s.execute(
                PlaceOrder{CommandService::new_order_id(), "P-004", {{"MSK-SHEET-5", 1}}, ""},
                actor("reseller-P-004"));
            REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
        }
        projections::ProjectionRunner runner(*store, projections::make_read_models());
        runner.catch_up();
        const auto before = live_rows(*store);
        REQUIRE(before[5].size() >= 230);
        // Twice: the second empties the 230-odd rows the first swapped out.
        for (int round = 0; round < 2; ++round) {
            CAPTURE(round);
            const auto done =
                projections::rebuild(*store, {}, {}, nullptr, projections::RebuildCores::one);
            CHECK(done.state == "done");
            for (const auto& c : done.checksums) {
                CAPTURE(c.projection);
                CHECK(c.live == c.rebuilt);
            }
            CHECK(live_rows(*store) == before);
            CHECK(store->query("SELECT * FROM rm_orders_rebuild").size() == before[5].size());
        }
    }

    TEST_CASE("a server's rebuild runs in a process of its own, reports, and is identical") {
        // RebuildJobs with the runner `orderengine serve` uses: the real binary, started as
        // `orderengine rebuild --beside-server --progress json`, its status read from a pipe.
        Projected projected;
        auto& [db, store, s, runner] = projected;
        const auto before = live_rows(*store);
        projections::RebuildJobs jobs(*store,
                                      app::rebuild_in_child_process(OE_TEST_ORDERENGINE, db.url()));
        projections::RebuildStatus running;
        const auto started = jobs.start({}, &running);
        REQUIRE(started);
        CHECK(started->state == "running");
        // One at a time: asked again at once (the child process has barely started), it is
        // refused and shows the running job.
        CHECK_FALSE(jobs.start({"orders"}, &running));
        CHECK(running.job_id == started->job_id);
        auto latest = jobs.latest();
        for (int i = 0; i < 600 && latest && latest->state != "done" && latest->state != "failed";
             ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            latest = jobs.latest();
        }
        REQUIRE(latest);
        CHECK_MESSAGE(latest->state == "done", latest->error);
        CHECK(latest->job_id == started->job_id);
        CHECK(latest->swapped_at == store->head_position());
        REQUIRE(latest->checksums.size() == 7);
        for (const auto& c : latest->checksums) {
            CAPTURE(c.projection);
            CHECK(c.live == c.rebuilt);
            CHECK(c.rows > 0);
        }
        CHECK(live_rows(*store) == before);
        jobs.stop();
    }

    TEST_CASE("a rebuild process cancelled, or that cannot start, fails and changes nothing") {
        Projected projected;
        auto& [db, store, s, runner] = projected;
        const auto before = live_rows(*store);
        int reports = 0;
        const auto count = [&](const projections::RebuildStatus&) { ++reports; };
        // Cancelled from the start: the child gets SIGTERM and ends before any swap.
        std::atomic<bool> cancel{true};
        const auto runner_fn = app::rebuild_in_child_process(OE_TEST_ORDERENGINE, db.url());
        CHECK_THROWS(runner_fn({}, count, cancel));
        CHECK(live_rows(*store) == before);
        // A binary that is not there.
        std::atomic<bool> go{false};
        CHECK_THROWS_WITH(
            app::rebuild_in_child_process("/nonexistent/orderengine", db.url())({}, count, go),
            doctest::Contains("cannot start the rebuild process"));
        // A database the child cannot open: it reports the failure as its last line.
        CHECK_THROWS(app::rebuild_in_child_process(
            OE_TEST_ORDERENGINE, "sqlite:///nonexistent/dir/x.db")({}, count, go));
        CHECK(live_rows(*store) == before);
        // And afterwards a rebuild through it works.
        const auto done = runner_fn({"pricing"}, count, go);
        CHECK(done.state == "done");
        CHECK(reports > 0);
        REQUIRE(done.checksums.size() == 1);
        CHECK(done.checksums[0].live == done.checksums[0].rebuilt);
    }

    TEST_CASE("a rebuild's status survives its JSON line") {
        projections::RebuildStatus s;
        s.job_id = "rebuild-1";
        s.projections = {"orders", "credit"};
        s.state = "done";
        s.position = 1'000'001;
        s.target = 1'000'002;
        s.events_per_s = 250'000;
        s.eta_ms = 3;
        s.written_rows = 4'000'321;
        s.share_percent = 12;
        s.started_at_us = 1'795'677'457'123'456;
        s.finished_at_us = 1'795'677'467'123'456;
        s.swapped_at = 1'000'002;
        s.fold_ms = 1;
        s.write_ms = 2;
        s.swap_ms = 3;
        s.checksum_ms = 4;
        s.held_ms = 5;
        s.locked_ms = 6;
        s.checksums = {{"rm_orders", "00ff", "00ff", 7, 1'000'000},
                       {"rm_credit", "01", "02", 8, 1'000'001}};
        s.error = "a \"quoted\" error";
        const auto back = app::parse_rebuild_status(projections::to_json(s));
        REQUIRE(back);
        CHECK(projections::to_json(*back) == projections::to_json(s));
        CHECK(back->checksums[1].live_at == 1'000'001);
        CHECK_FALSE(app::parse_rebuild_status("running: 5 of 10 events"));
        CHECK_FALSE(app::parse_rebuild_status("{\"position\":5}"));
    }

    TEST_CASE("a catch-up's bulk flush writes the rows event-by-event flushes write") {
        // The same log through the live read models (flush: a statement per event) and the
        // shadow ones (flush_in_bulk: rm_orders rewritten from the write model per batch), in
        // batches of several sizes, so an order is placed and changed in one batch or across
        // several: every table of both sides must end identical.
        for (const std::size_t batch : {1U, 3U, 7U, 1000U}) {
            CAPTURE(batch);
            TestDatabase db(backend);
            auto store = db.open();
            CommandService s(*store);
            history(s);
            // Two more orders, the first sent to the ERP and accepted after the second was
            // placed (an order changed a few events after it was placed).
            const auto late = CommandService::new_order_id();
            ok(s, PlaceOrder{late, "P-004", {{"SRM-VITC-30", 4}}, ""});
            ok(s, PlaceOrder{CommandService::new_order_id(), "P-003", {{"SRM-VITC-30", 4}}, ""});
            ok(s, MarkOrderSentToErp{late});
            ok(s, RecordErpAcceptance{late, "SO-9"});
            auto live = projections::make_read_models();
            auto shadow = projections::make_read_models("_rebuild");
            model::CommerceState state;
            const auto events = store->read_all(0, 100'000);
            REQUIRE(events.size() > 50);
            for (std::size_t i = 0; i < events.size(); i += batch) {
                for (std::size_t j = i; j < std::min(events.size(), i + batch); ++j) {
                    state.apply(events[j]);
                    const auto decoded = events::decode(events[j]);
                    REQUIRE(decoded.ok());
                    for (auto* side : {&live, &shadow}) {
                        for (const auto& p : *side) {
                            p->observe(events[j], decoded.value(), state);
                        }
                    }
                }
                store->commit_projections({}, [&](SqlTx& tx) {
                    for (const auto& p : live) {
                        p->flush(tx, state);
                    }
                    for (const auto& p : shadow) {
                        p->flush_in_bulk(tx, state);
                    }
                });
            }
            for (const char* table : {"rm_partners", "rm_warehouses", "rm_pricing", "rm_credit",
                                      "rm_stock", "rm_orders", "rm_system_config"}) {
                CAPTURE(table);
                auto a = store->query(std::string("SELECT * FROM ") + table);
                auto b = store->query(std::string("SELECT * FROM ") + table + "_rebuild");
                std::sort(a.begin(), a.end());
                std::sort(b.begin(), b.end());
                CHECK(a == b);
                if (std::string_view(table) == "rm_orders") {
                    CHECK(a.size() == 9);  // Six, the held one, and two more.
                }
            }
        }
    }

    TEST_CASE("on one core the fold goes on to what was appended while it ran") {
        // Beside a server a paced fold of a big log takes minutes in which checkout appends
        // many events; the fold takes them too (cheaper than the catch-up), pass after pass,
        // before it writes the shadow tables. Here 6,000 config changes are appended as the
        // fold starts (from its first progress report, on the rebuild's own thread).
        Projected projected;
        auto& [db, store, s, runner] = projected;
        runner.start();  // The live projector applies the appended events too.
        const auto first_head = store->head_position();
        constexpr int appended = 6'000;
        bool appended_yet = false;
        bool append_ok = false;
        std::string append_error;
        std::int64_t folded_while_running = 0;  // The furthest a "running" report reached.
        std::int64_t target_while_running = 0;
        const auto progress = [&](const projections::RebuildStatus& st) {
            if (st.state != "running") {
                return;
            }
            folded_while_running = std::max(folded_while_running, st.position);
            target_while_running = std::max(target_while_running, st.target);
            if (appended_yet) {
                return;
            }
            appended_yet = true;
            // In appends of 1,000 (one append holds at most 16 MiB).
            append_ok = true;
            for (int i = 0; i < appended && append_ok; i += 1'000) {
                StreamAppend config{events::config_stream(), ExpectedVersion::any(), {}};
                for (int k = i; k < i + 1'000; ++k) {
                    auto e = events::encode(events::SystemConfigChanged{
                        "order.min_threshold_idr", std::int64_t{100'000 + k}, now_us()});
                    e.metadata = actor("admin-7");
                    config.events.push_back(std::move(e));
                }
                auto result = store->append({std::move(config)});  // (on the fold's thread)
                append_ok = result.ok();
                append_error = result.ok() ? "" : result.error().message;
            }
        };
        const auto done =
            projections::rebuild(*store, {}, progress, nullptr, projections::RebuildCores::one);
        CHECK(done.state == "done");
        REQUIRE_MESSAGE(append_ok, append_error);
        // The fold, not the catch-up, took the appended events: the target it reported while
        // folding moved to the new head, and it got there before the shadow write.
        CHECK(target_while_running == first_head + appended);
        CHECK(folded_while_running == first_head + appended);
        CHECK(done.swapped_at == first_head + appended);
        for (const auto& c : done.checksums) {
            CAPTURE(c.projection);
            CHECK(c.live == c.rebuilt);
            CHECK(c.live_at == first_head + appended);  // Like for like: the live projector
                                                        // applied them as well.
        }
        // The last change shows.
        const auto threshold = store->query(
            "SELECT value FROM rm_system_config WHERE key = 'order.min_threshold_idr'");
        REQUIRE(threshold.size() == 1);
        CHECK(threshold.front().front() == std::to_string(100'000 + appended - 1));
        // And they are what a rebuild of the same log on every core makes of it.
        const auto again = projections::rebuild(*store, {});
        for (const auto& c : again.checksums) {
            CAPTURE(c.projection);
            CHECK(c.live == c.rebuilt);
        }
        runner.stop();
    }

    TEST_CASE("a live table that drifted from the log: its checksum differs, and is mended") {
        Projected projected;
        auto& [db, store, s, runner] = projected;
        const auto before = live_rows(*store);
        // One value of one row, as a hand-made fix in the database would leave it.
        store->commit_projections({}, [](SqlTx& tx) {
            tx.exec(
                "UPDATE rm_orders SET loyalty_points = loyalty_points + 1 WHERE order_id = "
                "(SELECT MIN(order_id) FROM rm_orders)");
        });
        REQUIRE(live_rows(*store) != before);
        const auto done = projections::rebuild(*store, {});
        CHECK(done.state == "done");
        REQUIRE(done.checksums.size() == 7);
        for (const auto& c : done.checksums) {
            CAPTURE(c.projection);
            if (c.projection == "rm_orders") {
                CHECK(c.live != c.rebuilt);
            } else {
                CHECK(c.live == c.rebuilt);
            }
        }
        CHECK(live_rows(*store) == before);
    }

    TEST_CASE("live checksums taken during the write stand only while the live projector does") {
        // With every core on SQLite the live tables are summed while the shadow tables are
        // written. Here the live projector moves on after the write (an order placed and
        // projected as the rebuild reports that its swap begins): those sums no longer
        // describe the live tables, and both sides are summed at the hold's position instead.
        Projected projected;
        auto& [db, store, s, runner] = projected;
        const auto orders_before = live_rows(*store)[5].size();
        bool moved = false;
        std::int64_t moved_to = 0;
        const auto done =
            projections::rebuild(*store, {}, [&](const projections::RebuildStatus& status) {
                if (status.state == "swapping" && !moved) {
                    moved = true;
                    ok(s, PlaceOrder{
                              CommandService::new_order_id(), "P-004", {{"SRM-VITC-30", 4}}, ""});
                    moved_to = runner.catch_up();
                }
            });
        REQUIRE(moved);
        CHECK(done.state == "done");
        REQUIRE(done.checksums.size() == 7);
        for (const auto& c : done.checksums) {
            CAPTURE(c.projection);
            CHECK(c.live_at == moved_to);
            CHECK(c.live == c.rebuilt);
        }
        CHECK(done.swapped_at == moved_to);
        CHECK(live_rows(*store)[5].size() == orders_before + 1);
    }

    TEST_CASE("a single projection can be rebuilt; unknown names are refused") {
        Projected projected;
        auto& [db, store, s, runner] = projected;
        const auto done = projections::rebuild(*store, {"pricing"});
        REQUIRE(done.checksums.size() == 1);
        CHECK(done.checksums[0].projection == "rm_pricing");
        CHECK(done.checksums[0].rows == 96);  // 24 products x 4 tiers.
        CHECK(done.checksums[0].live == done.checksums[0].rebuilt);
        // GOLD at 1,200 bps: 189,000 x 0.88 = 166,320.
        CHECK(store->query("SELECT unit_price FROM rm_pricing WHERE tier = 'GOLD' AND sku = "
                           "'SRM-VITC-30'")[0][0] == "166320");
        CHECK_THROWS_AS(projections::rebuild(*store, {"nope"}), std::invalid_argument);
        CHECK_THROWS_AS(projections::rebuild(*store, {"pricing", "pricing"}),
                        std::invalid_argument);
    }

    TEST_CASE("checkout keeps writing during a rebuild; the swap catches up with it") {
        TestDatabase db(backend);
        auto store = db.open();
        CommandService s(*store);
        history(s);
        projections::ProjectionRunner runner(*store, projections::make_read_models());
        runner.start();
        ok(s, ChangeSystemConfig{"order.min_threshold_idr", std::int64_t{0}});
        std::atomic<bool> stop{false};
        std::atomic<int> placed{0};  // Decisions made (placed, held, or refused for stock).
        std::atomic<int> accepted{0};
        std::thread checkout([&] {
            CommandService writer(*store);
            while (!stop) {
                auto r = writer.execute(
                    PlaceOrder{CommandService::new_order_id(), "P-004", {{"MSK-SHEET-5", 1}}, ""},
                    actor("reseller-P-004"));
                ++placed;
                accepted += r.ok() ? 1 : 0;
            }
        });
        struct Join {
            std::atomic<bool>& stop;
            std::thread& thread;
            ~Join() {
                stop = true;
                if (thread.joinable()) {
                    thread.join();
                }
            }
        } join{stop, checkout};
        // Wait until checkout is under way, then rebuild everything twice while it goes on.
        while (placed < 20) {
            std::this_thread::yield();
        }
        projections::RebuildStatus first;
        projections::RebuildStatus second;
        int during = 0;
        try {
            first = projections::rebuild(*store, {});
            during = placed;
            second = projections::rebuild(*store, {"orders", "stock", "credit"});
        } catch (const std::exception& e) {
            FAIL_CHECK(std::string(e.what()));
        }
        stop = true;
        checkout.join();
        runner.stop();
        CHECK(first.state == "done");
        CHECK(second.state == "done");
        CHECK(placed > during);  // Checkout was not stopped by the rebuilds.
        CHECK(accepted > 20);
        for (const auto& c : first.checksums) {
            CAPTURE(c.projection);
            // Both sides were checksummed at one position the live projector had reached (it
            // was running), and the swap came at or after it (checkout kept appending).
            CHECK(c.live_at > 0);
            CHECK(c.live_at <= first.swapped_at);
            CHECK(c.live_at == first.checksums.front().live_at);
            CHECK(c.live == c.rebuilt);
        }
        for (const auto& c : second.checksums) {
            CAPTURE(c.projection);
            CHECK(c.live_at >= first.swapped_at);
            CHECK(c.live_at <= second.swapped_at);
            CHECK(c.live == c.rebuilt);
        }
        // After everything settled, the live tables equal a fresh rebuild of the whole log.
        projections::ProjectionRunner after(*store, projections::make_read_models());
        after.catch_up();
        const auto settled = live_rows(*store);
        const auto third = projections::rebuild(*store, {});
        for (const auto& c : third.checksums) {
            CAPTURE(c.projection);
            CHECK(c.live == c.rebuilt);
        }
        CHECK(live_rows(*store) == settled);
    }

    TEST_CASE("a rebuild stopped before the swap leaves the live tables as they were") {
        Projected projected;
        auto& [db, store, s, runner] = projected;
        const auto before = live_rows(*store);
        std::atomic<bool> cancel{false};
        CHECK_THROWS_WITH_AS(projections::rebuild(
                                 *store, {},
                                 [&](const projections::RebuildStatus& status) {
                                     if (status.state == "swapping") {
                                         cancel = true;  // Shadow tables are full by now.
                                     }
                                 },
                                 &cancel),
                             "cancelled", StoreError);
        CHECK(live_rows(*store) == before);
        CHECK(store->query("SELECT COUNT(*) FROM rm_orders_rebuild")[0][0] != "0");
        // The next rebuild starts over (it empties the shadow tables first).
        const auto again = projections::rebuild(*store, {});
        CHECK(again.state == "done");
        CHECK(live_rows(*store) == before);
    }

    TEST_CASE("one rebuild at a time: a second request gets the running job") {
        TestDatabase db(backend);
        auto store = db.open();
        CommandService s(*store);
        history(s);
        projections::RebuildJobs jobs(*store);
        // Another process holds the rebuild lease.
        auto other = db.open();
        auto lease = other->try_lease("rebuild");
        REQUIRE(lease);
        projections::RebuildStatus running;
        CHECK_FALSE(jobs.start({"pricing"}, &running));
        CHECK(running.error == "a rebuild is running in another process");
        lease.reset();
        const auto started = jobs.start({"pricing"}, &running);
        REQUIRE(started);
        CHECK(started->state == "running");
        jobs.stop();  // Cancelled or finished: either way the live tables are whole.
        const auto latest = jobs.latest();
        REQUIRE(latest);
        CHECK((latest->state == "done" || latest->state == "failed"));
        CHECK_THROWS_AS(jobs.start({"nope"}, &running), std::invalid_argument);
    }

#if defined(OE_TEST_BACKEND_POSTGRESQL)
    TEST_CASE("PostgreSQL: autovacuum stays off the shadow tables and on for the live ones") {
        // A shadow table is written in bulk and renamed; an autovacuum at work on it would
        // hold the swap's renames until the deadlock timeout cancelled it.
        Projected projected;
        auto& [db, store, s, runner] = projected;
        const auto autovacuum_off = [&](const std::string& table) {
            return store
                       ->query(
                           "SELECT 1 FROM pg_class WHERE oid = to_regclass($1) AND "
                           "'autovacuum_enabled=false' = ANY(reloptions)",
                           {table})
                       .size() == 1;
        };
        for (const auto cores : {projections::RebuildCores::all, projections::RebuildCores::one}) {
            CAPTURE(static_cast<int>(cores));
            REQUIRE(projections::rebuild(*store, {}, {}, nullptr, cores).state == "done");
            for (const char* table : {"rm_partners", "rm_warehouses", "rm_pricing", "rm_credit",
                                      "rm_stock", "rm_orders", "rm_system_config"}) {
                CAPTURE(table);
                CHECK_FALSE(autovacuum_off(table));
                CHECK(autovacuum_off(std::string(table) + "_rebuild"));
            }
        }
    }

    TEST_CASE("PostgreSQL: an application role that does not own the tables swaps by copying") {
        // Migrated by an owner role, run by an application role (MIGRATION_DATABASE_URL): the
        // role may not rename the tables, so the swap copies; the rows end up the same.
        const std::string suffix = std::to_string(::getpid());
        const std::string owner = "oe_rb_owner_" + suffix;
        const std::string app_role = "oe_rb_app_" + suffix;
        const std::string database = "oe_rb_roles_" + suffix;
        for (const auto& role : {owner, app_role}) {
            test::pg_admin_exec("DROP ROLE IF EXISTS " + role);
            test::pg_admin_exec("CREATE ROLE " + role + " LOGIN");
        }
        test::pg_admin_exec("CREATE DATABASE " + database + " OWNER " + owner);
        const std::string app_url = test::pg_url_for(database, app_role);
        REQUIRE(app::migrate(app_url, test::pg_url_for(database, owner)) >= 1);
        {
            auto store = app::open_store(app_url);
            CommandService s(*store);
            history(s);
            projections::ProjectionRunner runner(*store, projections::make_read_models());
            runner.catch_up();
            const auto before = live_rows(*store);
            const auto done = projections::rebuild(*store, {});
            CHECK(done.state == "done");
            for (const auto& c : done.checksums) {
                CAPTURE(c.projection);
                CHECK(c.live == c.rebuilt);
            }
            CHECK(live_rows(*store) == before);
            // A second one empties the shadow tables (full of the first one's rows) first.
            CHECK(projections::rebuild(*store, {}).state == "done");
            CHECK(live_rows(*store) == before);
        }
        test::pg_admin_exec("DROP DATABASE " + database + " WITH (FORCE)");
        test::pg_admin_exec("DROP ROLE " + owner);
        test::pg_admin_exec("DROP ROLE " + app_role);
    }
#endif
}
