#pragma once

// Throwaway databases for tests: a temp SQLite file, or a fresh PostgreSQL database created
// through OE_TEST_PG_ADMIN_URL (set by scripts/with-test-services, which `make test` uses).

#include <memory>
#include <optional>
#include <string>

#include <oe/kernel/event_store.hpp>
#include <oe/kernel/upcaster.hpp>

namespace oe::test {

enum class Backend { sqlite, postgresql };

class TestDatabase {
  public:
    /// Creates an empty, migrated database.
    explicit TestDatabase(Backend backend, bool run_migrations = true);
    ~TestDatabase();
    TestDatabase(const TestDatabase&) = delete;
    TestDatabase& operator=(const TestDatabase&) = delete;

    [[nodiscard]] Backend backend() const { return backend_; }
    /// The DATABASE_URL of this database.
    [[nodiscard]] const std::string& url() const { return url_; }
    /// A fresh store on it (a second call simulates a second process on the same database).
    [[nodiscard]] std::unique_ptr<EventStore> open(
        std::shared_ptr<const UpcasterRegistry> upcasters = {}) const;
    /// Runs raw SQL as the owner, bypassing the store. Returns the error text, or nothing when
    /// the statement succeeded.
    std::optional<std::string> exec_raw(const std::string& sql) const;
    /// The first column of the first row of a raw query, as text.
    [[nodiscard]] std::string query_raw(const std::string& sql) const;

  private:
    Backend backend_;
    std::string url_;
    std::string name_;  // Database name (PostgreSQL) or file path (SQLite).
};

/// The admin URL of the test PostgreSQL server; fails the test with a clear message if unset.
[[nodiscard]] std::string pg_admin_url();
/// `admin_url` with its database name replaced by `database` (and user by `user`, if given).
[[nodiscard]] std::string pg_url_for(const std::string& database,
                                     const std::optional<std::string>& user = {},
                                     const std::optional<std::string>& password = {});
/// Runs SQL on the server's admin database.
void pg_admin_exec(const std::string& sql);

}  // namespace oe::test
