#include <oe/event_store_postgres/postgres_event_store.hpp>

#include <libpq-fe.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <charconv>
#include <condition_variable>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include <fmt/format.h>
#include <pqxx/pqxx>
#include <pqxx/tablewriter>

#include <oe/kernel/batch_writer.hpp>
#include <oe/kernel/group_commit.hpp>
#include <oe/kernel/head_signal.hpp>
#include <oe/kernel/invariant.hpp>
#include <oe/kernel/log.hpp>
#include <oe/kernel/thread_name.hpp>
#include <oe/kernel/time.hpp>

#include "migrations.hpp"

namespace oe::postgres {

namespace {

constexpr const char* notify_channel = "oe_events";

constexpr const char* select_columns =
    "SELECT global_position, stream_id, stream_version, type, schema_version, data, metadata, "
    "recorded_at FROM oe_events ";

/// The URL's parameters as libpq parsed them; throws InvalidDatabaseUrl when it cannot.
std::vector<std::pair<std::string, std::string>> parse_conninfo(const std::string& url) {
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
    if (options == nullptr) {
        std::string message = error != nullptr ? error : "cannot parse";
        PQfreemem(error);
        while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
            message.pop_back();
        }
        throw InvalidDatabaseUrl(fmt::format("invalid PostgreSQL URL: {}", message));
    }
    std::vector<std::pair<std::string, std::string>> parsed;
    for (auto* option = options; option->keyword != nullptr; ++option) {
        if (option->val != nullptr) {
            parsed.emplace_back(option->keyword, option->val);
        }
    }
    PQconninfoFree(options);
    return parsed;
}

std::string quote_conninfo_value(std::string_view value) {
    std::string out = "'";
    for (const char c : value) {
        if (c == '\'' || c == '\\') {
            out.push_back('\\');
        }
        out.push_back(c);
    }
    out.push_back('\'');
    return out;
}

/// The connection string the store really uses: the caller's URL plus what the store's
/// guarantees depend on, sent at connection start-up so it also holds after a reconnect:
/// UTC/ISO timestamps (recorded_at is parsed from text), READ COMMITTED (each statement of the
/// append function must see the previous committer, docs/design/gap-free-global-order.md),
/// synchronous commit (an acknowledged append is durable), and a connect timeout.
std::string store_conninfo(const std::string& url, const std::string& application_name) {
    auto parsed = parse_conninfo(url);
    std::string options =
        "-c TimeZone=UTC -c DateStyle=ISO -c default_transaction_isolation=read\\ committed "
        "-c synchronous_commit=on";
    bool has_timeout = false;
    bool has_name = false;
    std::string conninfo;
    for (auto& [key, value] : parsed) {
        if (key == "options") {
            options = value + " " + options;  // Ours come last, so they win.
            continue;
        }
        has_timeout = has_timeout || key == "connect_timeout";
        has_name = has_name || key == "application_name";
        conninfo += key + "=" + quote_conninfo_value(value) + " ";
    }
    if (!has_timeout) {
        conninfo += "connect_timeout=10 ";
    }
    if (!has_name) {
        conninfo += "application_name=" + quote_conninfo_value(application_name) + " ";
    }
    return conninfo + "options=" + quote_conninfo_value(options);
}

std::string first_line(const std::string& text) {
    const auto end = text.find('\n');
    return end == std::string::npos ? text : text.substr(0, end);
}

/// libpqxx's connection policies are where it hands out its libpq handle: this one keeps
/// whatever each hook returns, so it always holds the connection's current handle (after a
/// reconnect too). libpqxx 6.4 writes COPY data only as text lines; PgTx::insert_rows writes
/// binary COPY data to the handle itself.
class HandleKeepingPolicy final : public pqxx::connect_direct {
  public:
    explicit HandleKeepingPolicy(const std::string& options) : pqxx::connect_direct(options) {}
    handle do_startconnect(handle orig) override {
        return keep(pqxx::connect_direct::do_startconnect(orig));
    }
    handle do_completeconnect(handle orig) override {
        return keep(pqxx::connect_direct::do_completeconnect(orig));
    }
    handle do_dropconnect(handle orig) noexcept override {
        return keep(pqxx::connect_direct::do_dropconnect(orig));
    }
    handle do_disconnect(handle orig) noexcept override {
        return keep(pqxx::connect_direct::do_disconnect(orig));
    }
    [[nodiscard]] PGconn* current() const { return handle_; }

  private:
    handle keep(handle h) noexcept {
        handle_ = h;
        return h;
    }
    handle handle_ = nullptr;
};

/// pqxx::connection (basic_connection_base<connect_direct>) with the policy above, built the
/// same way.
class Connection final : public pqxx::connection_base {
  public:
    explicit Connection(const std::string& options)
        : pqxx::connection_base(policy_), policy_(options) {
        init();  // Connects (the base keeps a reference to the policy, constructed by now).
    }
    ~Connection() noexcept { close(); }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    /// libpq's handle of this connection (null while it is not connected).
    [[nodiscard]] PGconn* libpq() const { return policy_.current(); }

    using Result = std::unique_ptr<PGresult, decltype(&PQclear)>;

    /// Runs `sql` outside any transaction, as the statement `name` prepared on this
    /// connection the first time, with text parameters, and answers its rows in binary
    /// format. Throws pqxx::broken_connection or pqxx::sql_error as libpqxx would.
    Result exec_binary(const char* name, const char* sql, const std::vector<std::string>& params) {
        PGconn* const conn = libpq();
        if (conn == nullptr) {
            throw pqxx::broken_connection("the connection is closed");
        }
        if (prepared_on_ != conn) {  // Another server session (libpqxx reconnected).
            prepared_.clear();
            prepared_on_ = conn;
        }
        std::vector<const char*> values;
        values.reserve(params.size());
        for (const auto& param : params) {
            values.push_back(param.c_str());
        }
        const int count = static_cast<int>(params.size());
        for (bool retried = false;; retried = true) {
            const auto known = std::find(prepared_.begin(), prepared_.end(), name);
            if (known == prepared_.end()) {
                Result prepared(PQprepare(conn, name, sql, count, nullptr), &PQclear);
                // 42P05: the session has it already (this side had forgotten it, below).
                if (sqlstate(prepared) != "42P05") {
                    check(std::move(prepared), PGRES_COMMAND_OK, sql);
                }
                prepared_.emplace_back(name);
            }
            Result result(PQexecPrepared(conn, name, count, values.data(), nullptr, nullptr, 1),
                          &PQclear);
            if (!retried && sqlstate(result) == "26000") {
                // The statement is gone from the session (DEALLOCATE, a reset): prepare it
                // again, once; the others this side knows of may be gone too, and are found
                // out the same way.
                prepared_.erase(std::find(prepared_.begin(), prepared_.end(), name));
                continue;
            }
            return check(std::move(result), PGRES_TUPLES_OK, sql);
        }
    }

    /// The name this connection prepared `sql` under, or null when it runs unnamed. A
    /// statement that binds parameters and reads or writes rows is prepared the second time
    /// it runs on this connection, and runs prepared from then on: PostgreSQL then parses it
    /// once and, after a few runs, keeps one plan for it. Run unnamed, each read model
    /// statement of the live projector and of the API's reads was parsed, analysed and
    /// planned every time: ~30 % of the PostgreSQL backends' CPU under checkout (bench/README.md,
    /// prepared statements). At most `max_prepared` statements per connection; the rest
    /// (statements built with a varying number of parameters) run unnamed as before. A
    /// prepared statement that names a read model table follows a rebuild's swap: PostgreSQL
    /// analyses it again, by name, when a table it used was renamed or dropped.
    const std::string* statement_for(std::string_view sql, bool has_params) {
        if (!has_params || !preparable(sql)) {
            return nullptr;
        }
        const auto found = statements_.find(sql);
        if (found != statements_.end()) {
            Statement& statement = found->second;
            if (statement.name.empty()) {
                if (prepared_count_ >= max_prepared) {
                    return nullptr;
                }
                statement.name = fmt::format("oe_stmt_{}", ++prepared_count_);
                prepare(statement.name, std::string(sql));
            }
            return &statement.name;
        }
        if (statements_.size() < max_seen) {
            statements_.emplace(std::string(sql), Statement{});
        }
        return nullptr;
    }

  private:
    static constexpr std::size_t max_prepared = 256;
    static constexpr std::size_t max_seen = 4096;

    /// What PREPARE accepts, and what is worth it: SELECT, INSERT, UPDATE, DELETE, WITH.
    static bool preparable(std::string_view sql) {
        const auto start = sql.find_first_not_of(" \t\n");
        if (start == std::string_view::npos) {
            return false;
        }
        std::string word;
        for (std::size_t i = start; i < sql.size() && word.size() < 6 &&
                                    std::isalpha(static_cast<unsigned char>(sql[i])) != 0;
             ++i) {
            word.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(sql[i]))));
        }
        return word == "SELECT" || word == "INSERT" || word == "UPDATE" || word == "DELETE" ||
               word == "WITH";
    }

    struct Statement {
        std::string name;  // Empty: seen once, not prepared.
    };

    static std::string_view sqlstate(const Result& result) {
        const char* state = result ? PQresultErrorField(result.get(), PG_DIAG_SQLSTATE) : nullptr;
        return state != nullptr ? std::string_view(state) : std::string_view();
    }

    Result check(Result result, ExecStatusType expected, const char* sql) const {
        if (result && PQresultStatus(result.get()) == expected) {
            return result;
        }
        PGconn* const conn = libpq();
        const std::string message = result ? PQresultErrorMessage(result.get())
                                           : (conn != nullptr ? PQerrorMessage(conn) : "");
        if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
            throw pqxx::broken_connection(message.empty() ? "the connection broke" : message);
        }
        const char* state = result ? PQresultErrorField(result.get(), PG_DIAG_SQLSTATE) : nullptr;
        throw pqxx::sql_error(message.empty() ? "the statement failed" : message, sql, state);
    }

    HandleKeepingPolicy policy_;
    PGconn* prepared_on_ = nullptr;
    std::vector<std::string> prepared_;  // Statements exec_binary prepared on prepared_on_.
    // Statements statement_for has seen, by their text (libpqxx prepares them again by itself
    // after a reconnect).
    std::map<std::string, Statement, std::less<>> statements_;
    std::size_t prepared_count_ = 0;
};

