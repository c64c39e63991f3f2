#include "test_database.hpp"

#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <pqxx/pqxx>

#include <oe/app/store_factory.hpp>

namespace oe::test {

namespace {

std::atomic<int> counter{0};

std::string unique_name() {
    return fmt::format("oe_t_{}_{}_{}", ::getpid(), counter.fetch_add(1),
                       std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
}

}  // namespace

std::string pg_admin_url() {
    const char* url = std::getenv("OE_TEST_PG_ADMIN_URL");
    if (url == nullptr || *url == '\0') {
        FAIL(
            "OE_TEST_PG_ADMIN_URL is not set: run PostgreSQL tests through `make test` or "
            "`scripts/with-test-services ctest ...`");
    }
    return url;
}

std::string pg_url_for(const std::string& database, const std::optional<std::string>& user,
                       const std::optional<std::string>& password) {
    std::string admin = pg_admin_url();
    const auto slash = admin.rfind('/');
    REQUIRE(slash != std::string::npos);
    std::string base = admin.substr(0, slash);  // postgresql://user@host:port
    if (user) {
        const auto scheme_end = base.find("://") + 3;
        const auto at = base.find('@', scheme_end);
        const std::string host =
            at == std::string::npos ? base.substr(scheme_end) : base.substr(at + 1);
        base = base.substr(0, scheme_end) + *user + (password ? ":" + *password : "") + "@" + host;
    }
    return base + "/" + database;
}

void pg_admin_exec(const std::string& sql) {
    pqxx::connection conn(pg_admin_url());
    pqxx::nontransaction tx(conn);
    tx.exec(sql);
}

TestDatabase::TestDatabase(Backend backend, bool run_migrations) : backend_(backend) {
    if (backend == Backend::sqlite) {
        name_ = (std::filesystem::temp_directory_path() / (unique_name() + ".db")).string();
        url_ = "sqlite://" + name_;
    } else {
        name_ = unique_name();
        pg_admin_exec("CREATE DATABASE " + name_);
        url_ = pg_url_for(name_);
    }
    if (run_migrations) {
        app::migrate(url_);
    }
}

TestDatabase::~TestDatabase() {
    try {
        if (backend_ == Backend::sqlite) {
            std::error_code ignored;
            for (const char* suffix : {"", "-wal", "-shm"}) {
                std::filesystem::remove(name_ + suffix, ignored);
            }
        } else {
            pg_admin_exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
        }
    } catch (const std::exception&) {
        // Leaving a throwaway database behind is harmless; the server is throwaway too.
    }
}

std::unique_ptr<EventStore> TestDatabase::open(
    std::shared_ptr<const UpcasterRegistry> upcasters) const {
    return app::open_store(url_, std::move(upcasters));
}

std::optional<std::string> TestDatabase::exec_raw(const std::string& sql) const {
    if (backend_ == Backend::sqlite) {
        sqlite3* db = nullptr;
        sqlite3_open(name_.c_str(), &db);
        sqlite3_busy_timeout(db, 10'000);
        char* error = nullptr;
        const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
        std::optional<std::string> result;
        if (rc != SQLITE_OK) {
            result = error != nullptr ? error : "error";
        }
        sqlite3_free(error);
        sqlite3_close(db);
        return result;
    }
    try {
        pqxx::connection conn(url_);
        pqxx::nontransaction tx(conn);
        tx.exec(sql);
        return std::nullopt;
    } catch (const std::exception& e) {
        return std::string(e.what());
    }
}

std::string TestDatabase::query_raw(const std::string& sql) const {
    if (backend_ == Backend::sqlite) {
        sqlite3* db = nullptr;
        sqlite3_open(name_.c_str(), &db);
        sqlite3_stmt* stmt = nullptr;
        std::string out;
        if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
            sqlite3_step(stmt) == SQLITE_ROW) {
            const auto* text = sqlite3_column_text(stmt, 0);
            out = text != nullptr ? reinterpret_cast<const char*>(text) : "";
        }
        sqlite3_finalize(stmt);
        sqlite3_close(db);
        return out;
    }
    pqxx::connection conn(url_);
    pqxx::nontransaction tx(conn);
    const auto result = tx.exec(sql);
    return result.empty() || result[0][0].is_null() ? "" : result[0][0].c_str();
}

}  // namespace oe::test
