// The event-store conformance suite. The same file is compiled twice: event_store_sqlite_test
// (OE_TEST_BACKEND_SQLITE) and event_store_pg_test (OE_TEST_BACKEND_POSTGRESQL), so every
// guarantee of oe::EventStore is checked against both backends by the same code.

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <map>
#include <set>
#include <thread>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <boost/json.hpp>

#include <oe/app/store_factory.hpp>
#include <oe/kernel/event_bus.hpp>
#include <oe/kernel/event_store.hpp>
#include <oe/kernel/invariant.hpp>
#include <oe/kernel/metrics.hpp>
#include <oe/kernel/subscription.hpp>
#include <oe/kernel/time.hpp>
#include <oe/kernel/upcaster.hpp>

#include "support/test_database.hpp"

#if defined(OE_TEST_BACKEND_SQLITE)
#include <sqlite3.h>

#include <oe/event_store_sqlite/sqlite_event_store.hpp>
#endif

using namespace oe;
using oe::test::TestDatabase;

namespace {

#if defined(OE_TEST_BACKEND_POSTGRESQL)
constexpr auto backend = oe::test::Backend::postgresql;
#else
constexpr auto backend = oe::test::Backend::sqlite;
#endif

NewEvent event(std::string type, std::string data = R"({"n":1})") {
    NewEvent e;
    e.type = std::move(type);
    e.data = std::move(data);
    e.metadata.actor = "user-1";
    e.metadata.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    return e;
}

StreamAppend to(std::string stream, ExpectedVersion expected, std::vector<NewEvent> events) {
    return StreamAppend{std::move(stream), expected, std::move(events)};
}

AppendResult must_append(EventStore& store, std::vector<StreamAppend> streams) {
    auto result = store.append(std::move(streams));
    REQUIRE_MESSAGE(result.ok(), (result.ok() ? "" : result.error().message));
    return std::move(result).value();
}

/// For worker threads, where a REQUIRE's exception would escape the thread.
bool append_in_thread(EventStore& store, std::vector<StreamAppend> streams) {
    auto result = store.append(std::move(streams));
    CHECK_MESSAGE(result.ok(), (result.ok() ? "" : result.error().message));
    return result.ok();
}

std::vector<std::int64_t> positions(const std::vector<RecordedEvent>& events) {
    std::vector<std::int64_t> out;
    for (const auto& e : events) {
        out.push_back(e.global_position);
    }
    return out;
}

std::vector<RecordedEvent> read_everything(EventStore& store) {
    std::vector<RecordedEvent> all;
    for (;;) {
        auto page = store.read_all(all.empty() ? 0 : all.back().global_position, 5000);
        if (page.empty()) {
            return all;
        }
        all.insert(all.end(), std::make_move_iterator(page.begin()),
                   std::make_move_iterator(page.end()));
    }
}

}  // namespace