/// Runs `sql` on `tx`, prepared on `conn` when statement_for says so.
template <typename... Args>
pqxx::result exec_statement(pqxx::transaction_base& tx, Connection* conn, const std::string& sql,
                            Args&&... args) {
    if (conn != nullptr) {
        if (const std::string* name = conn->statement_for(sql, sizeof...(Args) > 0)) {
            return tx.exec_prepared(*name, std::forward<Args>(args)...);
        }
    }
    return tx.exec_params(sql, std::forward<Args>(args)...);
}

std::unique_ptr<Connection> connect(const std::string& url,
                                    const std::string& application_name = "orderengine") {
    const std::string conninfo = store_conninfo(url, application_name);
    try {
        return std::make_unique<Connection>(conninfo);
    } catch (const pqxx::broken_connection& e) {
        throw StoreError(fmt::format("cannot connect to PostgreSQL: {}", first_line(e.what())));
    } catch (const std::exception& e) {
        throw StoreError(fmt::format("PostgreSQL: {}", first_line(e.what())));
    }
}

int read_version(Connection& conn) {
    pqxx::nontransaction tx(conn);
    const auto exists = tx.exec1("SELECT to_regclass('oe_schema_migrations') IS NOT NULL");
    if (!exists[0].as<bool>()) {
        return 0;
    }
    return tx.exec1("SELECT COALESCE(MAX(version), 0) FROM oe_schema_migrations")[0].as<int>();
}

std::uint16_t checked_schema_version(std::int64_t position, std::int64_t schema_version) {
    if (schema_version < 1 || schema_version > 65535) {
        throw CorruptEvent(position,
                           fmt::format("schema_version {} is out of range", schema_version));
    }
    return static_cast<std::uint16_t>(schema_version);
}

RecordedEvent read_row(const pqxx::row& row, const UpcasterRegistry* upcasters) {
    RecordedEvent event;
    event.global_position = row[0].as<std::int64_t>();
    event.stream_id.assign(row[1].c_str(), row[1].size());
    event.stream_version = row[2].as<std::int64_t>();
    event.type.assign(row[3].c_str(), row[3].size());
    event.schema_version = checked_schema_version(event.global_position, row[4].as<std::int64_t>());
    event.data.assign(row[5].c_str(), row[5].size());
    event.metadata.assign(row[6].c_str(), row[6].size());
    const auto recorded_at = parse_iso8601_us(std::string_view(row[7].c_str(), row[7].size()));
    if (!recorded_at) {
        throw CorruptEvent(event.global_position,
                           fmt::format("recorded_at '{}' is unreadable", row[7].c_str()));
    }
    event.recorded_at_us = *recorded_at;
    if (upcasters != nullptr) {
        upcasters->upcast(event);
    }
    return event;
}

/// A big-endian integer of `width` bytes (a binary result's int8, int4 or timestamptz).
std::int64_t big_endian_integer(const char* bytes, int width) {
    std::uint64_t value = 0;
    for (int i = 0; i < width; ++i) {
        value = (value << 8U) | static_cast<unsigned char>(bytes[i]);
    }
    if (width < 8 && (value >> static_cast<unsigned>(width * 8 - 1)) != 0) {
        value |= ~std::uint64_t{0} << static_cast<unsigned>(width * 8);  // Sign-extend.
    }
    return static_cast<std::int64_t>(value);
}

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 00:00:00 UTC).
constexpr std::int64_t postgres_epoch_unix_us = 946'684'800'000'000;

/// The log after a position ($1), at most $2 events. Each value sits in a subquery (an
/// InitPlan) so that the planner sees neither: a plan for the values, which PostgreSQL
/// otherwise kept making afresh each time (it estimates a few rows past the newest position,
/// cheaper than the one plan for any values), cost ~0.1 ms of the server's CPU per read, ~4 %
/// of a core under checkout's 500 orders/s. Either way the plan is the same: the primary
/// key's index from $1, in order, up to $2 rows.
constexpr const char* read_all_condition =
    "WHERE global_position > (SELECT $1::bigint) ORDER BY global_position "
    "LIMIT (SELECT $2::bigint)";

/// The events of a binary-format result of select_columns. The server sends json and text as
/// stored and integers and the timestamp as fixed-width numbers: its text output copied every
/// json value again to measure it and formatted every timestamp, and this side parsed them back.
std::vector<RecordedEvent> collect_binary(const PGresult* result,
                                          const UpcasterRegistry* upcasters) {
    // int8, text, int8, text, int4, json, json, timestamptz, as migration 1 made them.
    static constexpr std::array<Oid, 8> types{20, 25, 20, 25, 23, 114, 114, 1184};
    static constexpr std::array<int, 8> widths{8, -1, 8, -1, 4, -1, -1, 8};
    if (PQnfields(result) != static_cast<int>(types.size())) {
        throw StoreError("oe_events: the read answered an unexpected number of columns");
    }
    for (int c = 0; c < static_cast<int>(types.size()); ++c) {
        if (PQftype(result, c) != types[static_cast<std::size_t>(c)] || PQfformat(result, c) != 1) {
            throw StoreError(fmt::format(
                "oe_events.{} is not of the type this binary reads (run 'orderengine migrate')",
                PQfname(result, c)));
        }
    }
    const int rows = PQntuples(result);
    std::vector<RecordedEvent> events;
    events.reserve(static_cast<std::size_t>(rows));
    for (int r = 0; r < rows; ++r) {
        for (int c = 0; c < static_cast<int>(types.size()); ++c) {
            const int width = widths[static_cast<std::size_t>(c)];
            if (PQgetisnull(result, r, c) != 0 ||
                (width > 0 && PQgetlength(result, r, c) != width)) {
                throw StoreError(fmt::format("oe_events.{} is NULL or malformed in row {}",
                                             PQfname(result, c), r));
            }
        }
        const auto integer = [&](int c) {
            return big_endian_integer(PQgetvalue(result, r, c),
                                      widths[static_cast<std::size_t>(c)]);
        };
        const auto text = [&](int c) {
            return std::string_view(PQgetvalue(result, r, c),
                                    static_cast<std::size_t>(PQgetlength(result, r, c)));
        };
        RecordedEvent& event = events.emplace_back();
        event.global_position = integer(0);
        event.stream_id = text(1);
        event.stream_version = integer(2);
        event.type = text(3);
        event.schema_version = checked_schema_version(event.global_position, integer(4));
        event.data = text(5);
        event.metadata = text(6);
        const std::int64_t since_2000 = integer(7);
        std::int64_t unix_us = 0;
        if (since_2000 == std::numeric_limits<std::int64_t>::min() ||
            since_2000 == std::numeric_limits<std::int64_t>::max() ||
            __builtin_add_overflow(since_2000, postgres_epoch_unix_us, &unix_us)) {
            throw CorruptEvent(event.global_position, "recorded_at is not a finite time");
        }
        event.recorded_at_us = unix_us;
        if (upcasters != nullptr) {
            upcasters->upcast(event);
        }
    }
    return events;
}

/// Binds SqlValues as libpq text parameters (nullptr = SQL NULL).
class ParamList {
  public:
    explicit ParamList(const std::vector<SqlValue>& params) {
        storage_.reserve(params.size());
        for (const auto& param : params) {
            if (const auto* number = std::get_if<std::int64_t>(&param)) {
                storage_.push_back(std::to_string(*number));
            } else if (const auto* text = std::get_if<std::string>(&param)) {
                storage_.push_back(*text);
            } else {
                storage_.emplace_back();
            }
        }
        for (std::size_t i = 0; i < params.size(); ++i) {
            pointers_.push_back(
                std::holds_alternative<std::nullptr_t>(params[i]) ? nullptr : storage_[i].c_str());
        }
    }
    [[nodiscard]] auto dynamic() const { return pqxx::prepare::make_dynamic_params(pointers_); }

  private:
    std::vector<std::string> storage_;
    std::vector<const char*> pointers_;
};

/// Hands each row of `rows` to `each` as views of its fields (NULL as nothing).
void each_row_view(const pqxx::result& rows,
                   const std::function<void(const SqlTx::RowView&)>& each) {
    SqlTx::RowView view;
    for (const auto& row : rows) {
        view.clear();
        for (const auto& field : row) {
            view.emplace_back(field.is_null() ? std::nullopt
                                              : std::optional<std::string_view>(
                                                    std::string_view(field.c_str(), field.size())));
        }
        each(view);
    }
}

/// How a column's values travel in a binary COPY; `none`: a type the binary path does not
/// write (the whole COPY then goes as text).
enum class BinaryColumn : std::uint8_t { none, int2, int4, int8, text };

BinaryColumn binary_column(std::int64_t type_oid) {
    switch (type_oid) {
        case 20:  // int8
            return BinaryColumn::int8;
        case 23:  // int4
            return BinaryColumn::int4;
        case 21:  // int2
            return BinaryColumn::int2;
        case 25:    // text
        case 1043:  // varchar
            return BinaryColumn::text;
        default:
            return BinaryColumn::none;
    }
}

/// Appends `value` to `out` in network byte order.
template <typename T>
void append_big_endian(std::string& out, T value) {
    using U = std::make_unsigned_t<T>;
    auto bits = static_cast<U>(value);
    char bytes[sizeof(U)];
    for (std::size_t i = sizeof(U); i-- > 0;) {
        bytes[i] = static_cast<char>(bits & 0xffU);
        bits = static_cast<U>(bits >> 8U);
    }
    out.append(bytes, sizeof(U));
}

