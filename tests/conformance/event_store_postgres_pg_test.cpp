// PostgreSQL-only behaviour of the event store: roles and grants, LISTEN/NOTIFY, concurrent
// migrations, session settings the store pins.

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <limits>
#include <thread>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <pqxx/pqxx>

#include <oe/app/store_factory.hpp>
#include <oe/event_store_postgres/postgres_event_store.hpp>
#include <oe/kernel/subscription.hpp>
#include <oe/kernel/time.hpp>

#include "support/test_database.hpp"

using namespace oe;

namespace {

std::optional<std::string> exec_as(const std::string& url, const std::string& sql) {
    try {
        pqxx::connection conn(url);
        pqxx::nontransaction tx(conn);
        tx.exec(sql);
        return std::nullopt;
    } catch (const std::exception& e) {
        return std::string(e.what());
    }
}

}  // namespace

TEST_CASE("application role: append and read yes; UPDATE, DELETE, TRUNCATE, DROP TRIGGER no") {
    const std::string suffix = std::to_string(::getpid());
    const std::string owner = "oe_owner_" + suffix;
    const std::string app_role = "oe_app_" + suffix;
    const std::string database = "oe_roles_" + suffix;
    test::pg_admin_exec(fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", database));
    test::pg_admin_exec(fmt::format("DROP ROLE IF EXISTS {}", owner));
    test::pg_admin_exec(fmt::format("DROP ROLE IF EXISTS {}", app_role));
    test::pg_admin_exec(fmt::format("CREATE ROLE {} LOGIN", owner));
    test::pg_admin_exec(fmt::format("CREATE ROLE {} LOGIN", app_role));
    test::pg_admin_exec(fmt::format("CREATE DATABASE {} OWNER {}", database, owner));
    test::pg_admin_exec(fmt::format("REVOKE ALL ON DATABASE {} FROM PUBLIC", database));
    test::pg_admin_exec(fmt::format("GRANT CONNECT ON DATABASE {} TO {}", database, app_role));
    const std::string owner_url = test::pg_url_for(database, owner);
    const std::string app_url = test::pg_url_for(database, app_role);

    // The application role alone cannot create the schema.
    CHECK_THROWS_AS(app::migrate(app_url), StoreError);
    CHECK(app::migrate(app_url, owner_url) >= 1);

    {
        auto store = app::open_store(app_url);
        NewEvent e{"PartnerRegistered", 1, R"({"partner_id":"P-1"})", {}};
        REQUIRE(
            store->append({StreamAppend{"partner-P-1", ExpectedVersion::no_stream(), {e}}}).ok());
        CHECK(store->read_all(0, 10).size() == 1);
        store->commit_projection("test", 0, 1, [](SqlTx&) {});
        CHECK(store->load_checkpoint("test") == 1);
    }

    for (const char* forbidden :
         {"UPDATE oe_events SET type = 'Forged'", "DELETE FROM oe_events", "TRUNCATE oe_events",
          "DROP TRIGGER oe_events_no_update_delete ON oe_events",
          "ALTER TABLE oe_events DISABLE TRIGGER ALL"}) {
        const auto error = exec_as(app_url, forbidden);
        REQUIRE_MESSAGE(error.has_value(), forbidden);
        CHECK_MESSAGE((error->find("permission denied") != std::string::npos ||
                       error->find("must be owner") != std::string::npos),
                      *error);
    }
    // The application role cannot insert around the append function (which takes the lock
    // that keeps the global order gap-free).
    const auto direct = exec_as(app_url,
                                "INSERT INTO oe_events VALUES (99, 's', 1, 'T', 1, '{}', '{}', "
                                "now())");
    REQUIRE(direct.has_value());
    CHECK(direct->find("permission denied") != std::string::npos);
    // serve migrates at start: as the application role on a current schema that is a no-op,
    // not a permission error.
    CHECK(app::migrate(app_url) >= 1);
    // Even the owner hits the trigger.
    const auto owner_update = exec_as(owner_url, "UPDATE oe_events SET type = 'Forged'");
    REQUIRE(owner_update.has_value());
    CHECK(owner_update->find("append-only") != std::string::npos);

    test::pg_admin_exec(fmt::format("DROP DATABASE {} WITH (FORCE)", database));
    test::pg_admin_exec(fmt::format("DROP ROLE {}", owner));
    test::pg_admin_exec(fmt::format("DROP ROLE {}", app_role));
}

TEST_CASE("LISTEN/NOTIFY wakes a waiting subscriber without relying on the poll") {
    test::TestDatabase db(test::Backend::postgresql);
    postgres::PostgresOptions options;
    options.url = db.url();
    options.poll_interval = std::chrono::minutes(10);  // Only a notification can wake it.
    auto reader = postgres::open_event_store(options);
    auto writer = db.open();
    CatchUpSubscription subscription(*reader, 0);
    CHECK(subscription.next(std::chrono::milliseconds(300)).empty());  // Listener is up.
    std::thread later([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        NewEvent e{"E", 1, "{}", {}};
        CHECK(writer->append({StreamAppend{"s", ExpectedVersion::any(), {e}}}).ok());
    });
    const auto started = std::chrono::steady_clock::now();
    const auto events = subscription.next(std::chrono::seconds(20));
    const auto waited = std::chrono::steady_clock::now() - started;
    later.join();
    CHECK(events.size() == 1);
    CHECK(waited < std::chrono::seconds(3));
}

TEST_CASE("a forged notification does not make a subscriber spin") {
    test::TestDatabase db(test::Backend::postgresql);
    auto store = db.open();
    CatchUpSubscription subscription(*store, 0);
    CHECK(subscription.next(std::chrono::milliseconds(200)).empty());
    CHECK_FALSE(db.exec_raw("NOTIFY oe_events, '9000000000'").has_value());
    const auto started = std::chrono::steady_clock::now();
    CHECK(subscription.next(std::chrono::milliseconds(1500)).empty());
    // It waited out its time instead of returning at once.
    CHECK(std::chrono::steady_clock::now() - started >= std::chrono::milliseconds(1400));
    CHECK(store->head_position() == 0);
}

TEST_CASE("concurrent migrations of a fresh database: one migrates, all succeed") {
    test::TestDatabase db(test::Backend::postgresql, /*run_migrations=*/false);
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
        threads.emplace_back([&] {
            try {
                if (app::migrate(db.url()) == postgres::latest_schema_version()) {
                    ++ok;
                }
            } catch (const std::exception& e) {
                MESSAGE("migrate failed: " << e.what());
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    CHECK(ok.load() == 4);
    CHECK(db.query_raw("SELECT COUNT(*) FROM oe_schema_migrations") ==
          std::to_string(postgres::latest_schema_version()));
}

TEST_CASE("the store pins the session settings its guarantees depend on") {
    test::TestDatabase db(test::Backend::postgresql);
    // A database whose defaults would break them.
    const std::string name = db.url().substr(db.url().rfind('/') + 1);
    test::pg_admin_exec("ALTER DATABASE " + name +
                        " SET default_transaction_isolation = 'serializable'");
    test::pg_admin_exec("ALTER DATABASE " + name + " SET synchronous_commit = off");
    test::pg_admin_exec("ALTER DATABASE " + name + " SET TimeZone = 'Asia/Jakarta'");
    auto store = db.open();
    std::vector<std::thread> writers;
    for (int t = 0; t < 4; ++t) {
        writers.emplace_back([&] {
            for (int i = 0; i < 50; ++i) {
                NewEvent e{"E", 1, "{}", {}};
                CHECK(store->append({StreamAppend{"hot", ExpectedVersion::any(), {e}}}).ok());
            }
        });
    }
    for (auto& w : writers) {
        w.join();
    }
    const auto events = store->read_all(0, 1000);
    REQUIRE(events.size() == 200);
    // recorded_at is read as UTC whatever the database's time zone.
    CHECK(std::llabs(events.back().recorded_at_us - now_us()) < 60'000'000);
}

TEST_CASE("a background store's server processes run at nice 19, the serving store's at 0") {
    test::TestDatabase db(test::Backend::postgresql);  // Migrated by a superuser.
    REQUIRE_MESSAGE(
        db.query_raw("SELECT count(*) FROM pg_extension WHERE extname = 'prioritize'") == "1",
        "migrate() creates the prioritize extension when the server has it "
        "(postgresql-15-prioritize: run scripts/bootstrap)");
    const auto priority_and_name = [](EventStore& store) {
        const auto rows = store.query(
            "SELECT get_backend_priority(pg_backend_pid()), current_setting('application_name')");
        REQUIRE(rows.size() == 1);
        return std::make_pair(rows[0][0].value_or(""), rows[0][1].value_or(""));
    };
    auto serving = app::open_store(db.url());
    CHECK(priority_and_name(*serving) ==
          std::make_pair(std::string("0"), std::string("orderengine")));
    auto background = app::open_store(db.url(), {}, nullptr, app::StoreUse::background);
    CHECK(priority_and_name(*background) ==
          std::make_pair(std::string("19"), std::string("orderengine-background")));
    // Every connection of its pool, not only the first: two at once.
    std::atomic<int> reniced{0};
    std::vector<std::thread> readers;
    for (int i = 0; i < 2; ++i) {
        readers.emplace_back([&] {
            const auto rows = background->query(
                "SELECT get_backend_priority(pg_backend_pid()) FROM pg_sleep(0.2)");
            reniced += rows.size() == 1 && rows[0][0] == "19" ? 1 : 0;
        });
    }
    for (auto& r : readers) {
        r.join();
    }
    CHECK(reniced.load() == 2);
    // The serving store's backends were left alone meanwhile.
    CHECK(priority_and_name(*serving).first == "0");
    // A hold of the background store runs at normal priority: others wait for it.
    background->with_checkpoints_held(
        {"nice_test"}, [](const std::vector<std::int64_t>&) {},
        [](const std::vector<std::int64_t>& positions, SqlTx& tx) {
            CHECK(tx.query("SELECT get_backend_priority(pg_backend_pid())")[0][0] ==
                  std::optional<std::string>("0"));
            return positions;
        });
}

TEST_CASE("a background store without the prioritize extension works at normal priority") {
    test::TestDatabase db(test::Backend::postgresql);
    REQUIRE_FALSE(db.exec_raw("DROP EXTENSION IF EXISTS prioritize").has_value());
    auto background = app::open_store(db.url(), {}, nullptr, app::StoreUse::background);
    NewEvent e{"E", 1, "{}", {}};
    REQUIRE(background->append({StreamAppend{"s-1", ExpectedVersion::any(), {e}}}).ok());
    CHECK(background->read_all(0, 10).size() == 1);
    CHECK(background->query("SELECT 1")[0][0] == "1");
}

TEST_CASE("after a bulk load the table is vacuumed and analysed, gently, by its owner") {
    test::TestDatabase db(test::Backend::postgresql);
    auto store = db.open();
    std::vector<SqlValue> values;
    for (int i = 0; i < 3000; ++i) {
        values.emplace_back(fmt::format("k{}", i));
    }
    store->commit_projections({}, [&](SqlTx& tx) {
        tx.exec("CREATE TABLE test_bulk (k TEXT PRIMARY KEY)");
        tx.insert_rows("test_bulk", {"k"}, values);
    });
    const auto stats = [&] {
        return store->query(
            "SELECT reltuples::bigint, relallvisible > 0 FROM pg_class WHERE relname = "
            "'test_bulk'")[0];
    };
    CHECK(stats()[0] == std::optional<std::string>("-1"));  // Never vacuumed nor analysed.
    store->after_bulk_load("test_bulk");
    CHECK(stats()[0] == std::optional<std::string>("3000"));
    CHECK(stats()[1] == std::optional<std::string>("t"));  // Its pages marked all-visible.
    for (int i = 0; i < 4; ++i) {  // Whichever pooled connection: the cost delay was reset.
        CHECK(store->query("SELECT current_setting('vacuum_cost_delay')")[0][0] ==
              std::optional<std::string>("0"));
    }
    CHECK_NOTHROW(store->after_bulk_load("no_such_table"));  // Housekeeping: nothing to do.
}

TEST_CASE("bulk inserts into one table share a COPY until something else runs") {
    test::TestDatabase db(test::Backend::postgresql);
    auto store = db.open();
    store->commit_projections({}, [&](SqlTx& tx) {
        tx.exec("CREATE TABLE test_copy_a (k TEXT PRIMARY KEY, n BIGINT, note TEXT)");
        tx.exec("CREATE TABLE test_copy_b (k TEXT PRIMARY KEY)");
    });
    store->commit_projections({}, [&](SqlTx& tx) {
        tx.insert_rows("test_copy_a", {"k", "n", "note"},
                       {std::string("a1"), std::int64_t{-1}, std::string("\ttab\there\r\\")});
        tx.insert_rows("test_copy_a", {"k", "n", "note"},
                       {std::string("a2"), std::int64_t{2}, nullptr});
        // A read in the same transaction sees both (it ends the COPY first).
        CHECK(tx.query("SELECT count(*) FROM test_copy_a")[0][0] ==
              std::optional<std::string>("2"));
        tx.insert_rows("test_copy_a", {"k", "n", "note"},
                       {std::string("a3"), std::int64_t{3}, std::string("back\\slash\nline")});
        tx.insert_rows("test_copy_b", {"k"}, {std::string("b1")});  // Another table.
        tx.insert_rows("test_copy_a", {"k", "n"}, {std::string("a4"), std::int64_t{4}});
        // The transaction ends with a COPY open: the commit must end it first.
    });
    const auto rows = store->query("SELECT k, n, note FROM test_copy_a ORDER BY k");
    REQUIRE(rows.size() == 4);
    CHECK(rows[0][1] == std::optional<std::string>("-1"));
    CHECK(rows[0][2] == std::optional<std::string>("\ttab\there\r\\"));
    CHECK(rows[1][2] == std::nullopt);
    CHECK(rows[2][2] == std::optional<std::string>("back\\slash\nline"));
    CHECK(rows[3][1] == std::optional<std::string>("4"));
    CHECK(store->query("SELECT k FROM test_copy_b").size() == 1);

    // A row the COPY refuses fails the transaction (at the latest when it commits), and
    // nothing of it stays.
    CHECK_THROWS(store->commit_projections({}, [&](SqlTx& tx) {
        tx.insert_rows("test_copy_b", {"k"}, {std::string("b2")});
        tx.insert_rows("test_copy_b", {"k"}, {std::string("b1")});  // Duplicate key.
    }));
    CHECK(store->query("SELECT k FROM test_copy_b").size() == 1);
}

TEST_CASE("events read in binary format are what the server holds, field by field") {
    test::TestDatabase db(test::Backend::postgresql);
    auto store = db.open();
    EventMetadata meta;
    meta.actor = "agent-7";
    meta.trace_id = "t\"1\\";
    for (int i = 0; i < 30; ++i) {
        NewEvent e{i % 2 == 0 ? "OrderPlaced" : "OrderRouted",
                   static_cast<std::uint16_t>(1 + i % 3),
                   fmt::format(R"({{"n":{},"note":"caf\u00e9 \u2713 tab\t \"q\" \\ {}"}})", i,
                               std::string(static_cast<std::size_t>(i) * 100, 'x')),
                   meta};
        REQUIRE(store
                    ->append(
                        {StreamAppend{fmt::format("order-{}", i % 4), ExpectedVersion::any(), {e}}})
                    .ok());
    }
    const auto held = store->query(
        "SELECT global_position, stream_id, stream_version, type, schema_version, data::text, "
        "metadata::text, (extract(epoch FROM recorded_at) * 1000000)::bigint FROM oe_events "
        "ORDER BY global_position");
    const auto same = [](const RecordedEvent& e, const SqlRow& row) {
        CAPTURE(e.global_position);
        CHECK(row[0] == std::optional<std::string>(std::to_string(e.global_position)));
        CHECK(row[1] == std::optional<std::string>(e.stream_id));
        CHECK(row[2] == std::optional<std::string>(std::to_string(e.stream_version)));
        CHECK(row[3] == std::optional<std::string>(e.type));
        CHECK(row[4] == std::optional<std::string>(std::to_string(e.schema_version)));
        CHECK(row[5] == std::optional<std::string>(e.data));
        CHECK(row[6] == std::optional<std::string>(e.metadata));
        CHECK(row[7] == std::optional<std::string>(std::to_string(e.recorded_at_us)));
    };
    const auto all = store->read_all(0, 1000);
    REQUIRE(all.size() == 30);
    REQUIRE(held.size() == 30);
    for (std::size_t i = 0; i < all.size(); ++i) {
        same(all[i], held[i]);
    }
    CHECK(all[5].recorded_at_us > 1'700'000'000'000'000);  // After 2023: the epochs line up.
    const auto stream = store->read_stream("order-1", 3, 100);
    REQUIRE(stream.size() == 6);  // Versions 3..8 of order-1 (i = 9, 13, ..., 29).
    CHECK(stream.front().stream_version == 3);
    for (const auto& e : stream) {
        same(e, held[static_cast<std::size_t>(e.global_position - all.front().global_position)]);
    }

    // A statement gone from the session (DEALLOCATE) is prepared again. The pool hands back
    // the connection used last, so the next read runs where the statement was dropped.
    store->query("DEALLOCATE oe_read_all_binary");
    CHECK(store->read_all(10, 5).size() == 5);
    CHECK(store->read_all(10, 5).front().global_position == all[10].global_position);
    // The other statement, still in the session, serves on; dropped too, it is prepared again.
    // (By name: DEALLOCATE ALL would drop libpqxx's statements on the connection too.)
    CHECK(store->read_stream("order-1", 3, 100).size() == 6);
    store->query("DEALLOCATE oe_read_stream_binary");
    CHECK(store->read_stream("order-1", 3, 100).size() == 6);
    CHECK(store->read_all(10, 5).size() == 5);
}

TEST_CASE("bulk inserts travel as binary COPY into integer and text columns, as text otherwise") {
    test::TestDatabase db(test::Backend::postgresql);
    auto store = db.open();
    store->commit_projections({}, [&](SqlTx& tx) {
        tx.exec(
            "CREATE TABLE test_bin (k TEXT PRIMARY KEY, big BIGINT, mid INTEGER, small SMALLINT, "
            "v VARCHAR(40), t TEXT)");
        tx.exec("CREATE TABLE test_other (k TEXT PRIMARY KEY, b BOOLEAN, n NUMERIC)");
    });
    const std::string awkward = "tab\there\nnew line\\ \"q\" caf\xc3\xa9 \xe2\x9c\x93";
    store->commit_projections({}, [&](SqlTx& tx) {
        tx.insert_rows("test_bin", {"k", "big", "mid", "small", "v", "t"},
                       {std::string("a"), std::numeric_limits<std::int64_t>::min(),
                        std::int64_t{2147483647}, std::int64_t{-32768}, std::string("x"), awkward,
                        // Numbers given as text go into integer columns, and the other way.
                        std::string("b"), std::string("-42"), std::int64_t{-2147483648},
                        std::int64_t{32767}, std::int64_t{7}, std::int64_t{-1234567890123},
                        std::string("c"), nullptr, nullptr, nullptr, nullptr, std::string()});
        // A type the binary path does not write: the whole COPY goes as text.
        tx.insert_rows("test_other", {"k", "b", "n"},
                       {std::string("o"), std::string("t"), std::string("12.50")});
    });
    const auto rows = store->query("SELECT k, big, mid, small, v, t FROM test_bin ORDER BY k");
    REQUIRE(rows.size() == 3);
    CHECK(rows[0] == SqlRow{"a", "-9223372036854775808", "2147483647", "-32768", "x", awkward});
    CHECK(rows[1] == SqlRow{"b", "-42", "-2147483648", "32767", "7", "-1234567890123"});
    CHECK(rows[2] == SqlRow{"c", std::nullopt, std::nullopt, std::nullopt, std::nullopt, ""});
    CHECK(store->query("SELECT k, b, n FROM test_other") ==
          std::vector<SqlRow>{{"o", "t", "12.50"}});

    // A value its column cannot hold fails the transaction with the column named, and nothing
    // of it stays.
    const auto fails_with = [&](std::vector<SqlValue> row, const std::string& expected) {
        CAPTURE(expected);
        try {
            store->commit_projections({}, [&](SqlTx& tx) {
                tx.insert_rows("test_bin", {"k", "big", "mid", "small", "v", "t"},
                               {std::string("d"), std::int64_t{1}, std::int64_t{1}, std::int64_t{1},
                                std::string("fine"), std::string("fine")});
                tx.insert_rows("test_bin", {"k", "big", "mid", "small", "v", "t"}, row);
            });
            FAIL("the commit went through");
        } catch (const StoreError& e) {
            CHECK(std::string(e.what()).find(expected) != std::string::npos);
        }
        CHECK(store->query("SELECT k FROM test_bin").size() == 3);
    };
    fails_with({std::string("e"), nullptr, std::int64_t{2147483648}, nullptr, nullptr, nullptr},
               "2147483648 is out of range for test_bin.mid (32-bit)");
    fails_with({std::string("e"), nullptr, nullptr, std::int64_t{-32769}, nullptr, nullptr},
               "-32769 is out of range for test_bin.small (16-bit)");
    fails_with({std::string("e"), std::string("12x"), nullptr, nullptr, nullptr, nullptr},
               "test_bin.big takes an integer, not '12x'");
    fails_with({std::string("e"), nullptr, nullptr, nullptr, std::string(41, 'v'), nullptr},
               "value too long for type character varying(40)");  // The server's check.
    fails_with({std::string("a"), nullptr, nullptr, nullptr, nullptr, nullptr},
               "duplicate key value");
    fails_with({std::string("e"), nullptr, nullptr, nullptr, nullptr, std::string("bad\xff")},
               "invalid byte sequence");

    // A transaction that fails while its COPY is open rolls back, and the connection serves
    // the next ones (more of them than the pool has connections).
    CHECK_THROWS_WITH(
        store->commit_projections({},
                                  [&](SqlTx& tx) {
                                      tx.insert_rows("test_bin", {"k"}, {std::string("f")});
                                      throw std::runtime_error("the projection failed mid-batch");
                                  }),
        doctest::Contains("the projection failed mid-batch"));
    for (int i = 0; i < 12; ++i) {
        store->commit_projections(
            {}, [&](SqlTx& tx) { tx.insert_rows("test_bin", {"k"}, {fmt::format("g{:02}", i)}); });
    }
    CHECK(store->query("SELECT count(*) FROM test_bin WHERE k = 'f'")[0][0] ==
          std::optional<std::string>("0"));

    // Column types are kept per store: a table made again with other types costs at most one
    // failed transaction (the kept types are forgotten when a COPY into the table fails).
    store->commit_projections({}, [&](SqlTx& tx) {
        tx.exec("CREATE TABLE test_retype (k TEXT PRIMARY KEY, n INTEGER)");
        tx.insert_rows("test_retype", {"k", "n"}, {std::string("a"), std::int64_t{1}});
    });
    store->commit_projections({}, [&](SqlTx& tx) {
        tx.exec("DROP TABLE test_retype");
        tx.exec("CREATE TABLE test_retype (k TEXT PRIMARY KEY, n BIGINT)");
    });
    const auto big_row = [&](SqlTx& tx) {
        tx.insert_rows("test_retype", {"k", "n"}, {std::string("b"), std::int64_t{1} << 40});
    };
    CHECK_THROWS_WITH(store->commit_projections({}, big_row),
                      doctest::Contains("out of range for test_retype.n (32-bit)"));
    store->commit_projections({}, big_row);
    CHECK(store->query("SELECT n FROM test_retype")[0][0] ==
          std::optional<std::string>("1099511627776"));
    CHECK(store->query("SELECT count(*) FROM test_bin")[0][0] == std::optional<std::string>("15"));
}

TEST_CASE("a connection lost in the middle of a binary COPY fails the commit as lost") {
    test::TestDatabase db(test::Backend::postgresql);
    auto store = db.open();
    store->commit_projections(
        {}, [&](SqlTx& tx) { tx.exec("CREATE TABLE test_lost (k TEXT PRIMARY KEY, n BIGINT)"); });
    try {
        store->commit_projections({}, [&](SqlTx& tx) {
            const auto pid = tx.query("SELECT pg_backend_pid()")[0][0].value_or("0");
            tx.insert_rows("test_lost", {"k", "n"}, {std::string("a"), std::int64_t{1}});
            CHECK(exec_as(db.url(), "SELECT pg_terminate_backend(" + pid + ", 10000)") ==
                  std::nullopt);
            std::vector<SqlValue> more;
            for (int i = 0; i < 20000; ++i) {  // Enough to reach the dead socket.
                more.emplace_back(fmt::format("b{}", i));
                more.emplace_back(std::int64_t{i});
            }
            tx.insert_rows("test_lost", {"k", "n"}, more);
        });
        FAIL("the commit went through");
    } catch (const StoreError& e) {
        CHECK(std::string(e.what()).find("connection lost") != std::string::npos);
    }
    // The broken connection left the pool; the store goes on with a new one.
    CHECK(store->query("SELECT count(*) FROM test_lost")[0][0] == std::optional<std::string>("0"));
}

TEST_CASE("indexes deferred during a bulk load are built again with the same definitions") {
    test::TestDatabase db(test::Backend::postgresql);
    auto store = db.open();
    store->commit_projections({}, [&](SqlTx& tx) {
        tx.exec("CREATE TABLE test_defer (k TEXT PRIMARY KEY, p TEXT NOT NULL, u TEXT UNIQUE)");
        tx.exec("CREATE INDEX test_defer_by_p ON test_defer (p, k)");
        tx.exec("CREATE INDEX \"Test Defer Partial\" ON test_defer (u) WHERE u IS NOT NULL");
        // A key another table's foreign key needs stays (dropping it would fail).
        tx.exec(
            "CREATE TABLE test_defer_ref (k TEXT PRIMARY KEY, "
            "u TEXT REFERENCES test_defer (u))");
    });
    const auto definitions = [&] {
        return store->query(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid), indisprimary, "
            "indisunique FROM pg_index WHERE indrelid = 'test_defer'::regclass ORDER BY 1");
    };
    const auto before = definitions();
    REQUIRE(before.size() == 4);
    const auto count_indexes = [](SqlTx& tx) {
        return tx.query("SELECT count(*) FROM pg_index WHERE indrelid = 'test_defer'::regclass")
            .at(0)
            .at(0);
    };
    std::vector<SqlValue> values;
    for (int i = 0; i < 2000; ++i) {
        values.emplace_back(fmt::format("k{:05}", i));
        values.emplace_back(fmt::format("p{}", i % 7));
        values.emplace_back(i % 2 == 0 ? SqlValue{fmt::format("u{}", i)} : SqlValue{nullptr});
    }
    store->commit_projections({}, [&](SqlTx& tx) {
        const auto build_again = store->defer_indexes(tx, {"test_defer", "no_such_table"});
        // Only the unique key the foreign key references is left while the rows go in.
        CHECK(count_indexes(tx) == std::optional<std::string>("1"));
        tx.insert_rows("test_defer", {"k", "p", "u"}, values);
        build_again(tx);
        CHECK(count_indexes(tx) == std::optional<std::string>("4"));
    });
    CHECK(definitions() == before);
    CHECK(store->query("SELECT count(*) FROM test_defer")[0][0] ==
          std::optional<std::string>("2000"));
    // The primary key is a constraint again (not a bare unique index): a duplicate is refused.
    CHECK_THROWS(store->commit_projections(
        {}, [](SqlTx& tx) { tx.exec("INSERT INTO test_defer VALUES ('k00000', 'p', NULL)"); }));

    // A transaction that fails after the indexes went leaves them all in place.
    CHECK_THROWS(store->commit_projections({}, [&](SqlTx& tx) {
        (void)store->defer_indexes(tx, {"test_defer"});
        CHECK(count_indexes(tx) == std::optional<std::string>("1"));
        throw StoreError("the rebuild died midway");
    }));
    CHECK(definitions() == before);
}

TEST_CASE("the application role's background store renices its own backends") {
    const std::string suffix = std::to_string(::getpid());
    const std::string app_role = "oe_bg_app_" + suffix;
    test::TestDatabase db(test::Backend::postgresql);
    test::pg_admin_exec(fmt::format("DROP ROLE IF EXISTS {}", app_role));
    test::pg_admin_exec(fmt::format("CREATE ROLE {} LOGIN", app_role));
    const std::string name = db.url().substr(db.url().rfind('/') + 1);
    const std::string app_url = test::pg_url_for(name, app_role);
    CHECK(app::migrate(app_url, db.url()) >= 1);  // Grants; the extension is there already.
    {
        auto background = app::open_store(app_url, {}, nullptr, app::StoreUse::background);
        CHECK(background->query("SELECT get_backend_priority(pg_backend_pid())")[0][0] == "19");
        // Not the owner of the read models: no VACUUM (it would only warn), no error.
        CHECK_NOTHROW(background->after_bulk_load("rm_orders_rebuild"));
        CHECK(background->query("SELECT reltuples::bigint FROM pg_class WHERE relname = "
                                "'rm_orders_rebuild'")[0][0] == std::optional<std::string>("-1"));
    }
    REQUIRE_FALSE(db.exec_raw(fmt::format("DROP OWNED BY {}", app_role)).has_value());
    test::pg_admin_exec(fmt::format("DROP ROLE {}", app_role));
}

TEST_CASE("a read snapshot checksums a table in the server: order-blind, every value counts") {
    test::TestDatabase db(test::Backend::postgresql);
    auto store = db.open();
    store->commit_projections({}, [&](SqlTx& tx) {
        for (const char* table : {"test_sum_a", "test_sum_b", "test_sum_c", "test_sum_d"}) {
            tx.exec(
                fmt::format("CREATE TABLE {} (k TEXT PRIMARY KEY, n BIGINT, i INTEGER, "
                            "note TEXT)",
                            table));
        }
        tx.exec("CREATE TABLE test_sum_json (k TEXT PRIMARY KEY, doc JSON)");
        tx.exec("CREATE TABLE test_sum_empty (k TEXT PRIMARY KEY)");
        // a and b: the same rows, inserted in opposite orders; c: two rows' n swapped;
        // d: one note NULL instead of empty.
        for (int i = 0; i < 3000; ++i) {
            const std::vector<SqlValue> row{fmt::format("k{:04}", i), std::int64_t{i} * 1000,
                                            std::int64_t{i % 7}, std::string("")};
            tx.insert_rows("test_sum_a", {"k", "n", "i", "note"}, row);
            tx.insert_rows("test_sum_c", {"k", "n", "i", "note"}, row);
            tx.insert_rows("test_sum_d", {"k", "n", "i", "note"}, row);
        }
        for (int i = 2999; i >= 0; --i) {
            tx.insert_rows("test_sum_b", {"k", "n", "i", "note"},
                           {fmt::format("k{:04}", i), std::int64_t{i} * 1000, std::int64_t{i % 7},
                            std::string("")});
        }
        tx.exec(
            "UPDATE test_sum_c SET n = CASE k WHEN 'k0001' THEN 2000 ELSE 1000 END "
            "WHERE k IN ('k0001', 'k0002')");
        tx.exec("UPDATE test_sum_d SET note = NULL WHERE k = 'k0010'");
        tx.exec("INSERT INTO test_sum_json VALUES ('a', '{\"x\":1}')");
    });
    auto snapshot = store->snapshot();
    const auto a = snapshot->checksum_in_database("test_sum_a");
    const auto b = snapshot->checksum_in_database("test_sum_b");
    const auto c = snapshot->checksum_in_database("test_sum_c");
    const auto d = snapshot->checksum_in_database("test_sum_d");
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE(c);
    REQUIRE(d);
    CHECK(a->rows == 3000);
    CHECK(a->checksum.rfind("pg-rowhash64-sum:", 0) == 0);
    CHECK(a->checksum == b->checksum);
    CHECK(c->rows == 3000);
    CHECK(c->checksum != a->checksum);
    CHECK(d->checksum != a->checksum);
    // JSON has no hash function: the caller hashes the rows itself, and the snapshot still
    // answers.
    CHECK_FALSE(snapshot->checksum_in_database("test_sum_json"));
    const auto empty = snapshot->checksum_in_database("test_sum_empty");
    REQUIRE(empty);
    CHECK(empty->rows == 0);
    CHECK(empty->checksum == "pg-rowhash64-sum:0000000000000000");
    // A change committed after the snapshot is not in its checksum.
    store->commit_projections(
        {}, [&](SqlTx& tx) { tx.exec("UPDATE test_sum_a SET n = n + 1 WHERE k = 'k0000'"); });
    CHECK(snapshot->checksum_in_database("test_sum_a")->checksum == a->checksum);
    CHECK(store->snapshot()->checksum_in_database("test_sum_a")->checksum != a->checksum);
    CHECK_THROWS_AS(snapshot->checksum_in_database("no_such_table"), StoreError);
}