TEST_SUITE("event store conformance") {
    TEST_CASE("append to a new stream assigns versions from 1 and positions from 1") {
        TestDatabase db(backend);
        auto store = db.open();
        CHECK(store->head_position() == 0);
        const auto before_us = now_us();
        const auto result = must_append(
            *store, {to("order-O-1", ExpectedVersion::no_stream(),
                        {event("OrderPlaced"), event("OrderRouted", R"({"wh":"W-1"})")})});
        CHECK(result.first_position == 1);
        CHECK(result.last_position == 2);
        CHECK(result.stream_versions == std::vector<std::int64_t>{2});
        CHECK(store->head_position() == 2);

        const auto events = store->read_stream("order-O-1");
        REQUIRE(events.size() == 2);
        CHECK(events[0].stream_version == 1);
        CHECK(events[1].stream_version == 2);
        CHECK(events[1].type == "OrderRouted");
        CHECK(events[1].data == R"({"wh":"W-1"})");
        CHECK(events[0].schema_version == 1);
        CHECK(events[0].recorded_at_us >= before_us - 1'000'000);
        CHECK(events[0].recorded_at_us <= now_us() + 1'000'000);
        const auto metadata = EventMetadata::from_json(events[0].metadata);
        CHECK(metadata.actor == "user-1");
        CHECK(metadata.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
        CHECK(metadata.on_behalf_of.empty());
    }

    TEST_CASE("metadata round-trips every SPEC field, including characters that need escaping") {
        TestDatabase db(backend);
        auto store = db.open();
        NewEvent e = event("PartnerRegistered");
        e.metadata = {"agent-7", "P-001", "trace\"1\\", "corr\\1\"x", "cause-1", "idem-\u00e9"};
        must_append(*store, {to("partner-P-001", ExpectedVersion::any(), {e})});
        const auto stored = store->read_stream("partner-P-001");
        REQUIRE(stored.size() == 1);
        CHECK(EventMetadata::from_json(stored[0].metadata) == e.metadata);
    }

    TEST_CASE("expected versions: exact, no-stream and any") {
        TestDatabase db(backend);
        auto store = db.open();
        must_append(*store, {to("s-1", ExpectedVersion::no_stream(), {event("A")})});

        SUBCASE("exact version that matches appends") {
            const auto r =
                must_append(*store, {to("s-1", ExpectedVersion::exact(1), {event("B")})});
            CHECK(r.stream_versions == std::vector<std::int64_t>{2});
        }
        SUBCASE("exact version that does not match is a typed conflict and writes nothing") {
            const auto r = store->append({to("s-1", ExpectedVersion::exact(5), {event("B")})});
            REQUIRE_FALSE(r.ok());
            CHECK(r.error().reason == AppendRejected::wrong_expected_version);
            CHECK(r.error().stream_id == "s-1");
            CHECK(r.error().expected == 5);
            CHECK(r.error().actual == 1);
            CHECK(store->head_position() == 1);
        }
        SUBCASE("no-stream on an existing stream conflicts") {
            const auto r = store->append({to("s-1", ExpectedVersion::no_stream(), {event("B")})});
            REQUIRE_FALSE(r.ok());
            CHECK(r.error().reason == AppendRejected::wrong_expected_version);
            CHECK(r.error().actual == 1);
        }
        SUBCASE("exact version on a missing stream conflicts with actual 0") {
            const auto r = store->append({to("s-2", ExpectedVersion::exact(1), {event("B")})});
            REQUIRE_FALSE(r.ok());
            CHECK(r.error().actual == 0);
        }
        SUBCASE("any appends whatever the version") {
            must_append(*store, {to("s-1", ExpectedVersion::any(), {event("B")})});
            must_append(*store, {to("s-3", ExpectedVersion::any(), {event("C")})});
            CHECK(store->read_stream("s-1").size() == 2);
            CHECK(store->read_stream("s-3").size() == 1);
        }
    }

    TEST_CASE("a multi-stream append is atomic: one conflicting stream writes nothing at all") {
        TestDatabase db(backend);
        auto store = db.open();
        must_append(*store, {to("partner-P-1", ExpectedVersion::no_stream(), {event("A")})});
        const auto r =
            store->append({to("order-O-1", ExpectedVersion::no_stream(), {event("Placed")}),
                           to("partner-P-1", ExpectedVersion::exact(7), {event("Reserved")}),
                           to("sku-S-1", ExpectedVersion::any(), {event("Reserved")})});
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().stream_id == "partner-P-1");
        CHECK(store->read_stream("order-O-1").empty());
        CHECK(store->read_stream("sku-S-1").empty());
        CHECK(store->head_position() == 1);

        const auto ok = must_append(
            *store,
            {to("order-O-1", ExpectedVersion::no_stream(), {event("Placed"), event("Routed")}),
             to("partner-P-1", ExpectedVersion::exact(1), {event("Reserved")})});
        CHECK(ok.first_position == 2);
        CHECK(ok.last_position == 4);
        CHECK(ok.stream_versions == std::vector<std::int64_t>{2, 2});
        CHECK(positions(store->read_all(0, 100)) == std::vector<std::int64_t>{1, 2, 3, 4});
    }

    TEST_CASE("read_all pages in global order; read_stream honours from_version and max_count") {
        TestDatabase db(backend);
        auto store = db.open();
        for (int i = 0; i < 10; ++i) {
            must_append(*store, {to(i % 2 == 0 ? "even" : "odd", ExpectedVersion::any(),
                                    {event("E", fmt::format(R"({{"i":{}}})", i))})});
        }
        CHECK(positions(store->read_all(0, 3)) == std::vector<std::int64_t>{1, 2, 3});
        CHECK(positions(store->read_all(3, 3)) == std::vector<std::int64_t>{4, 5, 6});
        CHECK(positions(store->read_all(9, 100)) == std::vector<std::int64_t>{10});
        CHECK(store->read_all(10, 100).empty());
        const auto odd = store->read_stream("odd", 3, 2);
        REQUIRE(odd.size() == 2);
        CHECK(odd[0].stream_version == 3);
        CHECK(odd[0].data == R"({"i":5})");
        CHECK(odd[1].stream_version == 4);
        CHECK(store->read_stream("missing").empty());
    }

    TEST_CASE("bad appends are typed rejections and write nothing") {
        TestDatabase db(backend);
        auto store = db.open();
        auto rejected = [&](std::vector<StreamAppend> streams) {
            auto r = store->append(std::move(streams));
            REQUIRE_FALSE(r.ok());
            return r.error().reason;
        };
        CHECK(rejected({}) == AppendRejected::invalid_event);
        CHECK(rejected({to("s", ExpectedVersion::any(), {})}) == AppendRejected::invalid_event);
        CHECK(rejected({to("", ExpectedVersion::any(), {event("A")})}) ==
              AppendRejected::invalid_event);
        CHECK(rejected({to("s", ExpectedVersion::any(), {event("A")}),
                        to("s", ExpectedVersion::any(), {event("B")})}) ==
              AppendRejected::invalid_event);
        CHECK(rejected({to("s", ExpectedVersion::any(), {event("A", "not json")})}) ==
              AppendRejected::invalid_event);
        CHECK(rejected({to("s", ExpectedVersion::any(), {event("A", "[1,2]")})}) ==
              AppendRejected::invalid_event);
        CHECK(rejected({to("s", ExpectedVersion::any(), {event("A", R"({"a":1} trailing)")})}) ==
              AppendRejected::invalid_event);
        CHECK(rejected({to("s", ExpectedVersion::any(), {event("")})}) ==
              AppendRejected::invalid_event);
        const std::string big = R"({"blob":")" + std::string(1024 * 1024, 'x') + R"("})";
        CHECK(rejected({to("s", ExpectedVersion::any(), {event("A"), event("Big", big)})}) ==
              AppendRejected::payload_too_large);
        auto with_metadata = [](std::string actor) {
            NewEvent e = event("A");
            e.metadata.actor = std::move(actor);
            return e;
        };
        CHECK(rejected({to(std::string("s\0x", 3), ExpectedVersion::any(), {event("A")})}) ==
              AppendRejected::invalid_event);
        CHECK(rejected({to("s", ExpectedVersion::any(), {event("Bad\nType")})}) ==
              AppendRejected::invalid_event);
        CHECK(rejected({to("s\xff", ExpectedVersion::any(), {event("A")})}) ==
              AppendRejected::invalid_event);
        CHECK(rejected({to("s", ExpectedVersion::any(), {with_metadata("agent\x01")})}) ==
              AppendRejected::invalid_event);
        CHECK(rejected({to("s", ExpectedVersion::any(), {with_metadata("\xc0\xaf")})}) ==
              AppendRejected::invalid_event);
        CHECK(rejected({to("s", ExpectedVersion::any(), {with_metadata(std::string(256, 'a'))})}) ==
              AppendRejected::invalid_event);
        // 20 events of 900 KB each: every event fits, the append does not.
        const std::string large = R"({"blob":")" + std::string(900 * 1000, 'x') + R"("})";
        CHECK(rejected({to("s", ExpectedVersion::any(),
                           std::vector<NewEvent>(20, event("Large", large)))}) ==
              AppendRejected::payload_too_large);
        CHECK(store->head_position() == 0);
        // Well-formed Unicode is stored and returned byte for byte.
        must_append(*store, {to("partner-\xc3\xa9", ExpectedVersion::any(),
                                {with_metadata("\xe2\x82\xac")})});
        CHECK(
            EventMetadata::from_json(store->read_stream("partner-\xc3\xa9").at(0).metadata).actor ==
            "\xe2\x82\xac");
        // Just under the limit is accepted.
        const std::string fits = R"({"blob":")" + std::string(1000 * 1000, 'x') + R"("})";
        must_append(*store, {to("s", ExpectedVersion::any(), {event("Fits", fits)})});
        CHECK(store->read_stream("s").at(0).data == fits);
    }

    TEST_CASE("the database refuses UPDATE, DELETE and TRUNCATE on the event log") {
        TestDatabase db(backend);
        auto store = db.open();
        must_append(*store, {to("s", ExpectedVersion::any(), {event("A")})});
        const auto update = db.exec_raw("UPDATE oe_events SET type = 'Forged'");
        REQUIRE(update.has_value());
        CHECK(update->find("append-only") != std::string::npos);
        const auto remove = db.exec_raw("DELETE FROM oe_events");
        REQUIRE(remove.has_value());
        CHECK(remove->find("append-only") != std::string::npos);
        if (backend == oe::test::Backend::postgresql) {
            const auto truncate = db.exec_raw("TRUNCATE oe_events");
            REQUIRE(truncate.has_value());
            CHECK(truncate->find("append-only") != std::string::npos);
        }
        CHECK(store->read_stream("s").at(0).type == "A");
    }

    TEST_CASE("projection checkpoint commits in the same transaction as the read model") {
        TestDatabase db(backend);
        auto store = db.open();
        CHECK(store->load_checkpoint("credit") == 0);
        store->commit_projection("credit", 0, 5, [](SqlTx& tx) {
            tx.exec(
                "CREATE TABLE test_read_model (partner_id TEXT PRIMARY KEY, exposure_idr BIGINT)");
            tx.exec("INSERT INTO test_read_model (partner_id, exposure_idr) VALUES ($1, $2)",
                    {std::string("P-1"), std::int64_t{1500}});
        });
        CHECK(store->load_checkpoint("credit") == 5);

        SUBCASE(
            "a failure while applying leaves both the read model and the checkpoint as they were") {
            CHECK_THROWS_AS(
                store->commit_projection("credit", 5, 9,
                                         [](SqlTx& tx) {
                                             tx.exec(
                                                 "UPDATE test_read_model SET exposure_idr = $1 "
                                                 "WHERE partner_id = $2",
                                                 {std::int64_t{99}, std::string("P-1")});
                                             throw std::runtime_error("crash mid-batch");
                                         }),
                std::runtime_error);
            CHECK(store->load_checkpoint("credit") == 5);
            CHECK(
                db.query_raw("SELECT exposure_idr FROM test_read_model WHERE partner_id = 'P-1'") ==
                "1500");
        }
        SUBCASE("reads inside the transaction see its own writes, with NULLs as nothing") {
            store->commit_projection("credit", 5, 6, [](SqlTx& tx) {
                tx.exec("INSERT INTO test_read_model (partner_id, exposure_idr) VALUES ($1, $2)",
                        {std::string("P-2"), nullptr});
                const auto rows = tx.query(
                    "SELECT partner_id, exposure_idr FROM test_read_model ORDER BY partner_id");
                REQUIRE(rows.size() == 2);
                CHECK(rows[0][1] == std::optional<std::string>("1500"));
                CHECK_FALSE(rows[1][1].has_value());
            });
            CHECK(store->load_checkpoint("credit") == 6);
        }
        SUBCASE(
            "a batch that does not start at the stored checkpoint is refused and applies nothing") {
            int applied = 0;
            // Another instance (or an in-doubt retry) already applied 5..9; this one must not.
            store->commit_projection("credit", 5, 9, [&](SqlTx&) { ++applied; });
            CHECK_THROWS_AS(store->commit_projection("credit", 5, 9, [&](SqlTx&) { ++applied; }),
                            CheckpointConflict);
            CHECK_THROWS_AS(store->commit_projection("credit", 4, 12, [&](SqlTx&) { ++applied; }),
                            CheckpointConflict);
            CHECK(applied == 1);
            CHECK(store->load_checkpoint("credit") == 9);
            CHECK_THROWS_AS(store->commit_projection("brand-new", 3, 4, [](SqlTx&) {}),
                            CheckpointConflict);
            CHECK(store->load_checkpoint("brand-new") == 0);
        }
        SUBCASE("a checkpoint never moves backwards") {
            CHECK_THROWS_AS(store->commit_projection("credit", 5, 4, [](SqlTx&) {}),
                            InvariantViolation);
            CHECK(store->load_checkpoint("credit") == 5);
        }
        SUBCASE("one statement per call, as on both backends") {
            CHECK_THROWS_AS(
                store->commit_projection(
                    "credit", 5, 6,
                    [](SqlTx& tx) {
                        tx.exec("DELETE FROM test_read_model; DELETE FROM test_read_model");
                    }),
                StoreError);
            CHECK(db.query_raw("SELECT COUNT(*) FROM test_read_model") == "1");
        }
    }

    TEST_CASE("event bus: committed events reach subscribers in order, rolled-back ones never") {
        TestDatabase db(backend);
        auto store = db.open();
        auto other_instance = db.open();
        must_append(*store, {to("before", ExpectedVersion::any(), {event("Old")})});
        EventBus bus(*store);
        std::mutex mutex;
        std::vector<std::string> placed;
        std::vector<std::int64_t> everything;
        bus.subscribe("OrderPlaced", [&](const RecordedEvent& e) {
            std::lock_guard lock(mutex);
            placed.push_back(e.stream_id);
        });
        bus.subscribe("", [&](const RecordedEvent& e) {
            std::lock_guard lock(mutex);
            everything.push_back(e.global_position);
            if (e.type == "Poison") {
                throw std::runtime_error("a faulty subscriber");
            }
        });
        bus.start();  // From the head: "Old" is not delivered.
        must_append(*store, {to("order-1", ExpectedVersion::any(), {event("OrderPlaced")})});
        must_append(*other_instance, {to("x", ExpectedVersion::any(), {event("Poison")})});
        // A transaction that writes and rolls back, bypassing the store.
        const std::string rolled_back =
            backend == oe::test::Backend::postgresql
                ? "BEGIN; SELECT * FROM oe_append_batch(ARRAY[2], ARRAY[2], ARRAY['order-ghost'], "
                  "ARRAY[-1]::bigint[], ARRAY[1], ARRAY['OrderPlaced'], ARRAY[1], "
                  "ARRAY['{}']::json[], ARRAY['{}']::json[]); ROLLBACK;"
                : "BEGIN; INSERT INTO oe_events VALUES (99, 'order-ghost', 1, 'OrderPlaced', 1, "
                  "'{}', '{}', 0); ROLLBACK;";
        CHECK_FALSE(db.exec_raw(rolled_back).has_value());
        must_append(*store, {to("order-2", ExpectedVersion::any(), {event("OrderPlaced")})});
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (bus.position() < 4 && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        bus.stop();
        std::lock_guard lock(mutex);
        CHECK(placed == std::vector<std::string>{"order-1", "order-2"});
        CHECK(everything == std::vector<std::int64_t>{2, 3, 4});
    }

    TEST_CASE("query reads what projections committed, with parameters and NULLs") {
        TestDatabase db(backend);
        auto store = db.open();
        store->commit_projection("q", 0, 1, [](SqlTx& tx) {
            tx.exec("CREATE TABLE test_query (k TEXT PRIMARY KEY, n BIGINT)");
            tx.exec("INSERT INTO test_query (k, n) VALUES ($1, $2), ($3, $4)",
                    {std::string("a"), std::int64_t{1}, std::string("b"), nullptr});
        });
        const auto rows = store->query("SELECT k, n FROM test_query WHERE k >= $1 ORDER BY k",
                                       {std::string("a")});
        REQUIRE(rows.size() == 2);
        CHECK(rows[0][0] == std::optional<std::string>("a"));
        CHECK(rows[0][1] == std::optional<std::string>("1"));
        CHECK_FALSE(rows[1][1].has_value());
        CHECK_THROWS_AS((void)store->query("SELECT nope FROM nowhere"), StoreError);
    }

    TEST_CASE("bulk inserts keep every row and value, across statements and a short last one") {
        TestDatabase db(backend);
        auto store = db.open();
        // 1,234 rows of 4 columns: several statements of 500 rows on SQLite, then 234.
        constexpr std::int64_t rows = 1234;
        std::vector<SqlValue> values;
        for (std::int64_t i = 0; i < rows; ++i) {
            values.emplace_back(fmt::format("k{:05}", i));
            values.emplace_back(i * 7);
            values.emplace_back(i % 3 == 0 ? SqlValue(nullptr) : SqlValue(fmt::format("n{}", i)));
            values.emplace_back(std::string(i % 2 == 0 ? "tab\there" : "it's \"quoted\""));
        }
        store->commit_projection("bulk", 0, 1, [&](SqlTx& tx) {
            tx.exec("CREATE TABLE test_bulk (k TEXT PRIMARY KEY, n BIGINT, note TEXT, t TEXT)");
            tx.insert_rows("test_bulk", {"k", "n", "note", "t"}, values);
            tx.insert_rows("test_bulk", {"k", "n", "note", "t"}, {});  // Nothing: no error.
        });
        const auto got = store->query("SELECT k, n, note, t FROM test_bulk ORDER BY k");
        REQUIRE(got.size() == static_cast<std::size_t>(rows));
        for (std::int64_t i = 0; i < rows; i += 97) {
            CAPTURE(i);
            const auto& row = got[static_cast<std::size_t>(i)];
            CHECK(row[0] == std::optional<std::string>(fmt::format("k{:05}", i)));
            CHECK(row[1] == std::optional<std::string>(std::to_string(i * 7)));
            CHECK(row[2] ==
                  (i % 3 == 0 ? std::nullopt : std::optional<std::string>(fmt::format("n{}", i))));
            CHECK(row[3] ==
                  std::optional<std::string>(i % 2 == 0 ? "tab\there" : "it's \"quoted\""));
        }
        CHECK(got.back()[0] == std::optional<std::string>("k01233"));
        // Values that do not fill whole rows are refused, and nothing is written.
        CHECK_THROWS(store->commit_projection("bulk", 1, 2, [&](SqlTx& tx) {
            tx.insert_rows("test_bulk", {"k", "n"}, {std::string("x")});
        }));
        CHECK(store->load_checkpoint("bulk") == 1);
    }

    TEST_CASE("a read snapshot sees one moment while others commit, across batches and scans") {
        TestDatabase db(backend);
        auto store = db.open();
        auto other = db.open();              // The live projector, in another process.
        constexpr std::int64_t rows = 5000;  // More than one batch of a cursor.
        std::vector<SqlValue> values;
        for (std::int64_t i = 0; i < rows; ++i) {
            values.emplace_back(fmt::format("k{:05}", i));
            values.emplace_back(i);
        }
        store->commit_projection("snap", 0, 1, [&](SqlTx& tx) {
            tx.exec("CREATE TABLE test_snap (k TEXT PRIMARY KEY, n BIGINT)");
            tx.insert_rows("test_snap", {"k", "n"}, values);
        });
        const auto change = [&](std::int64_t from) {
            other->commit_projection("snap", from, from + 1, [from](SqlTx& tx) {
                tx.exec("UPDATE test_snap SET n = n + 1000000");
                tx.exec("DELETE FROM test_snap WHERE k < 'k00100'");
                tx.exec("INSERT INTO test_snap (k, n) VALUES ($1, 1)", {fmt::format("zz{}", from)});
            });
        };
        const std::int64_t sum_before = rows * (rows - 1) / 2;
        auto snapshot = store->snapshot();
        change(1);  // Committed after the snapshot: invisible to it.
        std::int64_t seen = 0;
        std::int64_t sum = 0;
        snapshot->scan("SELECT k, n FROM test_snap", {}, [&](const SqlTx::RowView& row) {
            REQUIRE(row.size() == 2);
            if (seen++ == 0) {
                change(2);  // Mid-scan, between the first batch and the next ones.
            }
            sum += std::stoll(std::string(*row[1]));
        });
        CHECK(seen == rows);
        CHECK(sum == sum_before);
        // A second scan, with a parameter, sees the same moment.
        seen = 0;
        snapshot->scan("SELECT k FROM test_snap WHERE n >= $1", {std::int64_t{rows - 10}},
                       [&](const SqlTx::RowView&) { ++seen; });
        CHECK(seen == 10);
        CHECK(store->load_checkpoint("snap") == 3);  // The commits were not held up.
        CHECK(store->query("SELECT COUNT(*) FROM test_snap")[0][0] ==
              std::optional<std::string>(std::to_string(rows - 100 + 2)));

        // A failed scan is an error, and so is using the snapshot after it.
        CHECK_THROWS_AS(snapshot->scan("SELECT nope FROM nowhere", {}, [](const auto&) {}),
                        StoreError);
        CHECK_THROWS_AS(snapshot->scan("SELECT k FROM test_snap", {}, [](const auto&) {}),
                        StoreError);
        snapshot.reset();
        // Whatever connection it used reads the present again.
        for (int i = 0; i < 3; ++i) {
            CHECK(store->query("SELECT MIN(n) FROM test_snap WHERE k < 'zz'")[0][0] ==
                  std::optional<std::string>("2000100"));
        }
    }

    TEST_CASE("several projections move together or not at all") {
        TestDatabase db(backend);
        auto store = db.open();
        store->commit_projections({{"a", 0, 3}, {"b", 0, 3}}, [](SqlTx& tx) {
            tx.exec("CREATE TABLE test_together (k TEXT PRIMARY KEY)");
        });
        CHECK(store->load_checkpoint("a") == 3);
        CHECK(store->load_checkpoint("b") == 3);
        // "b" is not where this batch starts: nothing moves, nothing is written.
        CHECK_THROWS_AS(store->commit_projections(
                            {{"a", 3, 7}, {"b", 2, 7}},
                            [](SqlTx& tx) { tx.exec("INSERT INTO test_together VALUES ('x')"); }),
                        CheckpointConflict);
        CHECK(store->load_checkpoint("a") == 3);
        CHECK(db.query_raw("SELECT COUNT(*) FROM test_together") == "0");
    }

    TEST_CASE("held checkpoints: their projectors wait, in any instance; appends do not") {
        TestDatabase db(backend);
        auto store = db.open();
        auto other = db.open();  // Another process: checkout and a live projector.
        store->commit_projections({{"held", 0, 2}, {"free", 0, 2}}, [](SqlTx& tx) {
            tx.exec("CREATE TABLE test_held (k TEXT PRIMARY KEY)");
        });
        std::atomic<bool> projector_done{false};
        std::thread projector;
        std::int64_t appended_at = 0;
        store->with_checkpoints_held(
            {"held"},
            [&](const std::vector<std::int64_t>& positions) {
                REQUIRE(positions == std::vector<std::int64_t>{2});
                projector = std::thread([&] {
                    other->commit_projection("held", 2, 5, [](SqlTx& tx) {
                        tx.exec("INSERT INTO test_held VALUES ('projected')");
                    });
                    projector_done = true;
                });
                // Checkout goes on while held (on SQLite nothing holds the write lock now),
                // and so do other projections and writes without a checkpoint.
                appended_at =
                    must_append(*other, {to("held-1", ExpectedVersion::no_stream(), {event("E")})})
                        .last_position;
                other->commit_projection("free", 2, 3, [](SqlTx&) {});
                store->commit_projections(
                    {}, [](SqlTx& tx) { tx.exec("INSERT INTO test_held VALUES ('inspected')"); });
                std::this_thread::sleep_for(std::chrono::milliseconds(300));
                CHECK_FALSE(projector_done.load());
                CHECK(store->load_checkpoint("held") == 2);
                CHECK(db.query_raw("SELECT COUNT(*) FROM test_held") == "1");
            },
            [&](const std::vector<std::int64_t>& positions, SqlTx& tx) {
                CHECK(positions == std::vector<std::int64_t>{2});
                tx.exec("INSERT INTO test_held VALUES ('applied')");
                return std::vector<std::int64_t>{2};
            });
        projector.join();  // Released: the projector's batch went in after the hold.
        CHECK(projector_done.load());
        CHECK(appended_at == 1);
        CHECK(store->load_checkpoint("held") == 5);
        CHECK(store->load_checkpoint("free") == 3);
        CHECK(db.query_raw("SELECT COUNT(*) FROM test_held") == "3");

        // A hold whose inspection fails ends too, and its transaction never ran.
        CHECK_THROWS_AS(
            store->with_checkpoints_held(
                {"held"},
                [](const std::vector<std::int64_t>&) { throw oe::StoreError("cancelled"); },
                [](const std::vector<std::int64_t>& positions, SqlTx& tx) {
                    tx.exec("INSERT INTO test_held VALUES ('never')");
                    return positions;
                }),
            oe::StoreError);
        other->commit_projection("held", 5, 6, [](SqlTx&) {});
        CHECK(store->load_checkpoint("held") == 6);
        CHECK(db.query_raw("SELECT COUNT(*) FROM test_held") == "3");

        // With no transaction to run, the hold ends after the inspection; nothing moves.
        bool inspected = false;
        store->with_checkpoints_held({"held"},
                                     [&](const std::vector<std::int64_t>& positions) {
                                         CHECK(positions == std::vector<std::int64_t>{6});
                                         inspected = true;
                                     },
                                     {});
        CHECK(inspected);
        CHECK(store->load_checkpoint("held") == 6);
        other->commit_projection("held", 6, 7, [](SqlTx&) {});  // Not held any more.
        CHECK(store->load_checkpoint("held") == 7);
    }

    TEST_CASE("concurrent first commits of a new projection: exactly one applies the batch") {
        TestDatabase db(backend);
        auto a = db.open();
        auto b = db.open();
        std::atomic<int> applied{0};
        std::atomic<int> refused{0};
        auto run = [&](EventStore& store) {
            try {
                store.commit_projection("race", 0, 10, [&](SqlTx&) { ++applied; });
            } catch (const CheckpointConflict&) {
                ++refused;
            }
        };
        std::thread t1([&] { run(*a); });
        std::thread t2([&] { run(*b); });
        t1.join();
        t2.join();
        CHECK(a->load_checkpoint("race") == 10);
        CHECK(applied.load() == 1);
        CHECK(refused.load() == 1);
    }

    TEST_CASE("old event shapes are upcast on read and never rewritten") {
        TestDatabase db(backend);
        auto registry = std::make_shared<UpcasterRegistry>();
        // v1 had "price" in whole thousands; v2 has "base_price" in rupiah; v3 adds "currency".
        registry->add("ProductRegistered", 1, [](std::string_view data) {
            const auto at = data.find("\"price\":");
            const auto end = data.find('}', at);
            const auto thousands = std::stoll(std::string(data.substr(at + 8, end - at - 8)));
            return fmt::format(R"({{"base_price":{}}})", thousands * 1000);
        });
        registry->add("ProductRegistered", 2, [](std::string_view data) {
            std::string out(data);
            out.insert(out.size() - 1, R"(,"currency":"IDR")");
            return out;
        });
        auto store = db.open(registry);
        NewEvent old = event("ProductRegistered", R"({"price":125})");
        old.schema_version = 1;
        must_append(*store, {to("product-S-1", ExpectedVersion::any(), {old})});

        const auto read = store->read_stream("product-S-1");
        REQUIRE(read.size() == 1);
        CHECK(read[0].schema_version == 3);
        CHECK(read[0].data == R"({"base_price":125000,"currency":"IDR"})");
        CHECK(store->read_all(0, 10).at(0).data == read[0].data);
        // The stored row keeps its original shape.
        CHECK(db.query_raw("SELECT schema_version FROM oe_events") == "1");

        SUBCASE("a failing upcaster reports the event as corrupt, naming its position") {
            auto breaking = std::make_shared<UpcasterRegistry>();
            breaking->add("ProductRegistered", 1,
                          [](std::string_view) -> std::string { throw std::runtime_error("bad"); });
            auto strict = db.open(breaking);
            try {
                (void)strict->read_all(0, 10);
                FAIL("expected CorruptEvent");
            } catch (const CorruptEvent& e) {
                CHECK(e.position() == 1);
            }
        }
    }

    TEST_CASE("migrations are idempotent and a schema newer than the binary is refused") {
        TestDatabase db(backend);
        CHECK(app::migrate(db.url()) >= 1);
        CHECK(app::migrate(db.url()) >= 1);
        // A later binary recorded a migration this one does not know.
        const std::string future =
            backend == oe::test::Backend::postgresql
                ? "INSERT INTO oe_schema_migrations (version, name) VALUES (999, 'from the future')"
                : "INSERT INTO oe_schema_migrations VALUES (999, 'from the future', 0)";
        REQUIRE_FALSE(db.exec_raw(future).has_value());
        CHECK_THROWS_AS((void)db.open(), SchemaTooNew);
        CHECK_THROWS_AS(app::migrate(db.url()), SchemaTooNew);
    }

    TEST_CASE("migration 5 rewrites rm_orders' lines positionally, and only rows in the old form") {
        TestDatabase db(backend);
        const auto insert = [&](const std::string& table, const std::string& id,
                                const std::string& lines) {
            REQUIRE_FALSE(db.exec_raw("INSERT INTO " + table +
                                      " (order_id, partner_id, status, tier, lines, subtotal, "
                                      "loyalty_points, placed_at, placed_by, placed_position) "
                                      "VALUES ('" +
                                      id + "', 'P-1', 'placed', 'GOLD', '" + lines +
                                      "', 1, 0, '2026-11-28T00:00:00.000000Z', 'P-1', 1)")
                              .has_value());
        };
        // What versions before migration 5 wrote: the order view's form.
        insert("rm_orders", "O-1",
               R"([{"sku":"SERUM-30","qty":10,"base_price":100001,"unit_price":90001,)"
               R"("discount_bps":1000,"line_total":900010},{"sku":"TONER_100","qty":1,)"
               R"("base_price":55000,"unit_price":55000,"discount_bps":0,"line_total":55000}])");
        insert("rm_orders", "O-2", "[]");
        insert("rm_orders", "O-3", R"([["KEPT",1,2,3,4,5]])");
        insert("rm_orders_rebuild", "O-1",
               R"([{"sku":"A-1","qty":3,"base_price":7,"unit_price":7,"discount_bps":0,)"
               R"("line_total":21}])");
        // As if migration 5 had not run yet. (The runner applies what is above the highest
        // version recorded, so the later ones are undone too: PostgreSQL's 6 then runs again,
        // and must change nothing the second time.)
        const int latest = backend == oe::test::Backend::postgresql ? 6 : 5;
        REQUIRE_FALSE(
            db.exec_raw("DELETE FROM oe_schema_migrations WHERE version >= 5").has_value());
        CHECK_THROWS_AS((void)db.open(), StoreError);
        CHECK(app::migrate(db.url()) == latest);
        CHECK(db.query_raw("SELECT lines FROM rm_orders WHERE order_id = 'O-1'") ==
              R"([["SERUM-30",10,100001,90001,1000,900010],["TONER_100",1,55000,55000,0,55000]])");
        CHECK(db.query_raw("SELECT lines FROM rm_orders WHERE order_id = 'O-2'") == "[]");
        CHECK(db.query_raw("SELECT lines FROM rm_orders WHERE order_id = 'O-3'") ==
              R"([["KEPT",1,2,3,4,5]])");
        // What the last rebuild swapped out: emptied, as the next rebuild would.
        CHECK(db.query_raw("SELECT COUNT(*) FROM rm_orders_rebuild") == "0");
        CHECK(db.open() != nullptr);

        SUBCASE("a line missing a field fails the migration and changes nothing") {
            insert("rm_orders", "O-4",
                   R"([{"sku":"A-1","qty":3,"base_price":7,"unit_price":7,"discount_bps":0,)"
                   R"("line_total":21},{"sku":"B-2","qty":1,"base_price":5,"unit_price":5,)"
                   R"("discount_bps":0}])");
            insert("rm_orders", "O-5",
                   R"([{"sku":"C-3","qty":1,"base_price":5,"unit_price":5,"discount_bps":0,)"
                   R"("line_total":5}])");
            REQUIRE_FALSE(
                db.exec_raw("DELETE FROM oe_schema_migrations WHERE version >= 5").has_value());
            try {
                (void)app::migrate(db.url());
                FAIL("migrated a line without its line_total");
            } catch (const StoreError& e) {
                MESSAGE(std::string(e.what()));  // A NOT NULL violation on lines, on both backends.
                CHECK(std::string(e.what()).find("lines") != std::string::npos);
            }
            CHECK(db.query_raw("SELECT MAX(version) FROM oe_schema_migrations") == "4");
            CHECK(db.query_raw("SELECT lines FROM rm_orders WHERE order_id = 'O-4'") ==
                  R"([{"sku":"A-1","qty":3,"base_price":7,"unit_price":7,"discount_bps":0,)"
                  R"("line_total":21},{"sku":"B-2","qty":1,"base_price":5,"unit_price":5,)"
                  R"("discount_bps":0}])");
            CHECK(db.query_raw("SELECT lines FROM rm_orders WHERE order_id = 'O-5'") ==
                  R"([{"sku":"C-3","qty":1,"base_price":5,"unit_price":5,"discount_bps":0,)"
                  R"("line_total":5}])");
        }
        SUBCASE("a number that is not an integer fails the migration") {
            insert("rm_orders", "O-6",
                   R"([{"sku":"A-1","qty":1.5,"base_price":7,"unit_price":7,"discount_bps":0,)"
                   R"("line_total":21}])");
            REQUIRE_FALSE(
                db.exec_raw("DELETE FROM oe_schema_migrations WHERE version >= 5").has_value());
            CHECK_THROWS_AS((void)app::migrate(db.url()), StoreError);
            CHECK(db.query_raw("SELECT MAX(version) FROM oe_schema_migrations") == "4");
        }
    }

    TEST_CASE("an unmigrated database is refused with a hint to migrate") {
        TestDatabase db(backend, /*run_migrations=*/false);
        if (backend == oe::test::Backend::sqlite) {
            db.exec_raw("CREATE TABLE placeholder (x INTEGER)");
        }
        try {
            (void)db.open();
            FAIL("expected StoreError");
        } catch (const SchemaTooNew&) {
            FAIL("not newer, older");
        } catch (const StoreError& e) {
            CHECK(std::string(e.what()).find("migrate") != std::string::npos);
        }
    }

    TEST_CASE("recorded_at never goes backwards along the log") {
        TestDatabase db(backend);
        auto store = db.open();
        for (int i = 0; i < 50; ++i) {
            must_append(*store, {to("s", ExpectedVersion::any(), {event("E")})});
        }
        const auto all = store->read_all(0, 100);
        for (std::size_t i = 1; i < all.size(); ++i) {
            CHECK(all[i].recorded_at_us >= all[i - 1].recorded_at_us);
        }
    }

    TEST_CASE("concurrent optimistic writers on one stream never lose or duplicate a version") {
        TestDatabase db(backend);
        auto store = db.open();
        constexpr int threads = 8;
        constexpr int appends_per_thread = 40;
        std::atomic<int> conflicts{0};
        std::vector<std::thread> workers;
        for (int t = 0; t < threads; ++t) {
            workers.emplace_back([&, t] {
                for (int i = 0; i < appends_per_thread;) {
                    const auto version =
                        static_cast<std::int64_t>(store->read_stream("counter").size());
                    auto expected = version == 0 ? ExpectedVersion::no_stream()
                                                 : ExpectedVersion::exact(version);
                    auto r = store->append(
                        {to("counter", expected, {event("Inc", fmt::format(R"({{"t":{}}})", t))})});
                    if (r.ok()) {
                        ++i;
                    } else {
                        CHECK(r.error().reason == AppendRejected::wrong_expected_version);
                        ++conflicts;
                    }
                }
            });
        }
        for (auto& w : workers) {
            w.join();
        }
        const auto events = store->read_stream("counter");
        REQUIRE(events.size() == threads * appends_per_thread);
        for (std::size_t i = 0; i < events.size(); ++i) {
            CHECK(events[i].stream_version == static_cast<std::int64_t>(i + 1));
        }
        MESSAGE("conflicts retried: " << conflicts.load());
    }

    TEST_CASE("group commit: a conflict in one append never fails its neighbours") {
        TestDatabase db(backend);
        auto store = db.open();
        constexpr int threads = 8;
        constexpr int per_thread = 60;
        std::atomic<int> ok{0};
        std::atomic<int> conflicts{0};
        std::vector<std::thread> workers;
        for (int t = 0; t < threads; ++t) {
            workers.emplace_back([&, t] {
                for (int i = 0; i < per_thread; ++i) {
                    const std::string stream = fmt::format("s-{}-{}", t, i);
                    // Every third append is wrong on purpose: its stream does not exist yet.
                    const bool wrong = i % 3 == 0;
                    auto r = store->append({to(
                        stream, wrong ? ExpectedVersion::exact(3) : ExpectedVersion::no_stream(),
                        {event("A"), event("B")})});
                    if (r.ok()) {
                        CHECK(r.value().last_position == r.value().first_position + 1);
                        ++ok;
                    } else {
                        ++conflicts;
                    }
                }
            });
        }
        for (auto& w : workers) {
            w.join();
        }
        CHECK(conflicts.load() == threads * per_thread / 3);
        CHECK(ok.load() == threads * per_thread * 2 / 3);
        const auto all = read_everything(*store);
        REQUIRE(all.size() == static_cast<std::size_t>(ok.load() * 2));
        for (std::size_t i = 0; i < all.size(); ++i) {
            CHECK(all[i].global_position == static_cast<std::int64_t>(i + 1));
        }
    }

    TEST_CASE(
        "a subscription catches up from its checkpoint, then follows commits of another process") {
        TestDatabase db(backend);
        auto writer = db.open();  // Stands for another instance of the program.
        auto reader = db.open();
        for (int i = 0; i < 25; ++i) {
            must_append(*writer, {to("s", ExpectedVersion::any(), {event("E")})});
        }
        CatchUpSubscription subscription(*reader, /*after_position=*/10, /*batch_max=*/10);
        CHECK(positions(subscription.next(std::chrono::milliseconds(0))).front() == 11);
        CHECK(subscription.next(std::chrono::milliseconds(0)).size() == 5);
        CHECK(subscription.position() == 25);
        CHECK(subscription.next(std::chrono::milliseconds(50)).empty());

        std::thread later([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            append_in_thread(*writer, {to("s", ExpectedVersion::any(), {event("Late")})});
        });
        const auto started = std::chrono::steady_clock::now();
        const auto live = subscription.next(std::chrono::seconds(10));
        const auto waited = std::chrono::steady_clock::now() - started;
        later.join();
        REQUIRE(live.size() == 1);
        CHECK(live[0].type == "Late");
        CHECK(live[0].global_position == 26);
        CHECK(waited < std::chrono::seconds(2));

        SUBCASE("stop() wakes a waiting subscriber promptly") {
            std::thread stopper([&] {
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
                subscription.stop();
            });
            const auto t0 = std::chrono::steady_clock::now();
            CHECK(subscription.next(std::chrono::seconds(30)).empty());
            stopper.join();
            CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
        }
    }

    TEST_CASE("acknowledged appends survive the writer process being killed") {
        TestDatabase db(backend);
        int pipe_fds[2];
        REQUIRE(::pipe(pipe_fds) == 0);
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            // The child: four writers append and report every acknowledged position, then the
            // process dies without any cleanup while appends are still in flight.
            ::close(pipe_fds[0]);
            auto store = db.open();
            std::atomic<int> acked{0};
            std::vector<std::thread> writers;
            for (int t = 0; t < 4; ++t) {
                writers.emplace_back([&, t] {
                    for (int i = 0;; ++i) {
                        auto r = store->append(
                            {to(fmt::format("crash-{}", t), ExpectedVersion::any(), {event("E")})});
                        if (r.ok()) {
                            const std::int64_t position = r.value().last_position;
                            if (::write(pipe_fds[1], &position, sizeof position) !=
                                sizeof position) {
                                ::_exit(3);
                            }
                            if (++acked == 400) {
                                ::kill(::getpid(), SIGKILL);
                            }
                        }
                    }
                });
            }
            for (auto& w : writers) {
                w.join();
            }
            ::_exit(0);
        }
        ::close(pipe_fds[1]);
        std::set<std::int64_t> acknowledged;
        std::int64_t position = 0;
        while (::read(pipe_fds[0], &position, sizeof position) == sizeof position) {
            acknowledged.insert(position);
        }
        ::close(pipe_fds[0]);
        int status = 0;
        ::waitpid(child, &status, 0);
        CHECK(WIFSIGNALED(status));
        REQUIRE(acknowledged.size() >= 400);

        auto store = db.open();
        std::set<std::int64_t> stored;
        for (const auto& e : read_everything(*store)) {
            stored.insert(e.global_position);
        }
        for (const auto p : acknowledged) {
            REQUIRE_MESSAGE(stored.count(p) == 1, "acknowledged position " << p << " was lost");
        }
        // The log is still gap-free after the crash, and still appendable.
        CHECK(static_cast<std::int64_t>(stored.size()) == *stored.rbegin());
        must_append(*store, {to("after-crash", ExpectedVersion::no_stream(), {event("E")})});
    }

    TEST_CASE(
        "gap-free global order: a tailing reader never skips an event (8 writers, 2 instances)") {
        TestDatabase db(backend);
        auto instance_a = db.open();
        auto instance_b = db.open();
        auto tail_store = db.open();
        constexpr int writers = 8;
        constexpr int appends_per_writer = 400;
        std::atomic<bool> writing{true};

        std::vector<RecordedEvent> tailed;
        std::thread tailer([&] {
            CatchUpSubscription subscription(*tail_store, 0, 500);
            for (;;) {
                const bool was_writing = writing.load();
                auto batch = subscription.next(std::chrono::milliseconds(20));
                tailed.insert(tailed.end(), batch.begin(), batch.end());
                if (!was_writing && batch.empty()) {
                    return;
                }
            }
        });

        std::vector<std::thread> threads;
        for (int w = 0; w < writers; ++w) {
            threads.emplace_back([&, w] {
                EventStore& store = w % 2 == 0 ? *instance_a : *instance_b;
                for (int i = 0; i < appends_per_writer; ++i) {
                    // Mix single events, small batches and multi-stream appends.
                    std::vector<StreamAppend> streams{
                        to(fmt::format("w{}-{}", w, i % 7), ExpectedVersion::any(),
                           std::vector<NewEvent>(static_cast<std::size_t>(1 + i % 3), event("E")))};
                    if (i % 5 == 0) {
                        streams.push_back(to(fmt::format("shared-{}", i % 3),
                                             ExpectedVersion::any(), {event("S")}));
                    }
                    append_in_thread(store, std::move(streams));
                }
            });
        }

#if defined(OE_TEST_BACKEND_POSTGRESQL)
        // On PostgreSQL, also a long transaction and rolled-back transactions that call the append
        // function directly, the way another program (or a crash) would leave them.
        std::thread odd_transactions([&] {
            const std::string append =
                "SELECT * FROM oe_append_batch(ARRAY[2], ARRAY[2], ARRAY['long-tx'], "
                "ARRAY[-1]::bigint[], ARRAY[1], ARRAY['Long'], ARRAY[1], ARRAY['{}']::json[], "
                "ARRAY['{}']::json[]);";
            for (int round = 0; round < 5; ++round) {
                CHECK_FALSE(db.exec_raw("BEGIN; " + append + " SELECT pg_sleep(0.15); COMMIT;")
                                .has_value());
                CHECK_FALSE(db.exec_raw("BEGIN; " + append + " SELECT pg_sleep(0.05); ROLLBACK;")
                                .has_value());
            }
        });
        odd_transactions.join();
#endif

        for (auto& t : threads) {
            t.join();
        }
        writing.store(false);
        tailer.join();

        const auto full = read_everything(*tail_store);
        REQUIRE(full.size() >= writers * appends_per_writer);
        REQUIRE(tailed.size() == full.size());
        for (std::size_t i = 0; i < full.size(); ++i) {
            REQUIRE(tailed[i] == full[i]);
            REQUIRE(full[i].global_position == static_cast<std::int64_t>(i + 1));
        }
        MESSAGE("tailed " << tailed.size() << " events without a gap");
    }

}  // TEST_SUITE