/// The types of the columns bulk inserts go to, by table name, shared by a store's
/// transactions: asked from pg_attribute at a table's first COPY, not at every one (a live
/// projector's batch is a few rows). A table's entry is forgotten when a binary COPY into it
/// fails, so a table dropped and made again with other types (read models change only by
/// migration, before a store opens) costs at most one failed transaction.
class ColumnTypes {
  public:
    using Columns = std::vector<std::pair<std::string, std::int64_t>>;  // Name, type OID.

    [[nodiscard]] std::shared_ptr<const Columns> find(const std::string& table) const {
        const std::lock_guard lock(mutex_);
        const auto found = tables_.find(table);
        return found == tables_.end() ? nullptr : found->second;
    }
    std::shared_ptr<const Columns> keep(const std::string& table, Columns columns) {
        auto kept = std::make_shared<const Columns>(std::move(columns));
        const std::lock_guard lock(mutex_);
        tables_[table] = kept;
        return kept;
    }
    void forget(const std::string& table) {
        const std::lock_guard lock(mutex_);
        tables_.erase(table);
    }

  private:
    mutable std::mutex mutex_;
    std::map<std::string, std::shared_ptr<const Columns>> tables_;
};

class PgTx final : public SqlTx {
  public:
    /// `libpq`: the transaction's connection's handle, for binary COPY (null: text only);
    /// `types`: the store's column types (null: this transaction's own); `statements`: the
    /// transaction's pooled connection, which prepares the statements that run often (null:
    /// every statement runs unnamed).
    explicit PgTx(pqxx::work& tx, PGconn* libpq = nullptr, ColumnTypes* types = nullptr,
                  Connection* statements = nullptr)
        : tx_(tx),
          libpq_(libpq),
          types_(types != nullptr ? types : &own_types_),
          statements_(statements) {}
    ~PgTx() override {
        if (binary_open_) {
            // Left by an exception: end the COPY as failed, so the transaction's rollback can
            // run on the connection.
            if (PQputCopyEnd(libpq_, "the transaction ended with the COPY open") == 1) {
                while (PGresult* r = PQgetResult(libpq_)) {
                    PQclear(r);
                }
            }
        }
    }
    PgTx(const PgTx&) = delete;
    PgTx& operator=(const PgTx&) = delete;

    void exec(std::string_view sql, const std::vector<SqlValue>& params) override {
        run_statement(sql, params);
    }

    std::vector<SqlRow> query(std::string_view sql, const std::vector<SqlValue>& params) override {
        const pqxx::result result = run_statement(sql, params);
        std::vector<SqlRow> rows;
        rows.reserve(result.size());
        for (const auto& row : result) {
            SqlRow out;
            out.reserve(row.size());
            for (const auto& field : row) {
                if (field.is_null()) {
                    out.emplace_back(std::nullopt);
                } else {
                    out.emplace_back(std::string(field.c_str(), field.size()));
                }
            }
            rows.push_back(std::move(out));
        }
        return rows;
    }

    void for_each_row(std::string_view sql, const std::vector<SqlValue>& params,
                      const std::function<void(const RowView&)>& each) override {
        each_row_view(run_statement(sql, params), each);
    }

    /// COPY … FROM STDIN: no statement to parse, no parameter to bind. In binary format when
    /// every column is an integer or text column (the server then only copies the values in:
    /// text format cost its process ~60 % more CPU per row, most of it splitting lines into
    /// fields, bench/README.md), otherwise in text format. The COPY stays open while the next
    /// calls insert into the same table and columns, so the server stores rows while this
    /// thread formats the next ones (one COPY per call, each waiting for the server's answer,
    /// left both sides idle half the time); anything else run through this object ends it
    /// first, and so must the transaction's owner before it runs anything on the transaction
    /// itself or commits (end_copy): libpq would end an open binary COPY without a word, and
    /// its rows would be lost. A COPY's errors surface when it ends.
    void insert_rows(const std::string& table, const std::vector<std::string>& columns,
                     const std::vector<SqlValue>& values) override {
        const std::size_t width = columns.size();
        if (width == 0 || values.size() % width != 0) {
            throw std::invalid_argument("insert_rows: values do not fill whole rows");
        }
        if (values.empty()) {
            return;
        }
        if ((copy_ || binary_open_) && (copy_table_ != table || copy_columns_ != columns)) {
            end_copy();
        }
        if (!copy_ && !binary_open_) {
            copy_table_ = table;
            copy_columns_ = columns;
            if (!begin_binary_copy()) {
                // libpqxx 6.4's stream_to writes only tuples of static types, and its
                // raw-line write is private; the deprecated tablewriter still offers a public
                // one. The text below is escaped for COPY here, so tablewriter's multibyte
                // caveat (its own escaping) does not apply.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
                copy_ =
                    std::make_unique<pqxx::tablewriter>(tx_, table, columns.begin(), columns.end());
#pragma GCC diagnostic pop
            }
        }
        std::string& lines = lines_;
        lines.clear();
        if (binary_open_) {
            for (std::size_t i = 0; i < values.size(); ++i) {
                if (i % width == 0) {
                    append_big_endian(lines, static_cast<std::int16_t>(width));
                }
                append_binary(lines, values[i], i % width);
            }
            put_copy_data(lines);
            return;
        }
        for (std::size_t i = 0; i < values.size(); ++i) {
            if (i % width != 0) {
                lines.push_back('\t');
            } else if (i != 0) {
                lines.push_back('\n');
            }
            append_copy_text(lines, values[i]);
        }
        copy_->write_raw_line(lines);  // The rows, newline-separated; it ends the last one.
    }

    /// Ends the open COPY, if any (its errors surface here).
    /// Ends an open COPY, then runs `sql`: prepared when the connection says so.
    pqxx::result run_statement(std::string_view sql, const std::vector<SqlValue>& params) {
        end_copy();
        ParamList list(params);
        if (statements_ != nullptr) {
            if (const std::string* name = statements_->statement_for(sql, !params.empty())) {
                return tx_.exec_prepared(*name, list.dynamic());
            }
        }
        return tx_.exec_params(std::string(sql), list.dynamic());
    }

    void end_copy() {
        if (copy_) {
            const auto copy = std::move(copy_);
            copy->complete();
        }
        if (binary_open_) {
            binary_open_ = false;
            std::string trailer;
            append_big_endian(trailer, std::int16_t{-1});
            if (PQputCopyData(libpq_, trailer.data(), static_cast<int>(trailer.size())) != 1 ||
                PQputCopyEnd(libpq_, nullptr) != 1) {
                throw pqxx::broken_connection(PQerrorMessage(libpq_));
            }
            std::string error;
            std::string sqlstate;
            while (PGresult* r = PQgetResult(libpq_)) {
                if (PQresultStatus(r) != PGRES_COMMAND_OK && error.empty()) {
                    error = PQresultErrorMessage(r);
                    const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
                    sqlstate = state != nullptr ? state : "";
                    if (error.empty()) {
                        error = "COPY failed";
                    }
                }
                PQclear(r);
            }
            if (!error.empty()) {
                types_->forget(copy_table_);
                if (PQstatus(libpq_) != CONNECTION_OK) {
                    throw pqxx::broken_connection(error);
                }
                throw pqxx::sql_error(error, "COPY " + copy_table_ + " FROM STDIN (binary)",
                                      sqlstate.empty() ? nullptr : sqlstate.c_str());
            }
        }
    }

  private:
    /// Starts a binary COPY into copy_table_ (copy_columns_) when there is a handle and every
    /// column has a binary form here; false (nothing started) otherwise.
    bool begin_binary_copy() {
        if (libpq_ == nullptr) {
            return false;
        }
        auto known = types_->find(copy_table_);
        if (!known) {
            ColumnTypes::Columns types;
            for (const auto& row : tx_.exec_params(
                     "SELECT attname, atttypid::int8 FROM pg_attribute "
                     "WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
                     copy_table_)) {
                types.emplace_back(row[0].c_str(), row[1].as<std::int64_t>());
            }
            if (types.empty()) {
                return false;  // No such table (yet): text COPY says so.
            }
            known = types_->keep(copy_table_, std::move(types));
        }
        binary_columns_.assign(copy_columns_.size(), BinaryColumn::none);
        for (std::size_t i = 0; i < copy_columns_.size(); ++i) {
            for (const auto& [name, type] : *known) {
                if (name == copy_columns_[i]) {
                    binary_columns_[i] = binary_column(type);
                    break;
                }
            }
            if (binary_columns_[i] == BinaryColumn::none) {
                return false;  // Not found as written (or another type): text, as before.
            }
        }
        std::string sql = "COPY " + copy_table_ + " (";
        for (std::size_t i = 0; i < copy_columns_.size(); ++i) {
            sql += (i == 0 ? "" : ", ") + copy_columns_[i];
        }
        sql += ") FROM STDIN (FORMAT binary)";
        tx_.exec(sql);  // Answers PGRES_COPY_IN: the connection now takes the COPY's data.
        binary_open_ = true;
        std::string header("PGCOPY\n\377\r\n\0", 11);
        append_big_endian(header, std::int32_t{0});  // Flags: no OIDs.
        append_big_endian(header, std::int32_t{0});  // No header extension.
        put_copy_data(header);
        return true;
    }

    void put_copy_data(const std::string& data) {
        if (PQputCopyData(libpq_, data.data(), static_cast<int>(data.size())) != 1) {
            throw pqxx::broken_connection(PQerrorMessage(libpq_));
        }
    }

