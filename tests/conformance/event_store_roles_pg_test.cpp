// PostgreSQL only: migrations run as the owner; the application role can append and read but
// has no UPDATE, DELETE or TRUNCATE on the event log, and cannot remove the guard triggers.

#include <unistd.h>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <pqxx/pqxx>

#include <oe/app/store_factory.hpp>

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
        store->commit_projection("test", 1, [](SqlTx&) {});
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
    // Even the owner hits the trigger.
    const auto owner_update = exec_as(owner_url, "UPDATE oe_events SET type = 'Forged'");
    REQUIRE(owner_update.has_value());
    CHECK(owner_update->find("append-only") != std::string::npos);

    test::pg_admin_exec(fmt::format("DROP DATABASE {} WITH (FORCE)", database));
    test::pg_admin_exec(fmt::format("DROP ROLE {}", owner));
    test::pg_admin_exec(fmt::format("DROP ROLE {}", app_role));
}