namespace {

/// A tiny write model for the decision tests: account balances from Deposited / Withdrawn.
class Balances final : public DecisionState {
  public:
    std::int64_t position() const override { return position_; }
    void apply(const RecordedEvent& e) override {
        OE_INVARIANT(e.global_position > position_, "events arrive in order, once");
        position_ = e.global_position;
        const auto data = boost::json::parse(e.data).as_object();
        const std::string account(data.at("account").as_string());
        const auto amount = data.at("amount").as_int64();
        balance_[account] += e.type == "Deposited" ? amount : -amount;
        ++applied_;
    }
    void clear() override {
        position_ = 0;
        balance_.clear();
        ++clears_;
    }
    std::int64_t balance(const std::string& account) const {
        const auto found = balance_.find(account);
        return found == balance_.end() ? 0 : found->second;
    }
    int applied() const { return applied_; }

  private:
    std::int64_t position_ = 0;
    std::map<std::string, std::int64_t> balance_;
    int applied_ = 0;
    int clears_ = 0;
};

NewEvent money(const char* type, const std::string& account, std::int64_t amount) {
    return event(type, fmt::format(R"({{"account":"{}","amount":{}}})", account, amount));
}

}  // namespace

TEST_CASE("decide_and_append: the decision sees every committed event, from any instance") {
    TestDatabase db(backend);
    auto a = db.open();
    auto b = db.open();
    Balances state;
    // Plain appends through another instance: the state learns of them at the next decision.
    must_append(*b, {to("account-A", ExpectedVersion::any(), {money("Deposited", "A", 100)})});
    std::int64_t seen = -1;
    auto r = a->decide_and_append(state, [&]() -> std::vector<StreamAppend> {
        seen = state.balance("A");
        return {to("account-A", ExpectedVersion::any(), {money("Withdrawn", "A", 30)})};
    });
    REQUIRE(r.ok());
    CHECK(seen == 100);
    CHECK(r.value().first_position == 2);
    CHECK(state.balance("A") == 70);  // Its own event is applied at once.
    CHECK(state.position() == 2);

    SUBCASE("an empty decision appends nothing") {
        auto nothing = a->decide_and_append(state, [] { return std::vector<StreamAppend>{}; });
        REQUIRE(nothing.ok());
        CHECK(nothing.value().first_position == 0);
        CHECK(a->head_position() == 2);
    }
    SUBCASE("a decision that throws fails its caller alone and writes nothing") {
        CHECK_THROWS_AS(
            (void)a->decide_and_append(
                state, []() -> std::vector<StreamAppend> { throw std::logic_error("bug"); }),
            std::logic_error);
        CHECK(a->head_position() == 2);
        CHECK(a->decide_and_append(state, [&] {
                   return std::vector<StreamAppend>{
                       to("account-A", ExpectedVersion::any(), {money("Deposited", "A", 1)})};
               }).ok());
        CHECK(state.balance("A") == 71);
    }
    SUBCASE("an invalid decision is a typed rejection") {
        auto bad = a->decide_and_append(state, [] {
            return std::vector<StreamAppend>{to("s", ExpectedVersion::any(), {event("A", "[]")})};
        });
        REQUIRE_FALSE(bad.ok());
        CHECK(bad.error().reason == AppendRejected::invalid_event);
        CHECK(a->head_position() == 2);
    }
    SUBCASE("a state that lost its memory is rebuilt from the log") {
        state.clear();
        auto again = a->decide_and_append(state, [&] {
            seen = state.balance("A");
            return std::vector<StreamAppend>{};
        });
        CHECK(again.ok());
        CHECK(seen == 70);
    }
}