    /// One field of a binary COPY row: its length (-1: NULL), then its bytes.
    void append_binary(std::string& out, const SqlValue& value, std::size_t column) const {
        if (std::holds_alternative<std::nullptr_t>(value)) {
            append_big_endian(out, std::int32_t{-1});
            return;
        }
        const BinaryColumn kind = binary_columns_[column];
        if (kind == BinaryColumn::text) {
            if (const auto* number = std::get_if<std::int64_t>(&value)) {
                const fmt::format_int digits(*number);
                append_big_endian(out, static_cast<std::int32_t>(digits.size()));
                out.append(digits.data(), digits.size());
                return;
            }
            const auto& text = std::get<std::string>(value);
            if (text.size() > static_cast<std::size_t>(INT32_MAX)) {
                types_->forget(copy_table_);
                throw std::invalid_argument(fmt::format("a value for {}.{} is too long",
                                                        copy_table_, copy_columns_[column]));
            }
            append_big_endian(out, static_cast<std::int32_t>(text.size()));
            out.append(text);
            return;
        }
        std::int64_t number = 0;
        if (const auto* n = std::get_if<std::int64_t>(&value)) {
            number = *n;
        } else {
            const auto& text = std::get<std::string>(value);
            const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
            if (ec != std::errc{} || end != text.data() + text.size()) {
                types_->forget(copy_table_);
                throw std::invalid_argument(fmt::format("{}.{} takes an integer, not '{}'",
                                                        copy_table_, copy_columns_[column], text));
            }
        }
        const auto fits = [&](auto limit_type) {
            using L = decltype(limit_type);
            if (number < std::numeric_limits<L>::min() || number > std::numeric_limits<L>::max()) {
                types_->forget(copy_table_);
                throw std::invalid_argument(fmt::format("{} is out of range for {}.{} ({}-bit)",
                                                        number, copy_table_, copy_columns_[column],
                                                        sizeof(L) * 8));
            }
            append_big_endian(out, static_cast<std::int32_t>(sizeof(L)));
            append_big_endian(out, static_cast<L>(number));
        };
        switch (kind) {
            case BinaryColumn::int8:
                fits(std::int64_t{});
                break;
            case BinaryColumn::int4:
                fits(std::int32_t{});
                break;
            case BinaryColumn::int2:
                fits(std::int16_t{});
                break;
            default:
                OE_INVARIANT(false, "a binary COPY column has a binary form");
        }
    }

    /// One value in COPY's text format: \N for NULL, backslash escapes for the separators.
    /// Text is copied in runs between the characters to escape (a char at a time, this was
    /// most of the writer thread's time in a rebuild's shadow write).
    static void append_copy_text(std::string& out, const SqlValue& value) {
        if (std::holds_alternative<std::nullptr_t>(value)) {
            out += "\\N";
        } else if (const auto* number = std::get_if<std::int64_t>(&value)) {
            const fmt::format_int digits(*number);
            out.append(digits.data(), digits.size());
        } else {
            const auto& text = std::get<std::string>(value);
            std::size_t run = 0;
            for (std::size_t i = 0; i < text.size(); ++i) {
                char escaped = 0;
                switch (text[i]) {
                    case '\\':
                        escaped = '\\';
                        break;
                    case '\t':
                        escaped = 't';
                        break;
                    case '\n':
                        escaped = 'n';
                        break;
                    case '\r':
                        escaped = 'r';
                        break;
                    default:
                        continue;
                }
                out.append(text, run, i - run);
                out.push_back('\\');
                out.push_back(escaped);
                run = i + 1;
            }
            out.append(text, run);
        }
    }

    pqxx::work& tx_;
    PGconn* libpq_;
    bool binary_open_ = false;
    std::vector<BinaryColumn> binary_columns_;
    ColumnTypes own_types_;
    ColumnTypes* types_;
    Connection* statements_;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    std::unique_ptr<pqxx::tablewriter> copy_;
#pragma GCC diagnostic pop
    std::string copy_table_;
    std::vector<std::string> copy_columns_;
    std::string lines_;
};

/// Builds a PostgreSQL array literal element by element (text format, every element quoted).
class ArrayLiteral {
  public:
    void add(std::string_view value) {
        text_.push_back(text_.empty() ? '{' : ',');
        text_.push_back('"');
        for (const char c : value) {
            if (c == '"' || c == '\\') {
                text_.push_back('\\');
            }
            text_.push_back(c);
        }
        text_.push_back('"');
    }
    void add(std::int64_t value) {
        text_.push_back(text_.empty() ? '{' : ',');
        text_ += std::to_string(value);
    }
    [[nodiscard]] std::string finish() {
        if (text_.empty()) {
            return "{}";
        }
        text_.push_back('}');
        return std::move(text_);
    }

  private:
    std::string text_;
};

/// The oe_append_batch arguments for a batch: parallel arrays, see migrations.cpp.
struct BatchArguments {
    std::string append_slot_end, slot_event_end, stream_id, expected, event_slot, type,
        schema_version, data, metadata;
};

BatchArguments batch_arguments(const std::vector<PendingAppend*>& batch) {
    ArrayLiteral append_slot_end, slot_event_end, stream_id, expected, event_slot, type,
        schema_version, data, metadata;
    std::int64_t slot = 1;
    std::int64_t event = 1;
    for (const PendingAppend* pending : batch) {
        for (const auto& stream : pending->streams) {
            stream_id.add(stream.stream_id);
            expected.add(stream.expected.encoded());
            for (const auto& e : stream.events) {
                event_slot.add(slot);
                type.add(e.type);
                schema_version.add(static_cast<std::int64_t>(e.schema_version));
                data.add(e.data);
                metadata.add(e.metadata.to_json());
                ++event;
            }
            slot_event_end.add(event);
            ++slot;
        }
        append_slot_end.add(slot);
    }
    return {append_slot_end.finish(), slot_event_end.finish(), stream_id.finish(),
            expected.finish(),        event_slot.finish(),     type.finish(),
            schema_version.finish(),  data.finish(),           metadata.finish()};
}

/// Parses a bigint[] in PostgreSQL's text output form, e.g. "{2,17}".
std::vector<std::int64_t> parse_bigint_array(std::string_view text) {
    std::vector<std::int64_t> values;
    if (text.size() < 2 || text.front() != '{' || text.back() != '}') {
        throw StoreError(fmt::format("PostgreSQL returned a malformed array '{}'", text));
    }
    text = text.substr(1, text.size() - 2);
    while (!text.empty()) {
        const auto comma = text.find(',');
        const auto item = text.substr(0, comma);
        std::int64_t value = 0;
        const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
        if (ec != std::errc{} || ptr != item.data() + item.size()) {
            throw StoreError(fmt::format("PostgreSQL returned a malformed array item '{}'", item));
        }
        values.push_back(value);
        text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    }
    return values;
}

/// One row of oe_append_batch's answer as the append's result.
Result<AppendResult, AppendError> read_result(const pqxx::row& row) {
    if (row[0].as<bool>()) {
        AppendResult result;
        result.first_position = row[1].as<std::int64_t>();
        result.last_position = row[2].as<std::int64_t>();
        result.stream_versions = parse_bigint_array(row[3].c_str());
        return result;
    }
    AppendError error;
    error.reason = AppendRejected::wrong_expected_version;
    error.stream_id = row[4].c_str();
    error.expected = row[5].as<std::int64_t>();
    error.actual = row[6].as<std::int64_t>();
    error.message = fmt::format("stream '{}' is at version {}, expected {}", error.stream_id,
                                error.actual, ExpectedVersion::exact(error.expected).describe());
    return error;
}

/// Maps a libpqxx failure to the store's typed errors. Anything libpqxx throws is a
/// pqxx::failure or a std::logic_error (usage, conversion); none may escape as itself.
[[noreturn]] void rethrow_as_store_error(const std::exception& e, std::string_view doing) {
    if (dynamic_cast<const StoreError*>(&e) != nullptr ||
        dynamic_cast<const InvariantViolation*>(&e) != nullptr) {
        throw;
    }
    if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) {
        throw StoreError(
            fmt::format("PostgreSQL connection lost while {}: {}", doing, first_line(e.what())));
    }
    throw StoreError(fmt::format("PostgreSQL failed while {}: {}", doing, first_line(e.what())));
}

class PostgresEventStore final : public EventStore {
  public:
    explicit PostgresEventStore(const PostgresOptions& options)
        : options_(options),
          committer_([this](std::vector<PendingAppend*>& batch) { commit_batch(batch); },
                     options.batch_events_max) {
        auto conn = open_connection();
        try {
            const int version = read_version(*conn);
            if (version > latest_schema_version()) {
                throw SchemaTooNew(fmt::format(
                    "database schema is version {}, this binary understands up to {}; upgrade "
                    "the binary",
                    version, latest_schema_version()));
            }
            if (version < latest_schema_version()) {
                throw StoreError(fmt::format(
                    "database schema is version {}, this binary needs {}; run 'orderengine "
                    "migrate'",
                    version, latest_schema_version()));
            }
            prepare_reader(*conn);
        } catch (const std::exception& e) {
            rethrow_as_store_error(e, "opening the store");
        }
        ++connections_;
        give_back(std::move(conn));
        (void)head_position();
    }

    ~PostgresEventStore() override {
        stopping_.store(true);
        if (listener_.joinable()) {
            listener_.join();
        }
    }

    PostgresEventStore(const PostgresEventStore&) = delete;
    PostgresEventStore& operator=(const PostgresEventStore&) = delete;

    Result<AppendResult, AppendError> append(std::vector<StreamAppend> streams) override {
        if (auto invalid = validate_append(streams)) {
            return std::move(*invalid);
        }
        return committer_.submit(std::move(streams));
    }

    Result<AppendResult, AppendError> decide_and_append(DecisionState& state,
                                                        Decide decide) override {
        return committer_.submit_decision(state, std::move(decide));
    }

    std::vector<RecordedEvent> read_stream(std::string_view stream_id, std::int64_t from_version,
                                           std::size_t max_count) override {
        return with_reader("reading a stream", [&](Connection& conn) {
            static const std::string sql =
                std::string(select_columns) +
                "WHERE stream_id = $1 AND stream_version >= $2 ORDER BY stream_version LIMIT $3";
            const auto rows =
                conn.exec_binary("oe_read_stream_binary", sql.c_str(),
                                 {std::string(stream_id), std::to_string(from_version),
                                  std::to_string(clamp_limit(max_count))});
            return collect_binary(rows.get(), options_.upcasters.get());
        });
    }

