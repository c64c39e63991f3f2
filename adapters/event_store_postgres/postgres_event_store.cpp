#include <oe/event_store_postgres/postgres_event_store.hpp>

#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include <fmt/format.h>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <pqxx/pqxx>

#include <oe/kernel/group_commit.hpp>
#include <oe/kernel/invariant.hpp>
#include <oe/kernel/json_text.hpp>
#include <oe/kernel/time.hpp>

#include "migrations.hpp"

namespace oe::postgres {

namespace {

constexpr const char* notify_channel = "oe_events";

constexpr const char* select_columns =
    "SELECT global_position, stream_id, stream_version, type, schema_version, data, metadata, "
    "recorded_at FROM oe_events ";

/// Throws InvalidDatabaseUrl unless libpq can parse the URL.
void check_url(const std::string& url) {
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
    PQconninfoFree(options);
}

std::string first_line(const std::string& text) {
    const auto end = text.find('\n');
    return end == std::string::npos ? text : text.substr(0, end);
}

std::unique_ptr<pqxx::connection> connect(const std::string& url) {
    check_url(url);
    try {
        auto conn = std::make_unique<pqxx::connection>(url);
        pqxx::nontransaction setup(*conn);
        setup.exec(
            "SET TIME ZONE 'UTC'; SET DateStyle = 'ISO'; "
            "SET application_name = 'orderengine'");
        return conn;
    } catch (const pqxx::broken_connection& e) {
        throw StoreError(fmt::format("cannot connect to PostgreSQL: {}", first_line(e.what())));
    } catch (const pqxx::sql_error& e) {
        throw StoreError(fmt::format("PostgreSQL: {}", first_line(e.what())));
    }
}

int current_version(pqxx::transaction_base& tx) {
    tx.exec(
        "CREATE TABLE IF NOT EXISTS oe_schema_migrations (version integer PRIMARY KEY, "
        "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())");
    return tx.exec1("SELECT COALESCE(MAX(version), 0) FROM oe_schema_migrations")[0].as<int>();
}

int read_version(pqxx::connection& conn) {
    pqxx::nontransaction tx(conn);
    const auto exists = tx.exec1("SELECT to_regclass('oe_schema_migrations') IS NOT NULL");
    if (!exists[0].as<bool>()) {
        return 0;
    }
    return tx.exec1("SELECT COALESCE(MAX(version), 0) FROM oe_schema_migrations")[0].as<int>();
}

RecordedEvent read_row(const pqxx::row& row, const UpcasterRegistry* upcasters) {
    RecordedEvent event;
    event.global_position = row[0].as<std::int64_t>();
    event.stream_id.assign(row[1].c_str(), row[1].size());
    event.stream_version = row[2].as<std::int64_t>();
    event.type.assign(row[3].c_str(), row[3].size());
    const auto schema_version = row[4].as<std::int64_t>();
    if (schema_version < 1 || schema_version > 65535) {
        throw CorruptEvent(event.global_position,
                           fmt::format("schema_version {} is out of range", schema_version));
    }
    event.schema_version = static_cast<std::uint16_t>(schema_version);
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

class PgTx final : public SqlTx {
  public:
    explicit PgTx(pqxx::work& tx) : tx_(tx) {}

    void exec(std::string_view sql, const std::vector<SqlValue>& params) override {
        ParamList list(params);
        tx_.exec_params(std::string(sql), list.dynamic());
    }

    std::vector<SqlRow> query(std::string_view sql, const std::vector<SqlValue>& params) override {
        ParamList list(params);
        const pqxx::result result = tx_.exec_params(std::string(sql), list.dynamic());
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

  private:
    pqxx::work& tx_;
};

/// Serialises a batch into the oe_append_batch input (see migrations.cpp).
std::string batch_json(const std::vector<PendingAppend*>& batch) {
    std::string out;
    out.reserve(256 * batch.size());
    out.push_back('[');
    for (std::size_t a = 0; a < batch.size(); ++a) {
        out += a == 0 ? "{\"s\":[" : ",{\"s\":[";
        const auto& streams = batch[a]->streams;
        for (std::size_t s = 0; s < streams.size(); ++s) {
            out += s == 0 ? "{\"id\":" : ",{\"id\":";
            append_json_string(out, streams[s].stream_id);
            out += ",\"e\":";
            out += std::to_string(streams[s].expected.encoded());
            out += ",\"ev\":[";
            for (std::size_t e = 0; e < streams[s].events.size(); ++e) {
                const auto& event = streams[s].events[e];
                out += e == 0 ? "{\"t\":" : ",{\"t\":";
                append_json_string(out, event.type);
                out += ",\"v\":";
                out += std::to_string(event.schema_version);
                out += ",\"d\":";
                out += event.data;
                out += ",\"m\":";
                out += event.metadata.to_json();
                out.push_back('}');
            }
            out += "]}";
        }
        out += "]}";
    }
    out.push_back(']');
    return out;
}

class PostgresEventStore final : public EventStore {
  public:
    explicit PostgresEventStore(const PostgresOptions& options)
        : options_(options),
          committer_([this](std::vector<PendingAppend*>& batch) { commit_batch(batch); },
                     options.batch_events_max) {
        auto conn = connect(options_.url);
        const int version = read_version(*conn);
        if (version > latest_schema_version()) {
            throw SchemaTooNew(fmt::format(
                "database schema is version {}, this binary understands up to {}; upgrade the "
                "binary",
                version, latest_schema_version()));
        }
        if (version < latest_schema_version()) {
            throw StoreError(fmt::format(
                "database schema is version {}, this binary needs {}; run 'orderengine migrate'",
                version, latest_schema_version()));
        }
        prepare_reader(*conn);
        give_back(std::move(conn));
        head_.store(head_position());
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

    std::vector<RecordedEvent> read_stream(std::string_view stream_id, std::int64_t from_version,
                                           std::size_t max_count) override {
        return with_reader([&](pqxx::connection& conn) {
            pqxx::nontransaction tx(conn);
            return collect(tx.exec_prepared("read_stream", std::string(stream_id), from_version,
                                            clamp_limit(max_count)));
        });
    }

    std::vector<RecordedEvent> read_all(std::int64_t after_position,
                                        std::size_t max_count) override {
        return with_reader([&](pqxx::connection& conn) {
            pqxx::nontransaction tx(conn);
            return collect(tx.exec_prepared("read_all", after_position, clamp_limit(max_count)));
        });
    }

    std::int64_t head_position() override {
        const auto head = with_reader([](pqxx::connection& conn) {
            pqxx::nontransaction tx(conn);
            return tx.exec_prepared1("head")[0].as<std::int64_t>();
        });
        raise_head(head);
        return head;
    }

    bool wait_for_events(std::int64_t after_position, std::chrono::milliseconds timeout) override {
        std::call_once(listener_started_,
                       [this] { listener_ = std::thread([this] { listen(); }); });
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        std::unique_lock lock(signal_mutex_);
        const std::uint64_t interrupts = interrupts_;
        for (;;) {
            if (head_.load() > after_position) {
                return true;
            }
            if (interrupts_ != interrupts) {
                return false;
            }
            const auto now = std::chrono::steady_clock::now();
            if (now >= deadline) {
                return false;
            }
            const auto slice = std::min<std::chrono::steady_clock::duration>(
                deadline - now, options_.poll_interval);
            if (signal_.wait_for(lock, slice) == std::cv_status::timeout) {
                // NOTIFY is the fast path; a poll covers a listener that is reconnecting.
                lock.unlock();
                const std::int64_t head = head_position();
                lock.lock();
                (void)head;
            }
        }
    }

    void interrupt_waiters() override {
        std::lock_guard lock(signal_mutex_);
        ++interrupts_;
        signal_.notify_all();
    }

    std::int64_t load_checkpoint(std::string_view projection) override {
        return with_reader([&](pqxx::connection& conn) {
            pqxx::nontransaction tx(conn);
            const auto result = tx.exec_prepared("checkpoint", std::string(projection));
            return result.empty() ? std::int64_t{0} : result[0][0].as<std::int64_t>();
        });
    }

    void commit_projection(std::string_view projection, std::int64_t position,
                           const std::function<void(SqlTx&)>& apply) override {
        with_reader([&](pqxx::connection& conn) {
            pqxx::work tx(conn);
            const auto stored = tx.exec_params(
                "SELECT position FROM oe_checkpoints WHERE projection = $1 "
                "FOR UPDATE",
                std::string(projection));
            OE_INVARIANT(stored.empty() || stored[0][0].as<std::int64_t>() <= position,
                         "a projection checkpoint may not move backwards");
            PgTx sql(tx);
            apply(sql);
            tx.exec_params(
                "INSERT INTO oe_checkpoints (projection, position, updated_at) "
                "VALUES ($1, $2, now()) ON CONFLICT (projection) DO UPDATE SET "
                "position = excluded.position, updated_at = excluded.updated_at",
                std::string(projection), position);
            tx.commit();
            return 0;
        });
    }

    std::string_view backend_name() const override { return "postgresql"; }

  private:
    static std::int64_t clamp_limit(std::size_t max_count) {
        return max_count > static_cast<std::size_t>(INT64_MAX)
                   ? INT64_MAX
                   : static_cast<std::int64_t>(max_count);
    }

    static void prepare_reader(pqxx::connection& conn) {
        conn.prepare("read_all",
                     std::string(select_columns) +
                         "WHERE global_position > $1 ORDER BY global_position LIMIT $2");
        conn.prepare("read_stream", std::string(select_columns) +
                                        "WHERE stream_id = $1 AND stream_version >= $2 "
                                        "ORDER BY stream_version LIMIT $3");
        conn.prepare("head", "SELECT COALESCE(MAX(global_position), 0) FROM oe_events");
        conn.prepare("checkpoint", "SELECT position FROM oe_checkpoints WHERE projection = $1");
    }

    std::unique_ptr<pqxx::connection> take_reader() {
        {
            std::lock_guard lock(readers_mutex_);
            if (!readers_.empty()) {
                auto conn = std::move(readers_.back());
                readers_.pop_back();
                return conn;
            }
        }
        auto conn = connect(options_.url);
        prepare_reader(*conn);
        return conn;
    }

    void give_back(std::unique_ptr<pqxx::connection> conn) {
        std::lock_guard lock(readers_mutex_);
        if (readers_.size() < options_.readers_max && conn->is_open()) {
            readers_.push_back(std::move(conn));
        }
    }

    /// Runs `fn` on a pooled connection; database failures become StoreError, and a broken
    /// connection is dropped instead of returned to the pool.
    template <typename Fn>
    std::invoke_result_t<Fn&, pqxx::connection&> with_reader(Fn&& fn) {
        auto conn = take_reader();
        try {
            auto result = fn(*conn);
            give_back(std::move(conn));
            return result;
        } catch (const pqxx::broken_connection& e) {
            throw StoreError(fmt::format("PostgreSQL connection lost: {}", first_line(e.what())));
        } catch (const pqxx::sql_error& e) {
            give_back(std::move(conn));
            throw StoreError(fmt::format("PostgreSQL: {}", first_line(e.what())));
        } catch (...) {
            give_back(std::move(conn));
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

    void raise_head(std::int64_t head) {
        if (head <= head_.load()) {
            return;
        }
        std::lock_guard lock(signal_mutex_);
        if (head > head_.load()) {
            head_.store(head);
            signal_.notify_all();
        }
    }

    // Runs on the group-commit leader's thread; one leader at a time owns writer_.
    void commit_batch(std::vector<PendingAppend*>& batch) {
        const std::string input = batch_json(batch);
        std::string output;
        try {
            if (!writer_ || !writer_->is_open()) {
                writer_ = connect(options_.url);
                writer_->prepare("append", "SELECT oe_append_batch($1::json)");
            }
            // One statement in autocommit: one round trip and one WAL flush for the batch.
            pqxx::nontransaction tx(*writer_);
            const auto row = tx.exec_prepared1("append", input);
            output.assign(row[0].c_str(), row[0].size());
        } catch (const pqxx::in_doubt_error& e) {
            writer_.reset();
            throw StoreError(fmt::format(
                "PostgreSQL connection lost during commit; the append may or may not have been "
                "written (retry with the same expected version to find out): {}",
                first_line(e.what())));
        } catch (const pqxx::broken_connection& e) {
            writer_.reset();
            throw StoreError(fmt::format(
                "PostgreSQL connection lost during append; the append may or may not have been "
                "written (retry with the same expected version to find out): {}",
                first_line(e.what())));
        } catch (const pqxx::sql_error& e) {
            throw StoreError(fmt::format("PostgreSQL append failed: {}", first_line(e.what())));
        }
        const auto results = boost::json::parse(output).as_array();
        OE_INVARIANT(results.size() == batch.size(), "oe_append_batch returned a wrong count");
        std::int64_t head = 0;
        for (std::size_t i = 0; i < batch.size(); ++i) {
            const auto& entry = results[i].as_object();
            if (entry.at("ok").as_bool()) {
                AppendResult result;
                result.first_position = entry.at("first").to_number<std::int64_t>();
                result.last_position = entry.at("last").to_number<std::int64_t>();
                for (const auto& version : entry.at("versions").as_array()) {
                    result.stream_versions.push_back(version.to_number<std::int64_t>());
                }
                head = std::max(head, result.last_position);
                batch[i]->result.emplace(std::move(result));
            } else {
                AppendError error;
                error.reason = AppendRejected::wrong_expected_version;
                error.stream_id = std::string(entry.at("stream").as_string());
                error.expected = entry.at("expected").to_number<std::int64_t>();
                error.actual = entry.at("actual").to_number<std::int64_t>();
                error.message =
                    fmt::format("stream '{}' is at version {}, expected {}", error.stream_id,
                                error.actual, ExpectedVersion::exact(error.expected).describe());
                batch[i]->result.emplace(std::move(error));
            }
        }
        raise_head(head);
    }

    class Receiver final : public pqxx::notification_receiver {
      public:
        Receiver(pqxx::connection& conn, PostgresEventStore& store)
            : pqxx::notification_receiver(conn, notify_channel), store_(store) {}
        void operator()(const std::string& payload, int) override {
            try {
                store_.raise_head(std::stoll(payload));
            } catch (const std::exception&) {
                // Not ours (someone else used the channel): the poll still covers us.
            }
        }

      private:
        PostgresEventStore& store_;
    };

    void listen() {
        while (!stopping_.load()) {
            try {
                auto conn = connect(options_.url);
                Receiver receiver(*conn, *this);
                head_position();  // Whatever committed while we were not listening.
                while (!stopping_.load()) {
                    conn->await_notification(0, 200'000);
                }
            } catch (const std::exception&) {
                // The database is away; waiters fall back to polling until it is back.
                for (int i = 0; i < 10 && !stopping_.load(); ++i) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(100));
                }
            }
        }
    }

    PostgresOptions options_;
    GroupCommitter committer_;
    std::unique_ptr<pqxx::connection> writer_;
    std::mutex readers_mutex_;
    std::vector<std::unique_ptr<pqxx::connection>> readers_;
    std::mutex signal_mutex_;
    std::condition_variable signal_;
    std::atomic<std::int64_t> head_{0};
    std::uint64_t interrupts_ = 0;
    std::once_flag listener_started_;
    std::thread listener_;
    std::atomic<bool> stopping_{false};
};

}  // namespace

int latest_schema_version() {
    return migrations().back().version;
}

std::string url_user(const std::string& url) {
    check_url(url);
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
    std::string user;
    for (auto* option = options; option != nullptr && option->keyword != nullptr; ++option) {
        if (std::string_view(option->keyword) == "user" && option->val != nullptr) {
            user = option->val;
        }
    }
    PQconninfoFree(options);
    return user;
}

int migrate(const std::string& owner_url, const std::optional<std::string>& app_role) {
    auto conn = connect(owner_url);
    try {
        {
            pqxx::nontransaction lock(*conn);
            lock.exec(fmt::format("SELECT pg_advisory_lock({})", migration_lock_key));
        }
        int version = 0;
        {
            pqxx::work tx(*conn);
            version = current_version(tx);
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
        if (app_role && !app_role->empty()) {
            pqxx::work tx(*conn);
            const std::string role = tx.quote_name(*app_role);
            // Read models (and tables later migrations add) are the application's to change;
            // the event log and the migration record are not.
            tx.exec(fmt::format(
                "GRANT USAGE ON SCHEMA public TO {0}; "
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {0}; "
                "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {0}; "
                "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
                "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {0}; "
                "REVOKE ALL ON oe_events FROM {0}; "
                "GRANT SELECT, INSERT ON oe_events TO {0}; "
                "REVOKE ALL ON oe_schema_migrations FROM {0}; "
                "GRANT SELECT ON oe_schema_migrations TO {0}; "
                "GRANT EXECUTE ON FUNCTION oe_append_batch(json) TO {0}",
                role));
            tx.commit();
        }
        // Closing the connection would release the lock too; unlocking says so explicitly.
        pqxx::nontransaction unlock(*conn);
        unlock.exec(fmt::format("SELECT pg_advisory_unlock({})", migration_lock_key));
    } catch (const pqxx::broken_connection& e) {
        throw StoreError(fmt::format("PostgreSQL connection lost: {}", first_line(e.what())));
    } catch (const pqxx::sql_error& e) {
        throw StoreError(fmt::format("migration failed: {}", first_line(e.what())));
    }
    return latest_schema_version();
}

std::unique_ptr<EventStore> open_event_store(const PostgresOptions& options) {
    return std::make_unique<PostgresEventStore>(options);
}

}  // namespace oe::postgres