TEST_CASE("decide_and_append: a decision that takes an existing stream for new gets the conflict") {
    // The decision's state does not track stream "taken-1" (as the write model does not track
    // idempotency records); another instance wrote it. The conflict reaches this caller alone
    // (on PostgreSQL after the staged batch is rolled back and decided again), and the state
    // stays exact.
    TestDatabase db(backend);
    auto a = db.open();
    auto b = db.open();
    Balances state;
    must_append(*a, {to("account-A", ExpectedVersion::no_stream(), {money("Deposited", "A", 50)})});
    REQUIRE(a->decide_and_append(state, [] { return std::vector<StreamAppend>{}; }).ok());
    must_append(*b, {to("taken-1", ExpectedVersion::no_stream(), {money("Deposited", "T", 1)})});
    int runs = 0;
    auto conflict = a->decide_and_append(state, [&]() -> std::vector<StreamAppend> {
        ++runs;
        return {to("account-A", ExpectedVersion::exact(1), {money("Withdrawn", "A", 20)}),
                to("taken-1", ExpectedVersion::no_stream(), {money("Deposited", "T", 2)})};
    });
    REQUIRE_FALSE(conflict.ok());
    CHECK(conflict.error().reason == AppendRejected::wrong_expected_version);
    CHECK(conflict.error().stream_id == "taken-1");
    CHECK(a->head_position() == 2);  // Nothing of it was written.
    // PostgreSQL staged the append (one run), found the conflict, and decided again.
    CHECK(runs == (backend == oe::test::Backend::postgresql ? 2 : 1));
    // The next decision sees the log as it is: A still holds 50, T holds 1.
    auto next = a->decide_and_append(state, [&]() -> std::vector<StreamAppend> {
        return {to("account-A", ExpectedVersion::exact(1), {money("Withdrawn", "A", 20)})};
    });
    REQUIRE(next.ok());
    CHECK(next.value().first_position == 3);
    CHECK(state.balance("A") == 30);
    CHECK(state.balance("T") == 1);
    CHECK(state.position() == 3);
}