    std::vector<RecordedEvent> read_all(std::int64_t after_position,
                                        std::size_t max_count) override {
        return with_reader("reading the log", [&](Connection& conn) {
            static const std::string sql = std::string(select_columns) + read_all_condition;
            const auto rows = conn.exec_binary(
                "oe_read_all_binary", sql.c_str(),
                {std::to_string(after_position), std::to_string(clamp_limit(max_count))});
            return collect_binary(rows.get(), options_.upcasters.get());
        });
    }

    std::int64_t head_position() override {
        const auto head = with_reader("reading the head", [](Connection& conn) {
            pqxx::nontransaction tx(conn);
            return tx.exec_prepared1("head")[0].as<std::int64_t>();
        });
        signal_.reset(head);
        return head;
    }

    bool wait_for_events(std::int64_t after_position, std::chrono::milliseconds timeout,
                         const std::atomic<bool>* cancel) override {
        std::call_once(listener_started_, [this] {
            listener_ = std::thread([this] {
                name_this_thread("oe-pg-listen");
                listen();
            });
        });
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            // NOTIFY is the fast path; the poll covers a listener that is reconnecting.
            const auto slice =
                std::min(deadline, std::chrono::steady_clock::now() + options_.poll_interval);
            if (signal_.wait(after_position, slice, cancel)) {
                return true;
            }
            if ((cancel != nullptr && cancel->load()) ||
                std::chrono::steady_clock::now() >= deadline) {
                return false;
            }
            if (head_position() > after_position) {
                return true;
            }
        }
    }

    void interrupt_waiters() override { signal_.interrupt(); }

    std::int64_t load_checkpoint(std::string_view projection) override {
        return with_reader("loading a checkpoint", [&](Connection& conn) {
            pqxx::nontransaction tx(conn);
            const auto result = tx.exec_prepared("checkpoint", std::string(projection));
            return result.empty() ? std::int64_t{0} : result[0][0].as<std::int64_t>();
        });
    }

    void commit_projections(const std::vector<CheckpointMove>& moves,
                            const std::function<void(SqlTx&)>& apply) override {
        for (const auto& move : moves) {
            OE_INVARIANT(move.to >= move.from, "a projection checkpoint never moves back");
        }
        // Two statements for all the batch's checkpoints, whatever their number. Three round
        // trips per projection (21 for the seven read models) made each commit of the live
        // projector — hundreds a second at checkout's pace, a few orders each — and so the
        // read models' lag, milliseconds longer (bench/README.md, reads beside checkout).
        ArrayLiteral names_literal;
        ArrayLiteral to_literal;
        for (const auto& move : moves) {
            names_literal.add(move.projection);
            to_literal.add(move.to);
        }
        const std::string names = names_literal.finish();
        const std::string positions = to_literal.finish();
        with_reader("committing projections", [&](Connection& conn) {
            pqxx::work tx(conn);
            if (!moves.empty()) {
                // Locked in the order given (as one statement per projection did), so two
                // instances, or the projector and a rebuild's hold, never wait on each other
                // crosswise.
                const auto lock = [&] {
                    return exec_statement(
                        tx, &conn,
                        "SELECT c.position FROM unnest($1::text[]) WITH ORDINALITY AS n(name, i) "
                        "JOIN oe_checkpoints c ON c.projection = n.name ORDER BY n.i "
                        "FOR UPDATE OF c",
                        names);
                };
                auto stored = lock();
                if (stored.size() != moves.size()) {
                    // A first commit: the rows exist from here on (a concurrent first commit
                    // waits here for the other's outcome), then are locked.
                    tx.exec_params(
                        "INSERT INTO oe_checkpoints (projection, position, updated_at) "
                        "SELECT name, 0, now() FROM unnest($1::text[]) AS n(name) "
                        "ON CONFLICT (projection) DO NOTHING",
                        names);
                    stored = lock();
                }
                if (stored.size() != moves.size()) {
                    throw StoreError("a projection checkpoint row is missing after its insert");
                }
                for (std::size_t i = 0; i < moves.size(); ++i) {
                    const auto at =
                        stored[static_cast<pqxx::result::size_type>(i)][0].as<std::int64_t>();
                    if (at != moves[i].from) {
                        throw CheckpointConflict(fmt::format(
                            "projection '{}' is at {}, not at {} where this batch starts",
                            moves[i].projection, at, moves[i].from));
                    }
                }
            }
            PgTx sql(tx, conn.libpq(), &column_types_, &conn);
            apply(sql);
            sql.end_copy();
            if (!moves.empty()) {
                exec_statement(
                    tx, &conn,
                    "UPDATE oe_checkpoints c SET position = m.position, updated_at = now() "
                    "FROM unnest($1::text[], $2::bigint[]) AS m(name, position) "
                    "WHERE c.projection = m.name",
                    names, positions);
            }
            try {
                tx.commit();
            } catch (const pqxx::in_doubt_error& e) {
                throw StoreError(
                    fmt::format("PostgreSQL connection lost during a projection commit; reload the "
                                "checkpoints to see whether the batch landed: {}",
                                first_line(e.what())));
            }
            return 0;
        });
    }

    void scan(std::string_view sql, const std::vector<SqlValue>& params,
              const std::function<void(const SqlTx::RowView&)>& each) override {
        with_reader("scanning a read model", [&](Connection& conn) {
            pqxx::work tx(conn);
            PgTx reader(tx, nullptr, nullptr, &conn);
            reader.for_each_row(sql, params, each);
            tx.commit();
            return 0;
        });
    }

    std::vector<SqlRow> query(std::string_view sql, const std::vector<SqlValue>& params) override {
        return with_reader("querying a read model", [&](Connection& conn) {
            pqxx::work tx(conn);
            PgTx reader(tx, nullptr, nullptr, &conn);
            auto rows = reader.query(sql, params);
            tx.commit();
            return rows;
        });
    }

    /// The indexes are dropped and built again by the statements the catalog writes (names,
    /// quoting and definitions exactly as they were). COPY of 500k orders: 8.0 s with their
    /// two indexes, 3.4 s without, and 1.9 s to build both afterwards (bench/README.md).
    std::function<void(SqlTx&)> defer_indexes(SqlTx& tx,
                                              const std::vector<std::string>& tables) override {
        std::vector<std::string> rebuild;
        for (const auto& table : tables) {
            // Constraints first when building again: an index the primary key backs is made by
            // ADD CONSTRAINT. An index that backs any other constraint (a foreign key of
            // another table, an exclusion) stays.
            const auto rows = tx.query(
                "SELECT CASE WHEN c.oid IS NULL THEN format('DROP INDEX %s', "
                "i.indexrelid::regclass) "
                "ELSE format('ALTER TABLE %s DROP CONSTRAINT %I', i.indrelid::regclass, c.conname) "
                "END, "
                "CASE WHEN c.oid IS NULL THEN pg_get_indexdef(i.indexrelid) "
                "ELSE format('ALTER TABLE %s ADD CONSTRAINT %I %s', i.indrelid::regclass, "
                "c.conname, pg_get_constraintdef(c.oid)) END "
                "FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
                "LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid "
                "AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u') "
                "WHERE i.indrelid = to_regclass($1) "
                "AND pg_has_role(current_user, t.relowner, 'USAGE') "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint o WHERE o.conindid = i.indexrelid "
                "AND o.contype NOT IN ('p', 'u')) "
                "ORDER BY c.oid IS NULL, i.indexrelid",
                {table});
            for (const auto& row : rows) {
                if (!row.at(0) || !row.at(1)) {
                    throw StoreError(fmt::format("cannot read the indexes of {}", table));
                }
                tx.exec(*row[0]);
                rebuild.push_back(*row[1]);
            }
        }
        return [rebuild = std::move(rebuild)](SqlTx& same_tx) {
            for (const auto& statement : rebuild) {
                same_tx.exec(statement);
            }
        };
    }

    void after_bulk_load(const std::string& table) override {
        with_reader("vacuuming a read model", [&](Connection& conn) {
            {
                pqxx::work tx(conn);
                const bool owner =
                    !tx.exec_params(
                           "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() "
                           "AND tablename = $1 "
                           "AND pg_has_role(current_user, tableowner, 'USAGE')",
                           table)
                         .empty();
                tx.commit();
                if (!owner) {
                    return 0;  // VACUUM would only warn; autovacuum keeps the table.
                }
            }
            // VACUUM runs outside a transaction. Cost-limited like autovacuum (2 ms of sleep per
            // 200 units of work: ~10 pages it dirties), so it does not burst; RESET so the
            // pooled connection goes back as it was.
            pqxx::nontransaction tx(conn);
            tx.exec("SET vacuum_cost_delay = 2");
            tx.exec("VACUUM (ANALYZE) " + conn.quote_name(table));
            tx.exec("RESET vacuum_cost_delay");
            return 0;
        });
    }

    std::unique_ptr<ReadSnapshot> snapshot() override {
        return std::make_unique<Snapshot>(open_connection());
    }

    void with_checkpoints_held(const std::vector<std::string>& projections,
                               const HeldCheckpoints& inspect,
                               const LockedCheckpoints& apply) override {
        // The checkpoint rows locked FOR UPDATE hold their projectors (commit_projections locks
        // them before it touches a table) and nothing else; `apply` runs in this transaction.
        // On a connection of its own: the hold lasts through a rebuild's checksums, which
        // `inspect` reads through the pool that checkout's handlers use too.
        // At normal priority even in a store whose backends are reniced: the live projector
        // waits for this transaction, and the swap's renames in it lock the read models.
        std::unique_ptr<Connection> own;
        try {
            own = open_connection(/*lower=*/false);
        } catch (const std::exception& e) {
            rethrow_as_store_error(e, "holding checkpoints");
        }
        try {
            pqxx::work tx(*own);
            std::vector<std::int64_t> positions;
            for (const auto& name : projections) {
                tx.exec_params(
                    "INSERT INTO oe_checkpoints (projection, position, updated_at) "
                    "VALUES ($1, 0, now()) ON CONFLICT (projection) DO NOTHING",
                    name);
                positions.push_back(tx.exec_params1("SELECT position FROM oe_checkpoints WHERE "
                                                    "projection = $1 FOR UPDATE",
                                                    name)[0]
                                        .as<std::int64_t>());
            }
            inspect(positions);
            if (!apply) {
                tx.commit();  // Ends the hold (the row locks); nothing was written.
                return;
            }
            PgTx sql(tx, own->libpq(), &column_types_);
            const auto next = apply(positions, sql);
            sql.end_copy();
            OE_INVARIANT(next.size() == positions.size(), "one position per projection");
            for (std::size_t i = 0; i < projections.size(); ++i) {
                OE_INVARIANT(next[i] >= positions[i], "a projection checkpoint never moves back");
                tx.exec_params(
                    "UPDATE oe_checkpoints SET position = $2, updated_at = now() "
                    "WHERE projection = $1",
                    projections[i], next[i]);
            }
            try {
                tx.commit();
            } catch (const pqxx::in_doubt_error& e) {
                throw StoreError(fmt::format(
                    "PostgreSQL connection lost while committing; reload the checkpoints: {}",
                    first_line(e.what())));
            }
        } catch (const std::exception& e) {
            rethrow_as_store_error(e, "holding checkpoints");
        }
    }

    std::unique_ptr<Lease> try_lease(std::string_view name) override {
        // A session advisory lock on a connection of its own: PostgreSQL releases it when
        // that connection ends, including when the holding process dies.
        auto conn = open_connection();
        try {
            pqxx::nontransaction tx(*conn);
            const auto row = tx.exec_params1("SELECT pg_try_advisory_lock($1)", lease_key(name));
            if (!row[0].as<bool>()) {
                return nullptr;
            }
        } catch (const pqxx::broken_connection& e) {
            throw StoreError(fmt::format("cannot take a lease: {}", first_line(e.what())));
        } catch (const pqxx::sql_error& e) {
            throw StoreError(fmt::format("cannot take a lease: {}", first_line(e.what())));
        }
        return std::make_unique<AdvisoryLease>(std::move(conn));
    }

    std::string_view backend_name() const override { return "postgresql"; }

  private:
    /// A REPEATABLE READ, read-only transaction on a connection of its own (so a long scan never
    /// waits for, or keeps, a pooled one). Its first statement, run here, fixes the snapshot;
    /// each scan reads through a cursor, kRowsPerFetch rows at a time, so the server produces
    /// rows only as fast as `each` takes them and no scan is held in memory whole.
    class Snapshot final : public ReadSnapshot {
      public:
        explicit Snapshot(std::unique_ptr<Connection> conn) : conn_(std::move(conn)) {
            db("taking a read snapshot", [&] {
                tx_ = std::make_unique<Tx>(*conn_);
                tx_->exec("SELECT 1");
            });
        }

        void scan(std::string_view sql, const std::vector<SqlValue>& params,
                  const std::function<void(const SqlTx::RowView&)>& each) override {
            constexpr const char* doing = "scanning a read snapshot";
            if (failed_) {
                throw StoreError("a read snapshot cannot be used after a failed scan");
            }
            failed_ = true;  // Until this scan ends cleanly (`each` may throw too).
            const ParamList list(params);
            db(doing, [&] {
                tx_->exec_params(
                    "DECLARE oe_snapshot_scan NO SCROLL CURSOR FOR " + std::string(sql),
                    list.dynamic());
            });
            const std::string fetch =
                fmt::format("FETCH FORWARD {} FROM oe_snapshot_scan", kRowsPerFetch);
            for (;;) {
                pqxx::result batch;
                db(doing, [&] { batch = tx_->exec(fetch); });
                if (batch.empty()) {
                    break;
                }
                each_row_view(batch, each);
            }
            db(doing, [&] { tx_->exec("CLOSE oe_snapshot_scan"); });
            failed_ = false;
        }

        /// PostgreSQL's own hash of each row (hash_record_extended: every column through its
        /// type's hash function), hashed once more and summed in the server: no row leaves it.
        /// The second hash matters: the row hash is linear in its columns' hashes, so a plain
        /// sum would not change when two rows swap a value. About four times cheaper than
        /// sending the rows to be hashed (500k rm_orders rows: ~0.4-0.5 s against ~2 s).
        std::optional<TableChecksum> checksum_in_database(const std::string& table) override {
            constexpr const char* doing = "checksumming a table in a read snapshot";
            if (failed_) {
                throw StoreError("a read snapshot cannot be used after a failed scan");
            }
            failed_ = true;
            std::optional<TableChecksum> sum;
            db(doing, [&] {
                // A column whose type has no default hash operator class (json, say) would
                // fail the whole snapshot: asked first, and then the caller hashes.
                const auto unhashable = tx_->exec_params1(
                    "SELECT count(*) FROM pg_attribute a WHERE a.attrelid = $1::regclass "
                    "AND a.attnum > 0 AND NOT a.attisdropped AND NOT EXISTS (SELECT 1 FROM "
                    "pg_opclass c JOIN pg_am m ON m.oid = c.opcmethod WHERE m.amname = 'hash' "
                    "AND c.opcdefault AND c.opcintype = a.atttypid)",
                    table)[0];
                if (unhashable.as<std::int64_t>() != 0) {
                    return;
                }
                constexpr const char* two_to_the_64 = "18446744073709551616::numeric";
                const auto row = tx_->exec1(fmt::format(
                    "SELECT count(*), ((COALESCE(sum(hashint8extended(hash_record_extended(t, "
                    "0), 0)), 0) % {0}) + {0}) % {0} FROM {1} t",
                    two_to_the_64, tx_->quote_name(table)));
                const std::string_view total = row[1].c_str();
                std::uint64_t value = 0;
                const auto [end, error] =
                    std::from_chars(total.data(), total.data() + total.size(), value);
                if (error != std::errc{} || end != total.data() + total.size()) {
                    throw StoreError(fmt::format("unexpected row hash sum '{}'", total));
                }
                sum = TableChecksum{fmt::format("pg-rowhash64-sum:{:016x}", value),
                                    row[0].as<std::int64_t>()};
            });
            failed_ = false;
            return sum;
        }

      private:
        using Tx = pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>;
        static constexpr int kRowsPerFetch = 2000;

        template <typename Fn>
        static void db(std::string_view doing, Fn&& fn) {
            try {
                fn();
            } catch (const std::exception& e) {
                rethrow_as_store_error(e, doing);
            }
        }

        std::unique_ptr<Connection> conn_;
        std::unique_ptr<Tx> tx_;  // Ends (rolls back) before the connection closes.
        bool failed_ = false;
    };

    /// A connection of this store: its application name and, when asked (and `lower`), its
    /// server process's lower priority. Throws StoreError when it cannot connect.
    std::unique_ptr<Connection> open_connection(bool lower = true) {
        auto conn = connect(options_.url, options_.application_name);
        if (lower && options_.backend_niceness > 0) {
            lower_priority(*conn);
        }
        return conn;
    }

    /// Renices the connection's server process (the `prioritize` extension; a role may raise
    /// the nice value of its own backends). Anything that stops it is logged once per store
    /// and leaves the connection as it is: a rebuild at normal priority is still correct.
    void lower_priority(Connection& conn) {
        std::string problem;
        try {
            pqxx::work tx(conn);
            if (tx.exec("SELECT 1 FROM pg_extension WHERE extname = 'prioritize'").empty()) {
                problem =
                    "the prioritize extension is not installed in the database (Debian "
                    "postgresql-15-prioritize, then CREATE EXTENSION prioritize)";
            } else {
                // The function says what it did in a NOTICE, which libpq would print.
                tx.exec("SET LOCAL client_min_messages = warning");
                const int niceness = std::min(options_.backend_niceness, 19);
                if (!tx.exec_params1("SELECT set_backend_priority(pg_backend_pid(), $1)",
                                     niceness)[0]
                         .as<bool>()) {
                    problem = "set_backend_priority refused (see the server's log)";
                }
            }
            tx.commit();
        } catch (const pqxx::broken_connection& e) {
            throw StoreError(fmt::format("cannot connect to PostgreSQL: {}", first_line(e.what())));
        } catch (const pqxx::sql_error& e) {
            problem = first_line(e.what());
        }
        if (!problem.empty() && !priority_warned_.exchange(true)) {
            log(LogLevel::warn, "PostgreSQL backends of a background store run at normal priority",
                {{"application_name", options_.application_name}, {"reason", problem}});
        }
    }

    /// A 64-bit advisory lock key per lease name (FNV-1a), in its own namespace of names.
    static std::int64_t lease_key(std::string_view name) {
        std::uint64_t hash = 14695981039346656037ULL;
        std::string key = "orderengine-lease:";
        key.append(name);
        for (const char c : key) {
            hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
        }
        return static_cast<std::int64_t>(hash);
    }

    class AdvisoryLease final : public Lease {
      public:
        explicit AdvisoryLease(std::unique_ptr<Connection> conn) : conn_(std::move(conn)) {}
        bool held() override {
            // A round trip at most once a second: a broken connection means the server has
            // released (or will release) the lock, so the lease is gone for good.
            const auto now = std::chrono::steady_clock::now();
            if (!lost_ && now - checked_ >= std::chrono::seconds(1)) {
                checked_ = now;
                try {
                    pqxx::nontransaction tx(*conn_);
                    tx.exec("SELECT 1");
                } catch (const std::exception&) {
                    lost_ = true;
                }
            }
            return !lost_;
        }

      private:
        std::unique_ptr<Connection> conn_;
        std::chrono::steady_clock::time_point checked_ = std::chrono::steady_clock::now();
        bool lost_ = false;
    };

    static std::int64_t clamp_limit(std::size_t max_count) {
        return max_count > static_cast<std::size_t>(INT64_MAX)
                   ? INT64_MAX
                   : static_cast<std::int64_t>(max_count);
    }

    static void prepare_reader(Connection& conn) {
        conn.prepare("read_all", std::string(select_columns) + read_all_condition);
        conn.prepare("read_stream", std::string(select_columns) +
                                        "WHERE stream_id = $1 AND stream_version >= $2 "
                                        "ORDER BY stream_version LIMIT $3");
        conn.prepare("head", "SELECT COALESCE(MAX(global_position), 0) FROM oe_events");
        conn.prepare("checkpoint", "SELECT position FROM oe_checkpoints WHERE projection = $1");
    }

    /// A pooled connection; at most readers_max exist at once (callers wait for one).
    std::unique_ptr<Connection> take_reader() {
        std::unique_lock lock(readers_mutex_);
        readers_free_.wait(
            lock, [&] { return !readers_.empty() || connections_ < options_.readers_max; });
        if (!readers_.empty()) {
            auto conn = std::move(readers_.back());
            readers_.pop_back();
            return conn;
        }
        ++connections_;
        lock.unlock();
        try {
            auto conn = open_connection();
            prepare_reader(*conn);
            return conn;
        } catch (...) {
            lock.lock();
            --connections_;
            readers_free_.notify_one();
            throw;
        }
    }

    void give_back(std::unique_ptr<Connection> conn) {
        std::lock_guard lock(readers_mutex_);
        if (conn && conn->is_open()) {
            readers_.push_back(std::move(conn));
        } else {
            --connections_;
        }
        readers_free_.notify_one();
    }

    /// Runs `fn` on a pooled connection. Every database failure becomes a StoreError; a
    /// connection that broke, or that a failure may have left mid-transaction, is dropped.
    template <typename Fn>
    std::invoke_result_t<Fn&, Connection&> with_reader(std::string_view doing, Fn&& fn) {
        auto conn = take_reader();
        try {
            auto result = fn(*conn);
            give_back(std::move(conn));
            return result;
        } catch (const std::exception& e) {
            const bool healthy = dynamic_cast<const pqxx::broken_connection*>(&e) == nullptr &&
                                 dynamic_cast<const pqxx::in_doubt_error*>(&e) == nullptr;
            give_back(healthy ? std::move(conn) : nullptr);
            rethrow_as_store_error(e, doing);
        } catch (...) {
            give_back(nullptr);
            throw;
        }
    }

    std::vector<RecordedEvent> collect(const pqxx::result& result) {
        std::vector<RecordedEvent> events;
        events.reserve(result.size());
        for (const auto& row : result) {
            events.push_back(read_row(row, options_.upcasters.get()));
        }
        return events;
    }

    // Runs on the group-commit leader's thread; one leader at a time owns writer_.
    void commit_batch(std::vector<PendingAppend*>& batch) {
        if (!writer_ || !writer_->is_open()) {
            try {
                writer_ = open_connection();
                prepare_reader(*writer_);
                writer_->prepare("append",
                                 "SELECT ok, first_position, last_position, versions, "
                                 "conflict_stream, expected, actual, recorded_at_us "
                                 "FROM oe_append_batch($1::int[], $2::int[], $3::text[], "
                                 "$4::bigint[], $5::int[], $6::text[], $7::int[], $8::json[], "
                                 "$9::json[])");
                writer_->prepare("lock_appends", "SELECT oe_lock_appends()");
            } catch (const std::exception& e) {
                writer_.reset();
                rethrow_as_store_error(e, "connecting the writer");
            }
        }
        if (batch_state(batch) != nullptr) {
            commit_decision_batch(batch);
        } else {
            commit_plain_batch(batch);
        }
    }

    /// A staged append whose outcome the database did not confirm (see DecisionTx::stage).
    class StagedMismatch final : public StoreError {
      public:
        using StoreError::StoreError;
    };

    /// The write transaction of a batch with decisions: the append lock is taken first, so
    /// the catch-up read and every decision see all that is committed. With `staging`, the
    /// decisions' appends go to oe_append_batch together, in one round trip at the end,
    /// instead of one round trip each: under the lock their outcome is known in advance.
    class DecisionTx final : public WriteTransaction {
      public:
        DecisionTx(PostgresEventStore& store, pqxx::work& tx, bool staging)
            : store_(store), tx_(tx), staging_(staging) {
            // One prepared statement: the lock, then (under it) the time every append of this
            // transaction records — oe_append_batch's GREATEST(now(), the last recorded_at),
            // computed the same way (migration 6).
            recorded_at_us_ = tx_.exec_prepared1("lock_appends")[0].as<std::int64_t>();
        }

        std::vector<RecordedEvent> read_after(std::int64_t position,
                                              std::size_t max_count) override {
            return store_.collect(tx_.exec_prepared("read_all", position, clamp_limit(max_count)));
        }

        Result<AppendResult, AppendError> write(const std::vector<StreamAppend>& streams,
                                                std::vector<RecordedEvent>* written) override {
            PendingAppend one;
            one.streams = streams;
            std::vector<PendingAppend*> single{&one};
            const auto rows = call(single);
            if (rows.size() != 1) {
                throw StoreError("oe_append_batch answered a wrong number of rows");
            }
            auto result = read_result(rows[0]);
            if (result.ok()) {
                head_ = std::max(head_, result.value().last_position);
                if (written != nullptr) {
                    synthesize(streams, result.value(), rows[0][7].as<std::int64_t>(), *written);
                }
            }
            return result;
        }

        std::optional<Result<AppendResult, AppendError>> stage(
            const std::vector<StreamAppend>& streams, std::int64_t head,
            std::vector<RecordedEvent>* written) override {
            if (!staging_ || written == nullptr) {
                return std::nullopt;
            }
            AppendResult predicted;
            predicted.first_position = head + 1;
            predicted.last_position = head;
            for (const auto& stream : streams) {
                if (stream.expected.is_any()) {
                    return std::nullopt;  // Its version is the database's to say.
                }
                const auto count = static_cast<std::int64_t>(stream.events.size());
                predicted.stream_versions.push_back(stream.expected.encoded() + count);
                predicted.last_position += count;
            }
            auto& entry = staged_.emplace_back();
            entry.pending.streams = streams;
            entry.predicted = predicted;
            synthesize(streams, predicted, recorded_at_us_, *written);
            return Result<AppendResult, AppendError>(predicted);
        }

        void flush_staged() override {
            if (staged_.empty()) {
                return;
            }
            std::vector<PendingAppend*> batch;
            for (auto& entry : staged_) {
                batch.push_back(&entry.pending);
            }
            const auto rows = call(batch);
            if (rows.size() != staged_.size()) {
                throw StagedMismatch("oe_append_batch answered a wrong number of rows");
            }
            for (std::size_t i = 0; i < staged_.size(); ++i) {
                const auto& row = rows[static_cast<pqxx::result::size_type>(i)];
                const auto result = read_result(row);
                const auto& predicted = staged_[i].predicted;
                if (!result.ok() || result.value().first_position != predicted.first_position ||
                    result.value().last_position != predicted.last_position ||
                    result.value().stream_versions != predicted.stream_versions ||
                    row[7].as<std::int64_t>() != recorded_at_us_) {
                    throw StagedMismatch(
                        fmt::format("a staged append at position {} did not land as decided",
                                    predicted.first_position));
                }
                head_ = std::max(head_, predicted.last_position);
            }
            staged_.clear();
        }

        [[nodiscard]] std::int64_t head() const { return head_; }

      private:
        pqxx::result call(std::vector<PendingAppend*>& batch) {
            const BatchArguments args = batch_arguments(batch);
            return tx_.exec_prepared("append", args.append_slot_end, args.slot_event_end,
                                     args.stream_id, args.expected, args.event_slot, args.type,
                                     args.schema_version, args.data, args.metadata);
        }

        /// The events exactly as the function stored them (same order, positions, versions).
        static void synthesize(const std::vector<StreamAppend>& streams, const AppendResult& r,
                               std::int64_t recorded_at_us, std::vector<RecordedEvent>& out) {
            std::int64_t position = r.first_position;
            for (std::size_t s = 0; s < streams.size(); ++s) {
                const auto& events = streams[s].events;
                std::int64_t version =
                    r.stream_versions[s] - static_cast<std::int64_t>(events.size());
                for (const auto& event : events) {
                    out.push_back(RecordedEvent{position++, streams[s].stream_id, ++version,
                                                event.type, event.schema_version, event.data,
                                                event.metadata.to_json(), recorded_at_us});
                }
            }
        }

        struct Staged {
            PendingAppend pending;
            AppendResult predicted;
        };

        PostgresEventStore& store_;
        pqxx::work& tx_;
        bool staging_;
        std::int64_t recorded_at_us_ = 0;
        std::int64_t head_ = 0;
        std::vector<Staged> staged_;
    };

    void commit_decision_batch(std::vector<PendingAppend*>& batch) {
        try {
            commit_decisions(batch, true);
        } catch (const StagedMismatch& e) {
            // Rare: a stream a decision took for new exists (another instance stored the same
            // idempotency record first, say). Nothing was committed; the state holds the
            // staged events, so it starts over from the log, and the batch runs again with a
            // round trip per append, which reports that conflict to its caller alone.
            log(LogLevel::warn, "staged decisions did not land as decided; deciding again",
                {{"why", e.what()}});
            batch_state(batch)->clear();
            for (PendingAppend* pending : batch) {
                pending->result.reset();
                pending->failure = nullptr;
                if (pending->decide) {
                    pending->streams.clear();
                }
            }
            commit_decisions(batch, false);
        }
    }

    void commit_decisions(std::vector<PendingAppend*>& batch, bool staging) {
        std::int64_t head = 0;
        bool sent_commit = false;
        try {
            pqxx::work tx(*writer_);
            DecisionTx decisions(*this, tx, staging);
            run_batch(decisions, batch);
            head = decisions.head();
            sent_commit = true;
            tx.commit();
        } catch (const StagedMismatch&) {
            throw;  // Rolled back; the caller decides again.
        } catch (const std::exception& e) {
            batch_state(batch)->clear();  // It may hold events that were never committed.
            const bool broken = dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr ||
                                dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr;
            if (broken) {
                writer_.reset();
                if (sent_commit) {
                    throw AppendOutcomeUnknown(fmt::format(
                        "PostgreSQL connection lost during commit; the decisions may or may not "
                        "have been written: {}",
                        first_line(e.what())));
                }
            }
            rethrow_as_store_error(e, "deciding and appending");
        }
        signal_.raise(head);
    }

    void commit_plain_batch(std::vector<PendingAppend*>& batch) {
        const BatchArguments args = batch_arguments(batch);
        pqxx::result rows;
        bool sent = false;
        try {
            // One statement in autocommit: one round trip and one WAL flush for the batch.
            pqxx::nontransaction tx(*writer_);
            sent = true;
            rows = tx.exec_prepared("append", args.append_slot_end, args.slot_event_end,
                                    args.stream_id, args.expected, args.event_slot, args.type,
                                    args.schema_version, args.data, args.metadata);
        } catch (const pqxx::broken_connection& e) {
            writer_.reset();
            if (!sent) {
                throw StoreError(fmt::format("cannot reach PostgreSQL: {}", first_line(e.what())));
            }
            throw AppendOutcomeUnknown(fmt::format(
                "PostgreSQL connection lost during an append; it may or may not have been "
                "written (read the stream or retry with an exact expected version): {}",
                first_line(e.what())));
        } catch (const std::exception& e) {
            rethrow_as_store_error(e, "appending");
        }
        if (rows.size() != batch.size()) {
            throw AppendOutcomeUnknown(fmt::format(
                "oe_append_batch answered {} rows for {} appends", rows.size(), batch.size()));
        }
        std::int64_t head = 0;
        try {
            for (std::size_t i = 0; i < batch.size(); ++i) {
                auto result = read_result(rows[static_cast<pqxx::result::size_type>(i)]);
                if (result.ok()) {
                    head = std::max(head, result.value().last_position);
                }
                batch[i]->result.emplace(std::move(result));
            }
        } catch (const std::exception& e) {
            // The batch committed; only our reading of the answer failed.
            throw AppendOutcomeUnknown(
                fmt::format("cannot read oe_append_batch's answer: {}", first_line(e.what())));
        }
        signal_.raise(head);
    }

    class Receiver final : public pqxx::notification_receiver {
      public:
        Receiver(Connection& conn, PostgresEventStore& store)
            : pqxx::notification_receiver(conn, notify_channel), store_(store) {}
        void operator()(const std::string& payload, int) override {
            std::int64_t head = 0;
            const auto [ptr, ec] =
                std::from_chars(payload.data(), payload.data() + payload.size(), head);
            if (ec == std::errc{} && ptr == payload.data() + payload.size()) {
                // A hint only: a forged value is corrected by the next head_position().
                store_.signal_.raise(head);
            }
        }

      private:
        PostgresEventStore& store_;
    };

    void listen() {
        bool listening = true;  // Log when that changes, not at every retry.
        while (!stopping_.load()) {
            try {
                auto conn = open_connection();
                Receiver receiver(*conn, *this);
                (void)head_position();  // Whatever committed while we were not listening.
                if (!listening) {
                    log(LogLevel::info, "LISTEN oe_events restored");
                    listening = true;
                }
                while (!stopping_.load()) {
                    conn->await_notification(0, 200'000);
                }
            } catch (const std::exception& e) {
                // The database is away; waiters fall back to polling until it is back.
                if (listening) {
                    log(LogLevel::warn, "LISTEN oe_events lost; subscribers poll until it is back",
                        {{"error", first_line(e.what())}});
                    listening = false;
                }
                for (int i = 0; i < 10 && !stopping_.load(); ++i) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(100));
                }
            }
        }
    }

    PostgresOptions options_;
    GroupCommitter committer_;
    std::unique_ptr<Connection> writer_;
    std::mutex readers_mutex_;
    std::condition_variable readers_free_;
    std::vector<std::unique_ptr<Connection>> readers_;
    std::size_t connections_ = 0;  // Pooled connections in existence (idle or lent out).
    HeadSignal signal_;
    std::once_flag listener_started_;
    std::thread listener_;
    std::atomic<bool> stopping_{false};
    std::atomic<bool> priority_warned_{false};
    ColumnTypes column_types_;  // Of the tables bulk inserts go to (PgTx).
};

}  // namespace

