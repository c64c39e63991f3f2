#include "sqlite_db.hpp"

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include <oe/kernel/event_store.hpp>

namespace oe::sqlite {

namespace {

[[noreturn]] void fail(sqlite3* db, std::string_view what) {
    throw StoreError(fmt::format("sqlite: {}: {}", what, db != nullptr ? sqlite3_errmsg(db) : "?"));
}

/// The busy handler behind set_busy_wait: `arg` carries the timeout in milliseconds. SQLite
/// calls it on the thread that met the lock, with count 0 for the first try of each wait, so
/// the wait's start is kept per thread.
int busy_wait(void* arg, int count) {
    using Clock = std::chrono::steady_clock;
    thread_local Clock::time_point started;
    const auto now = Clock::now();
    if (count == 0) {
        started = now;
    }
    const auto timeout = std::chrono::milliseconds(reinterpret_cast<std::intptr_t>(arg));
    const auto waited = now - started;
    if (waited >= timeout) {
        return 0;  // SQLITE_BUSY to the caller.
    }
    using std::chrono::microseconds;
    const auto pause = waited < std::chrono::milliseconds(1)    ? microseconds(50)
                       : waited < std::chrono::milliseconds(20) ? microseconds(250)
                                                                : microseconds(2'000);
    std::this_thread::sleep_for(pause);
    return 1;
}

}  // namespace

void set_busy_wait(sqlite3* db, std::chrono::milliseconds timeout) {
    sqlite3_busy_handler(db, &busy_wait,
                         reinterpret_cast<void*>(static_cast<std::intptr_t>(timeout.count())));
}

Statement::Statement(sqlite3* db, std::string_view sql) : db_(db) {
    const char* tail = nullptr;
    if (sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                           &stmt_, &tail) != SQLITE_OK) {
        fail(db, fmt::format("prepare '{}'", sql.substr(0, 80)));
    }
    // One statement per call, as on PostgreSQL: a second one would silently never run.
    for (const char* c = tail; c != nullptr && c < sql.data() + sql.size(); ++c) {
        if (*c != ' ' && *c != '\n' && *c != '\t' && *c != '\r' && *c != ';') {
            sqlite3_finalize(stmt_);
            throw StoreError(
                fmt::format("sqlite: more than one statement in '{}'", sql.substr(0, 80)));
        }
    }
}

Statement::~Statement() {
    sqlite3_finalize(stmt_);
}

void Statement::bind(int index, std::int64_t value) {
    if (sqlite3_bind_int64(stmt_, index, value) != SQLITE_OK) {
        fail(db_, "bind");
    }
}

void Statement::bind(int index, std::string_view text) {
    if (sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8) !=
        SQLITE_OK) {
        fail(db_, "bind");
    }
}

void Statement::bind_null(int index) {
    if (sqlite3_bind_null(stmt_, index) != SQLITE_OK) {
        fail(db_, "bind");
    }
}

bool Statement::step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) {
        return true;
    }
    if (rc == SQLITE_DONE) {
        return false;
    }
    fail(db_, "step");
}

void Statement::reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
}

std::int64_t Statement::column_int64(int index) const {
    return sqlite3_column_int64(stmt_, index);
}

std::string_view Statement::column_text(int index) const {
    const auto* text = sqlite3_column_text(stmt_, index);
    const int size = sqlite3_column_bytes(stmt_, index);
    if (text == nullptr) {
        return {};
    }
    return {reinterpret_cast<const char*>(text), static_cast<std::size_t>(size)};
}

bool Statement::column_is_null(int index) const {
    return sqlite3_column_type(stmt_, index) == SQLITE_NULL;
}

int Statement::column_type(int index) const {
    return sqlite3_column_type(stmt_, index);
}

int Statement::column_count() const {
    return sqlite3_column_count(stmt_);
}

namespace {

/// SQLite's memory statistics (on by default) take one process-wide mutex in every allocation
/// of every connection: a rebuild reading and writing millions of rows at a low CPU priority
/// can hold it while checkout's connections wait. Off before the library initialises, as
/// SQLite's own performance advice says (SQLITE_DEFAULT_MEMSTATUS=0); nothing here reads them.
void configure_library_once() {
    static std::once_flag once;
    std::call_once(once, [] {
        // SQLITE_MISUSE when the library was initialised already: it then keeps its default.
        (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    });
}

}  // namespace

Database::Database(const std::string& path, bool create) {
    configure_library_once();
    const int flags =
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
        std::string message = db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
        sqlite3_close(db_);
        db_ = nullptr;
        throw StoreError(fmt::format("sqlite: cannot open '{}': {}", path, message));
    }
    sqlite3_extended_result_codes(db_, 1);
}

Database::~Database() {
    statements_.clear();
    sqlite3_close(db_);
}

void Database::exec(const char* sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
        std::string message = error != nullptr ? error : sqlite3_errmsg(db_);
        sqlite3_free(error);
        throw StoreError(fmt::format("sqlite: {}", message));
    }
}

Statement& Database::cached(std::string_view sql) {
    auto found = statements_.find(std::string(sql));
    if (found != statements_.end()) {
        return *found->second;
    }
    auto statement = std::make_unique<Statement>(db_, sql);
    auto& ref = *statement;
    statements_.emplace(std::string(sql), std::move(statement));
    return ref;
}

Statement& Database::cached_insert(const std::string& table,
                                   const std::vector<std::string>& columns, std::size_t rows) {
    std::string key = table;
    for (const auto& column : columns) {
        key += '|';
        key += column;
    }
    key += '|';
    key += std::to_string(rows);
    if (const auto found = inserts_.find(key); found != inserts_.end()) {
        return *found->second;
    }
    std::string sql = "INSERT INTO " + table + " (";
    for (std::size_t c = 0; c < columns.size(); ++c) {
        sql += c == 0 ? "" : ", ";
        sql += columns[c];
    }
    sql += ") VALUES ";
    for (std::size_t r = 0; r < rows; ++r) {
        sql += r == 0 ? "(" : ",(";
        for (std::size_t c = 0; c < columns.size(); ++c) {
            sql += c == 0 ? "?" : ",?";
        }
        sql += ")";
    }
    Statement& statement = cached(sql);
    inserts_.emplace(std::move(key), &statement);
    return statement;
}

}  // namespace oe::sqlite