// DuckDB's money-conservation shape: many threads on two instances move money out of shared
// accounts; the decision refuses overdrafts; the invariant is checked on the log afterwards and
// by a reader while it runs.
TEST_CASE("decide_and_append under concurrency: no overdraft across two instances") {
    TestDatabase db(backend);
    auto instance_a = db.open();
    auto instance_b = db.open();
    constexpr int accounts = 3;
    constexpr std::int64_t deposit = 1000;
    for (int i = 0; i < accounts; ++i) {
        must_append(*instance_a, {to(fmt::format("account-{}", i), ExpectedVersion::no_stream(),
                                     {money("Deposited", std::to_string(i), deposit)})});
    }
    Balances state_a;
    Balances state_b;
    std::atomic<int> granted{0};
    std::atomic<int> refused{0};
    std::atomic<bool> done{false};
    std::atomic<std::int64_t> worst_seen{0};

    std::thread auditor([&] {
        auto reader = db.open();
        while (!done.load()) {
            std::map<std::string, std::int64_t> balances;
            for (const auto& e : read_everything(*reader)) {
                const auto data = boost::json::parse(e.data).as_object();
                const std::string account(data.at("account").as_string());
                const auto amount = data.at("amount").as_int64();
                balances[account] += e.type == "Deposited" ? amount : -amount;
            }
            for (const auto& [account, balance] : balances) {
                worst_seen = std::min(worst_seen.load(), balance);
            }
        }
    });
    std::vector<std::thread> workers;
    for (int t = 0; t < 8; ++t) {
        workers.emplace_back([&, t] {
            EventStore& store = t % 2 == 0 ? *instance_a : *instance_b;
            Balances& state = t % 2 == 0 ? state_a : state_b;
            for (int i = 0; i < 60; ++i) {
                const std::string account = std::to_string((t + i) % accounts);
                const std::int64_t amount = 7 + (i % 5) * 6;
                auto r = store.decide_and_append(state, [&]() -> std::vector<StreamAppend> {
                    if (state.balance(account) < amount) {
                        ++refused;
                        return {};
                    }
                    ++granted;
                    return {to("account-" + account, ExpectedVersion::any(),
                               {money("Withdrawn", account, amount)})};
                });
                CHECK(r.ok());
            }
        });
    }
    for (auto& w : workers) {
        w.join();
    }
    done = true;
    auditor.join();

    std::map<std::string, std::int64_t> final_balances;
    for (const auto& e : read_everything(*instance_a)) {
        const auto data = boost::json::parse(e.data).as_object();
        final_balances[std::string(data.at("account").as_string())] +=
            (e.type == "Deposited" ? 1 : -1) * data.at("amount").as_int64();
    }
    for (const auto& [account, balance] : final_balances) {
        CHECK(balance >= 0);
    }
    CHECK(worst_seen.load() >= 0);
    CHECK(granted.load() + refused.load() == 8 * 60);
    CHECK(refused.load() > 0);  // The limit was actually reached.
    MESSAGE("granted " << granted.load() << ", refused " << refused.load());
}