int latest_schema_version() {
    return migrations().back().version;
}

std::string url_user(const std::string& url) {
    for (const auto& [key, value] : parse_conninfo(url)) {
        if (key == "user") {
            return value;
        }
    }
    return {};
}

namespace {

void grant_application_role(pqxx::work& tx, const std::string& app_role) {
    const std::string role = tx.quote_name(app_role);
    // Read models (and tables later migrations add) are the application's to change. The event
    // log is not: the application may read it and append only through oe_append_batch (which
    // runs as the owner), so no INSERT, UPDATE, DELETE or TRUNCATE on it, and nothing on the
    // migration record but reading it.
    tx.exec(fmt::format(
        "GRANT USAGE ON SCHEMA public TO {0}; "
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {0}; "
        "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {0}; "
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {0}; "
        "REVOKE ALL ON oe_events FROM {0}; "
        "GRANT SELECT ON oe_events TO {0}; "
        "REVOKE ALL ON oe_schema_migrations FROM {0}; "
        "GRANT SELECT ON oe_schema_migrations TO {0}; "
        "GRANT EXECUTE ON FUNCTION oe_append_batch(int[], int[], text[], bigint[], int[], "
        "text[], int[], json[], json[]) TO {0}; "
        // A rebuild empties its shadow tables; TRUNCATE frees them at once where DELETE
        // would leave every row dead until a vacuum.
        "GRANT TRUNCATE ON rm_partners_rebuild, rm_warehouses_rebuild, rm_pricing_rebuild, "
        "rm_credit_rebuild, rm_stock_rebuild, rm_orders_rebuild, rm_system_config_rebuild "
        "TO {0}",
        role));
}

/// Background stores lower their backends' priority through the `prioritize` extension
/// (PostgresOptions::backend_niceness). Not part of the schema: created when the server has it
/// and the migrating role is a superuser (it is not a trusted extension), left alone otherwise.
void create_prioritize_if_possible(Connection& conn) {
    try {
        pqxx::nontransaction q(conn);
        const auto row = q.exec1(
            "SELECT COALESCE((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), "
            "false), EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'prioritize'), "
            "EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'prioritize')");
        if (row[0].as<bool>() && row[1].as<bool>() && !row[2].as<bool>()) {
            q.exec("CREATE EXTENSION IF NOT EXISTS prioritize");
            log(LogLevel::info, "created the prioritize extension (background work yields CPU)");
        }
    } catch (const pqxx::sql_error& e) {
        log(LogLevel::warn, "could not create the prioritize extension",
            {{"error", first_line(e.what())}});
    }
}

}  // namespace

