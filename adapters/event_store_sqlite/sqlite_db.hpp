#pragma once

// Thin RAII wrappers over the SQLite C API, private to this adapter.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace oe::sqlite {

class Statement {
  public:
    Statement(sqlite3* db, std::string_view sql);
    ~Statement();
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    void bind(int index, std::int64_t value);
    void bind(int index, std::string_view text);
    void bind_null(int index);
    /// Steps once: true when a row is ready, false when done. Throws StoreError on failure.
    bool step();
    /// Resets for the next execution and clears bindings.
    void reset();

    [[nodiscard]] std::int64_t column_int64(int index) const;
    [[nodiscard]] std::string_view column_text(int index) const;
    [[nodiscard]] bool column_is_null(int index) const;
    /// The column's storage class in this row (SQLITE_INTEGER, SQLITE_TEXT, SQLITE_NULL, ...).
    [[nodiscard]] int column_type(int index) const;
    [[nodiscard]] int column_count() const;

  private:
    sqlite3* db_;
    sqlite3_stmt* stmt_ = nullptr;
};

class Database {
  public:
    /// Opens an existing file (create = false) or creates it when missing.
    explicit Database(const std::string& path, bool create = false);
    ~Database();
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;

    void exec(const char* sql);
    /// A prepared statement cached by its SQL text for the life of the connection.
    Statement& cached(std::string_view sql);
    /// INSERT INTO table (columns) VALUES (?, …), … for `rows` rows, cached like `cached`
    /// but found by table, columns and row count (its text is tens of kilobytes).
    Statement& cached_insert(const std::string& table, const std::vector<std::string>& columns,
                             std::size_t rows);
    [[nodiscard]] sqlite3* handle() const { return db_; }

  private:
    sqlite3* db_ = nullptr;
    std::unordered_map<std::string, std::unique_ptr<Statement>> statements_;
    std::unordered_map<std::string, Statement*> inserts_;  // Key: table|columns|rows.
};

/// Waits for another connection's write lock (SQLITE_BUSY) for up to `timeout`, retrying
/// every 50 µs for the first millisecond, every 250 µs up to 20 ms, then every 2 ms: a lock
/// another process held a few milliseconds (`orderengine rebuild`'s chunk beside a server) is
/// taken within ~0.25 ms of its release. SQLite's own busy timeout sleeps 1, 2, 5, 10, 15 …
/// ms between tries, so a waiter for a lock held 4 ms slept 8.
void set_busy_wait(sqlite3* db, std::chrono::milliseconds timeout);

/// Resets a statement when leaving scope, so a throw mid-step never leaves it busy.
class StatementUse {
  public:
    explicit StatementUse(Statement& statement) : statement_(statement) {}
    ~StatementUse() { statement_.reset(); }
    StatementUse(const StatementUse&) = delete;
    StatementUse& operator=(const StatementUse&) = delete;
    Statement* operator->() { return &statement_; }
    Statement& operator*() { return statement_; }

  private:
    Statement& statement_;
};

}  // namespace oe::sqlite