#if defined(OE_TEST_BACKEND_SQLITE)
TEST_CASE("sqlite: an append waits for another connection's write lock, up to the busy timeout") {
    TestDatabase db(backend);
    const std::string path = db.url().substr(std::string("sqlite://").size());
    oe::sqlite::SqliteOptions options;
    options.path = path;
    options.busy_timeout = std::chrono::milliseconds(400);
    auto store = oe::sqlite::open_event_store(options);
    sqlite3* other = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &other) == SQLITE_OK);
    const auto run = [other](const char* sql) {
        REQUIRE(sqlite3_exec(other, sql, nullptr, nullptr, nullptr) == SQLITE_OK);
    };
    using Clock = std::chrono::steady_clock;
    SUBCASE("released in time: the append waits for it and succeeds") {
        run("BEGIN IMMEDIATE");
        // No REQUIRE on the worker thread (its exception would escape the thread).
        std::atomic<int> committed{-1};
        std::thread release([other, &committed] {
            std::this_thread::sleep_for(std::chrono::milliseconds(150));
            committed = sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr);
        });
        const auto started = Clock::now();
        must_append(*store, {to("busy-1", ExpectedVersion::no_stream(), {event("A")})});
        const auto waited = Clock::now() - started;
        release.join();
        CHECK(committed == SQLITE_OK);
        CHECK(waited >= std::chrono::milliseconds(100));
        CHECK(store->head_position() == 1);
    }
    SUBCASE("held past the timeout: the append fails, writes nothing, and the store recovers") {
        run("BEGIN IMMEDIATE");
        const auto started = Clock::now();
        bool failed = false;
        try {
            failed =
                !store->append({to("busy-2", ExpectedVersion::no_stream(), {event("A")})}).ok();
        } catch (const StoreError&) {
            failed = true;
        }
        const auto waited = Clock::now() - started;
        CHECK(failed);
        CHECK(waited >= std::chrono::milliseconds(400));
        CHECK(waited < std::chrono::seconds(10));
        run("COMMIT");
        must_append(*store, {to("busy-2", ExpectedVersion::no_stream(), {event("A")})});
        CHECK(store->head_position() == 1);
    }
    sqlite3_close(other);
}