int migrate(const std::string& owner_url, const std::optional<std::string>& app_role) {
    auto conn = connect(owner_url);
    try {
        // Nothing to do (the common case at start-up, also for a role that may not create
        // tables): answer without writing anything.
        const int found = read_version(*conn);
        if (found > latest_schema_version()) {
            throw SchemaTooNew(
                fmt::format("database schema is version {}, this binary understands up to {}",
                            found, latest_schema_version()));
        }
        std::string current_user;
        {
            pqxx::nontransaction q(*conn);
            current_user = q.exec1("SELECT current_user")[0].c_str();
        }
        const bool grant = app_role && !app_role->empty() && *app_role != current_user;
        create_prioritize_if_possible(*conn);
        if (found == latest_schema_version() && !grant) {
            return found;
        }
        {
            pqxx::nontransaction lock(*conn);
            lock.exec(fmt::format("SELECT pg_advisory_lock({})", migration_lock_key));
        }
        int version = 0;
        {
            pqxx::work tx(*conn);
            tx.exec(
                "CREATE TABLE IF NOT EXISTS oe_schema_migrations (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())");
            version =
                tx.exec1("SELECT COALESCE(MAX(version), 0) FROM oe_schema_migrations")[0].as<int>();
            tx.commit();
        }
        if (version > latest_schema_version()) {
            throw SchemaTooNew(
                fmt::format("database schema is version {}, this binary understands up to {}",
                            version, latest_schema_version()));
        }
        for (const auto& migration : migrations()) {
            if (migration.version <= version) {
                continue;
            }
            pqxx::work tx(*conn);
            tx.exec(migration.sql);
            tx.exec_params("INSERT INTO oe_schema_migrations (version, name) VALUES ($1, $2)",
                           migration.version, std::string(migration.name));
            tx.commit();
        }
        if (grant) {
            pqxx::work tx(*conn);
            grant_application_role(tx, *app_role);
            tx.commit();
        }
        // Closing the connection would release the lock too; unlocking says so explicitly.
        pqxx::nontransaction unlock(*conn);
        unlock.exec(fmt::format("SELECT pg_advisory_unlock({})", migration_lock_key));
    } catch (const std::exception& e) {
        rethrow_as_store_error(e, "migrating");
    }
    return latest_schema_version();
}

std::unique_ptr<EventStore> open_event_store(const PostgresOptions& options) {
    return std::make_unique<PostgresEventStore>(options);
}

}  // namespace oe::postgres