TEST_CASE("sqlite: the projector's big commits are checkpointed by the store's own thread") {
    TestDatabase db(backend);
    oe::metrics::Registry metrics;
    auto store = oe::app::open_store(db.url(), {}, &metrics);
    const auto& checkpoints = metrics.counter("sqlite_wal_checkpoints_total", "");
    // ~6 MB of read-model rows (as a rebuild's shadow write): past the WAL's 1,000 pages.
    const std::string pad(2000, 'x');
    store->commit_projection("big", 0, 1, [](SqlTx& tx) {
        tx.exec("CREATE TABLE test_big (k TEXT PRIMARY KEY, pad TEXT)");
    });
    for (int i = 0; i < 30; ++i) {
        store->commit_projection("big", i + 1, i + 2, [&](SqlTx& tx) {
            for (int j = 0; j < 100; ++j) {
                tx.exec("INSERT INTO test_big (k, pad) VALUES ($1, $2)",
                        {fmt::format("{}-{}", i, j), pad});
            }
        });
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (checkpoints.value() == 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(checkpoints.value() >= 1);
    CHECK(db.query_raw("SELECT COUNT(*) FROM test_big") == "3000");
    // Appends keep SQLite's own checkpoint (it lets the WAL start over between commits).
    // (A request made during the last round may still run one more: wait for quiet.)
    auto before = checkpoints.value();
    for (int quiet = 0; quiet < 30; ++quiet) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        const auto now = checkpoints.value();
        if (now == before) {
            break;
        }
        before = now;
    }
    const std::string payload = R"({"pad":")" + pad + R"("})";
    for (int i = 0; i < 30; ++i) {
        must_append(*store, {to(fmt::format("big-{}", i), ExpectedVersion::no_stream(),
                                std::vector<NewEvent>(100, event("Big", payload)))});
    }
    CHECK(store->head_position() == 3000);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    CHECK(checkpoints.value() == before);
}
#endif
