#include <oe/event_store_sqlite/sqlite_event_store.hpp>

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <oe/kernel/batch_writer.hpp>
#include <oe/kernel/group_commit.hpp>
#include <oe/kernel/head_signal.hpp>
#include <oe/kernel/invariant.hpp>
#include <oe/kernel/log.hpp>
#include <oe/kernel/metrics.hpp>
#include <oe/kernel/thread_name.hpp>
#include <oe/kernel/time.hpp>

#include "migrations.hpp"
#include "sqlite_db.hpp"

namespace oe::sqlite {

namespace {

constexpr const char* select_columns =
    "SELECT global_position, stream_id, stream_version, type, schema_version, data, metadata, "
    "recorded_at_us FROM oe_events ";

void configure(Database& db, std::chrono::milliseconds busy_timeout) {
    set_busy_wait(db.handle(), busy_timeout);
    // FULL: the WAL is fsynced at every commit, so an acknowledged append survives an OS
    // crash. Group commit makes one fsync carry many appends.
    db.exec("PRAGMA synchronous = FULL");
    db.exec("PRAGMA foreign_keys = ON");
    // Debian's SQLite is built with SQLITE_SECURE_DELETE, which zeroes and writes every page a
    // delete frees: emptying a rebuild's 500k-row shadow table wrote ~63k pages to the WAL
    // (sqlite3, rolled back: 0.74 s against 0.12 s without). Nothing here needs deleted bytes
    // erased: the log is append-only, and a read model holds nothing the log does not.
    db.exec("PRAGMA secure_delete = OFF");
}

/// Checkpoints the WAL (copies it into the database file, fsyncs that, lets the WAL start over)
/// on its own thread and connection, for the connections that take_over() hands it. SQLite's
/// automatic checkpoint runs inside whichever commit pushes the WAL past its threshold: for a
/// rebuild writing its shadow tables, that is its own writer thread, copying megabytes and
/// fsyncing between chunks. Here those commits only count frames. PASSIVE checkpoints take no
/// lock that writers or readers wait for; what a reader still needs stays in the WAL for the
/// next round.
class WalCheckpointer {
  public:
    /// Frames in the WAL that ask for a checkpoint: SQLite's own default (~4 MB of pages).
    static constexpr int threshold_frames = 1000;

    WalCheckpointer(const std::string& path, metrics::Registry* metrics)
        : db_(path),
          done_(metrics == nullptr
                    ? nullptr
                    : &metrics->counter("sqlite_wal_checkpoints_total",
                                        "WAL checkpoints run by the store's checkpoint thread")) {
        db_.exec("PRAGMA synchronous = FULL");
        thread_ = std::thread([this] {
            name_this_thread("oe-wal-ckpt");
            run();
        });
    }
    ~WalCheckpointer() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        wake_.notify_one();
        thread_.join();
    }
    WalCheckpointer(const WalCheckpointer&) = delete;
    WalCheckpointer& operator=(const WalCheckpointer&) = delete;

    /// Replaces `db`'s automatic checkpoint (the same hook) with a request to this thread.
    void take_over(Database& db) { sqlite3_wal_hook(db.handle(), &on_commit, this); }

  private:
    static int on_commit(void* self, sqlite3* /*db*/, const char* /*schema*/, int frames) {
        if (frames >= threshold_frames) {
            auto* checkpointer = static_cast<WalCheckpointer*>(self);
            {
                std::lock_guard lock(checkpointer->mutex_);
                checkpointer->requested_ = true;
            }
            checkpointer->wake_.notify_one();
        }
        return SQLITE_OK;
    }

    void run() {
        std::unique_lock lock(mutex_);
        while (true) {
            wake_.wait(lock, [this] { return requested_ || stop_; });
            if (stop_) {
                return;
            }
            requested_ = false;
            lock.unlock();
            int frames = 0;
            int copied = 0;
            const int rc = sqlite3_wal_checkpoint_v2(db_.handle(), nullptr,
                                                     SQLITE_CHECKPOINT_PASSIVE, &frames, &copied);
            if (rc == SQLITE_OK && done_ != nullptr) {
                done_->inc();
            }
            if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
                log(LogLevel::warn, "sqlite WAL checkpoint failed; the next commit asks again",
                    {{"error", sqlite3_errstr(rc)}});
            }
            lock.lock();
        }
    }

    Database db_;
    metrics::Counter* done_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool requested_ = false;
    bool stop_ = false;
    std::thread thread_;
};

/// The schema version recorded in the file (0 when it has none), without writing anything.
int current_version(Database& db) {
    Statement exists(db.handle(),
                     "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND "
                     "name = 'oe_schema_migrations'");
    exists.step();
    if (exists.column_int64(0) == 0) {
        return 0;
    }
    Statement query(db.handle(), "SELECT COALESCE(MAX(version), 0) FROM oe_schema_migrations");
    query.step();
    return static_cast<int>(query.column_int64(0));
}

void ensure_parent_directory(const std::string& path) {
    const auto parent = std::filesystem::path(path).parent_path();
    if (parent.empty()) {
        return;
    }
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
        throw StoreError(
            fmt::format("sqlite: cannot create directory '{}': {}", parent.string(), ec.message()));
    }
}

RecordedEvent read_row(const Statement& row, const UpcasterRegistry* upcasters) {
    RecordedEvent event;
    event.global_position = row.column_int64(0);
    event.stream_id = row.column_text(1);
    event.stream_version = row.column_int64(2);
    event.type = row.column_text(3);
    const std::int64_t schema_version = row.column_int64(4);
    if (schema_version < 1 || schema_version > 65535) {
        throw CorruptEvent(event.global_position,
                           fmt::format("schema_version {} is out of range", schema_version));
    }
    event.schema_version = static_cast<std::uint16_t>(schema_version);
    event.data = row.column_text(5);
    event.metadata = row.column_text(6);
    event.recorded_at_us = row.column_int64(7);
    if (upcasters != nullptr) {
        upcasters->upcast(event);
    }
    return event;
}

/// Translates the portable $N placeholders into SQLite's ?N.
std::string to_sqlite_placeholders(std::string_view sql) {
    std::string out(sql);
    for (std::size_t i = 0; i + 1 < out.size(); ++i) {
        if (out[i] == '$' && out[i + 1] >= '0' && out[i + 1] <= '9') {
            out[i] = '?';
        }
    }
    return out;
}

/// Room for an integer's digits.
using Digits = std::array<char, 24>;

/// A column of the current row as text (nullopt: NULL). An integer's digits are written into
/// `digits` rather than by sqlite3_column_text, which turns the value into text inside SQLite:
/// an allocation per value and row (a rebuild's checksums read ~1M rows with three or four
/// integers each). The digits are the same.
std::optional<std::string_view> column_view(Statement& statement, int column, Digits& digits) {
    switch (statement.column_type(column)) {
        case SQLITE_NULL:
            return std::nullopt;
        case SQLITE_INTEGER: {
            const auto written = std::to_chars(digits.data(), digits.data() + digits.size(),
                                               statement.column_int64(column));
            return std::string_view(digits.data(),
                                    static_cast<std::size_t>(written.ptr - digits.data()));
        }
        default:
            return statement.column_text(column);
    }
}

class SqliteTx final : public SqlTx {
  public:
    explicit SqliteTx(Database& db) : db_(db) {}

    void exec(std::string_view sql, const std::vector<SqlValue>& params) override {
        StatementUse statement(prepare(sql, params));
        while (statement->step()) {
        }
    }

    std::vector<SqlRow> query(std::string_view sql, const std::vector<SqlValue>& params) override {
        StatementUse statement(prepare(sql, params));
        std::vector<SqlRow> rows;
        while (statement->step()) {
            SqlRow row;
            const int columns = statement->column_count();
            row.reserve(static_cast<std::size_t>(columns));
            Digits digits;
            for (int c = 0; c < columns; ++c) {
                if (const auto value = column_view(*statement, c, digits)) {
                    row.emplace_back(std::string(*value));
                } else {
                    row.emplace_back(std::nullopt);
                }
            }
            rows.push_back(std::move(row));
        }
        return rows;
    }

    void for_each_row(std::string_view sql, const std::vector<SqlValue>& params,
                      const std::function<void(const RowView&)>& each) override {
        StatementUse statement(prepare(sql, params));
        RowView view;
        std::vector<Digits> digits;
        while (statement->step()) {
            const int columns = statement->column_count();
            view.resize(static_cast<std::size_t>(columns));
            digits.resize(static_cast<std::size_t>(columns));
            for (int c = 0; c < columns; ++c) {
                const auto at = static_cast<std::size_t>(c);
                view[at] = column_view(*statement, c, digits[at]);
            }
            each(view);
        }
    }

  protected:
    /// Bound straight from the rows (the default copies them into a parameter list and
    /// rebuilds the statement's text, tens of kilobytes, to look it up: a rebuild's shadow
    /// write inserts ~500k rows).
    void insert_slice(const std::string& table, const std::vector<std::string>& columns,
                      const SqlValue* values, std::size_t rows) override {
        StatementUse statement(db_.cached_insert(table, columns, rows));
        bind(*statement, values, rows * columns.size());
        while (statement->step()) {
        }
    }

  private:
    Statement& prepare(std::string_view sql, const std::vector<SqlValue>& params) {
        Statement& statement = db_.cached(to_sqlite_placeholders(sql));
        bind(statement, params.data(), params.size());
        return statement;
    }

    static void bind(Statement& statement, const SqlValue* params, std::size_t count) {
        statement.reset();
        for (std::size_t i = 0; i < count; ++i) {
            const int index = static_cast<int>(i + 1);
            if (const auto* number = std::get_if<std::int64_t>(&params[i])) {
                statement.bind(index, *number);
            } else if (const auto* text = std::get_if<std::string>(&params[i])) {
                statement.bind(index, std::string_view(*text));
            } else {
                statement.bind_null(index);
            }
        }
    }

    Database& db_;
};

class SqliteEventStore final : public EventStore {
  public:
    explicit SqliteEventStore(const SqliteOptions& options)
        : options_(options),
          writer_(options.path),
          projector_(options.path),
          checkpointer_(options.path, options.metrics),
          committer_([this](std::vector<PendingAppend*>& batch) { commit_batch(batch); },
                     options.batch_events_max) {
        configure(writer_, options_.busy_timeout);
        configure(projector_, options_.busy_timeout);
        // The projector's commits carry only derived data (read models, rebuild shadows,
        // checkpoints), each read model with its checkpoint in one transaction. Without an
        // fsync per commit, an OS crash can lose the last few of them — both the rows and the
        // checkpoint, atomically (WAL) — and the projector redoes them from the log. Process
        // crashes lose nothing either way. The next fsync of the WAL (an append's) covers them.
        projector_.exec("PRAGMA synchronous = NORMAL");
        // Only the projector's commits (read models, a rebuild's shadow writes: megabytes at a
        // time) hand checkpoints to the thread. The appending connection keeps SQLite's own:
        // its commits are small, and a checkpoint run between two of them catches up with the
        // whole WAL, so the next commit starts the WAL file over; a thread checkpointing beside
        // a stream of commits never catches up, the WAL file only grows, and every fsync then
        // also writes its new size (measured: one caller 4,616 → 1,863 orders/s).
        checkpointer_.take_over(projector_);
        const int version = current_version(writer_);
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
        signal_.reset(query_head());
    }

    ~SqliteEventStore() override {
        for (const auto& [name, fd] : hold_fds_) {
            ::close(fd);
        }
    }
    SqliteEventStore(const SqliteEventStore&) = delete;
    SqliteEventStore& operator=(const SqliteEventStore&) = delete;

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
        auto reader = lease();
        StatementUse query(reader->db.cached(
            std::string(select_columns) +
            "WHERE stream_id = ?1 AND stream_version >= ?2 ORDER BY stream_version LIMIT ?3"));
        query->bind(1, stream_id);
        query->bind(2, from_version);
        query->bind(3, clamp_limit(max_count));
        return collect(*query);
    }

    std::vector<RecordedEvent> read_all(std::int64_t after_position,
                                        std::size_t max_count) override {
        auto reader = lease();
        StatementUse query(
            reader->db.cached(std::string(select_columns) +
                              "WHERE global_position > ?1 ORDER BY global_position LIMIT ?2"));
        query->bind(1, after_position);
        query->bind(2, clamp_limit(max_count));
        return collect(*query);
    }

    std::int64_t head_position() override {
        const std::int64_t head = query_head();
        signal_.reset(head);
        return head;
    }

    bool wait_for_events(std::int64_t after_position, std::chrono::milliseconds timeout,
                         const std::atomic<bool>* cancel) override {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            // Our own writer signals at once; another process's commit is seen at the next poll.
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
        auto reader = lease();
        StatementUse query(
            reader->db.cached("SELECT position FROM oe_checkpoints WHERE projection = ?1"));
        query->bind(1, projection);
        return query->step() ? query->column_int64(0) : 0;
    }

    void commit_projections(const std::vector<CheckpointMove>& moves,
                            const std::function<void(SqlTx&)>& apply) override {
        for (const auto& move : moves) {
            OE_INVARIANT(move.to >= move.from, "a projection checkpoint never moves back");
        }
        // One write transaction at a time in this process; the busy timeout only ever waits for
        // other processes.
        std::unique_lock write(write_mutex_);
        // A held checkpoint (with_checkpoints_held, in any process) is checked inside the write
        // transaction: the holder takes the write lock once after its hold, so a commit that
        // passed this check has ended before the holder reads the positions.
        const auto waiting_since = std::chrono::steady_clock::now();
        bool warned = false;
        for (;;) {
            projector_.exec("BEGIN IMMEDIATE");
            bool held = false;
            try {
                held = any_held(moves);
            } catch (...) {
                rollback(projector_);
                throw;
            }
            if (!held) {
                break;
            }
            rollback(projector_);
            write.unlock();
            if (!warned && std::chrono::steady_clock::now() - waiting_since > hold_warning) {
                warned = true;
                log(LogLevel::warn, "projection commit waits for a held checkpoint",
                    {{"projection", std::string(moves.front().projection)}});
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
            write.lock();
        }
        try {
            for (const auto& move : moves) {
                std::int64_t stored = 0;
                StatementUse query(
                    projector_.cached("SELECT position FROM oe_checkpoints WHERE projection = ?1"));
                query->bind(1, move.projection);
                if (query->step()) {
                    stored = query->column_int64(0);
                }
                if (stored != move.from) {
                    throw CheckpointConflict(
                        fmt::format("projection '{}' is at {}, not at {} where this batch starts",
                                    move.projection, stored, move.from));
                }
            }
            SqliteTx tx(projector_);
            apply(tx);
            const std::int64_t now = now_us();
            for (const auto& move : moves) {
                StatementUse upsert(projector_.cached(
                    "INSERT INTO oe_checkpoints (projection, position, updated_at_us) "
                    "VALUES (?1, ?2, ?3) ON CONFLICT (projection) DO UPDATE SET "
                    "position = excluded.position, updated_at_us = excluded.updated_at_us"));
                upsert->bind(1, move.projection);
                upsert->bind(2, move.to);
                upsert->bind(3, now);
                upsert->step();
            }
            projector_.exec("COMMIT");
        } catch (...) {
            rollback(projector_);
            throw;
        }
    }

    std::vector<SqlRow> query(std::string_view sql, const std::vector<SqlValue>& params) override {
        auto reader = lease();
        SqliteTx tx(reader->db);
        return tx.query(sql, params);
    }

    void scan(std::string_view sql, const std::vector<SqlValue>& params,
              const std::function<void(const SqlTx::RowView&)>& each) override {
        auto reader = lease();
        SqliteTx tx(reader->db);
        tx.for_each_row(sql, params, each);
    }

    std::unique_ptr<ReadSnapshot> snapshot() override { return std::make_unique<Snapshot>(*this); }

    void with_checkpoints_held(const std::vector<std::string>& projections,
                               const HeldCheckpoints& inspect,
                               const LockedCheckpoints& apply) override {
        // The hold: an exclusive flock per projection on a file beside the database (released
        // by the kernel if this process dies), which commit_projections checks inside its
        // write transaction. The database's write lock is taken only to read the positions
        // (after any projector commit that missed the hold has ended) and for `apply`.
        std::vector<HoldFile> holds;
        holds.reserve(projections.size());
        for (const auto& name : projections) {
            holds.emplace_back(hold_path(name));
        }
        const auto read_positions = [&] {
            std::vector<std::int64_t> positions;
            for (const auto& name : projections) {
                StatementUse query(
                    projector_.cached("SELECT position FROM oe_checkpoints WHERE projection = ?1"));
                query->bind(1, name);
                positions.push_back(query->step() ? query->column_int64(0) : 0);
            }
            return positions;
        };
        std::vector<std::int64_t> positions;
        {
            std::lock_guard write(write_mutex_);
            projector_.exec("BEGIN IMMEDIATE");
            try {
                positions = read_positions();
                projector_.exec("COMMIT");
            } catch (...) {
                rollback(projector_);
                throw;
            }
        }
        inspect(positions);
        if (!apply) {
            return;  // The hold files close: nothing to write, no write lock to take.
        }
        std::lock_guard write(write_mutex_);
        projector_.exec("BEGIN IMMEDIATE");
        try {
            if (read_positions() != positions) {
                throw StoreError("a held projection checkpoint moved (was the hold file removed?)");
            }
            SqliteTx tx(projector_);
            const auto next = apply(positions, tx);
            OE_INVARIANT(next.size() == positions.size(), "one position per projection");
            const std::int64_t now = now_us();
            for (std::size_t i = 0; i < projections.size(); ++i) {
                OE_INVARIANT(next[i] >= positions[i], "a projection checkpoint never moves back");
                StatementUse upsert(projector_.cached(
                    "INSERT INTO oe_checkpoints (projection, position, updated_at_us) "
                    "VALUES (?1, ?2, ?3) ON CONFLICT (projection) DO UPDATE SET "
                    "position = excluded.position, updated_at_us = excluded.updated_at_us"));
                upsert->bind(1, projections[i]);
                upsert->bind(2, next[i]);
                upsert->bind(3, now);
                upsert->step();
            }
            projector_.exec("COMMIT");
        } catch (...) {
            rollback(projector_);
            throw;
        }
    }

    std::unique_ptr<Lease> try_lease(std::string_view name) override {
        // An exclusive flock on a file beside the database: the kernel releases it when the
        // holder's process dies, however it dies.
        const std::string path = options_.path + "-lease-" + std::string(name);
        const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            throw StoreError(fmt::format("cannot open lease file {}", path));
        }
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
            ::close(fd);
            return nullptr;
        }
        return std::make_unique<FileLease>(fd);
    }

    std::string_view backend_name() const override { return "sqlite"; }

  private:
    struct Reader {
        Database db;
        explicit Reader(const std::string& path) : db(path) {}
    };

    /// A projection checkpoint held still by with_checkpoints_held: an exclusive flock, taken
    /// (waiting for another holder) on construction, released on destruction.
    class HoldFile {
      public:
        explicit HoldFile(const std::string& path)
            : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)) {
            if (fd_ < 0) {
                throw StoreError(fmt::format("cannot open hold file {}", path));
            }
            if (::flock(fd_, LOCK_EX) != 0) {
                ::close(fd_);
                throw StoreError(fmt::format("cannot lock hold file {}", path));
            }
        }
        ~HoldFile() {
            if (fd_ >= 0) {
                ::close(fd_);
            }
        }
        HoldFile(HoldFile&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
        HoldFile(const HoldFile&) = delete;
        HoldFile& operator=(const HoldFile&) = delete;
        HoldFile& operator=(HoldFile&&) = delete;

      private:
        int fd_;
    };

    /// How long a projector commit waits for a held checkpoint before it says so in the log.
    static constexpr std::chrono::seconds hold_warning{5};

    [[nodiscard]] std::string hold_path(std::string_view projection) const {
        return options_.path + "-hold-" + std::string(projection);
    }

    /// Whether another holder has any of the moved projections' checkpoints (write_mutex_
    /// held: the descriptors are cached per projection and used one thread at a time). A
    /// shared flock that cannot be had means an exclusive one is held — by another open of the
    /// file, so a hold in this very process counts too.
    bool any_held(const std::vector<CheckpointMove>& moves) {
        for (const auto& move : moves) {
            auto found = hold_fds_.find(move.projection);
            if (found == hold_fds_.end()) {
                const std::string path = hold_path(move.projection);
                const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
                if (fd < 0) {
                    throw StoreError(fmt::format("cannot open hold file {}", path));
                }
                found = hold_fds_.emplace(std::string(move.projection), fd).first;
            }
            if (::flock(found->second, LOCK_SH | LOCK_NB) != 0) {
                return true;
            }
            ::flock(found->second, LOCK_UN);
        }
        return false;
    }

    class FileLease final : public Lease {
      public:
        explicit FileLease(int fd) : fd_(fd) {}
        ~FileLease() override { ::close(fd_); }
        FileLease(const FileLease&) = delete;
        FileLease& operator=(const FileLease&) = delete;
        bool held() override { return true; }  // A local lock cannot be lost.

      private:
        int fd_;
    };

    struct ReaderLoan {
        SqliteEventStore* store;
        std::unique_ptr<Reader> reader;
        Reader* operator->() { return reader.get(); }
        ReaderLoan(SqliteEventStore* s, std::unique_ptr<Reader> r)
            : store(s), reader(std::move(r)) {}
        ReaderLoan(const ReaderLoan&) = delete;
        ReaderLoan& operator=(const ReaderLoan&) = delete;
        ~ReaderLoan() { store->give_back(std::move(reader)); }
    };

    /// A read transaction on a pooled reader: in WAL mode it sees the database as of its first
    /// read (taken here) until it ends; writers and checkpoints go on beside it.
    class Snapshot final : public ReadSnapshot {
      public:
        explicit Snapshot(SqliteEventStore& store) : loan_(store.lease()) {
            loan_->db.exec("BEGIN");
            try {
                (void)SqliteTx(loan_->db).query("SELECT count(*) FROM sqlite_master", {});
            } catch (...) {
                end();
                throw;
            }
        }
        ~Snapshot() override { end(); }
        Snapshot(const Snapshot&) = delete;
        Snapshot& operator=(const Snapshot&) = delete;

        void scan(std::string_view sql, const std::vector<SqlValue>& params,
                  const std::function<void(const SqlTx::RowView&)>& each) override {
            // As on PostgreSQL, a snapshot whose scan failed is not used again.
            if (failed_) {
                throw StoreError("a read snapshot cannot be used after a failed scan");
            }
            failed_ = true;
            SqliteTx(loan_->db).for_each_row(sql, params, each);
            failed_ = false;
        }

      private:
        void end() noexcept {
            try {
                loan_->db.exec("ROLLBACK");
            } catch (...) {  // A read transaction has nothing to undo.
            }
        }
        ReaderLoan loan_;
        bool failed_ = false;
    };

    ReaderLoan lease() {
        {
            std::lock_guard lock(readers_mutex_);
            if (!readers_.empty()) {
                auto reader = std::move(readers_.back());
                readers_.pop_back();
                return ReaderLoan(this, std::move(reader));
            }
        }
        auto reader = std::make_unique<Reader>(options_.path);
        set_busy_wait(reader->db.handle(), options_.busy_timeout);
        reader->db.exec("PRAGMA mmap_size = 1073741824");
        reader->db.exec("PRAGMA cache_size = -65536");
        return ReaderLoan(this, std::move(reader));
    }

    void give_back(std::unique_ptr<Reader> reader) {
        std::lock_guard lock(readers_mutex_);
        if (readers_.size() < options_.readers_max) {
            readers_.push_back(std::move(reader));
        }
    }

    static std::int64_t clamp_limit(std::size_t max_count) {
        return max_count > static_cast<std::size_t>(INT64_MAX)
                   ? INT64_MAX
                   : static_cast<std::int64_t>(max_count);
    }

    std::vector<RecordedEvent> collect(Statement& query) {
        std::vector<RecordedEvent> events;
        while (query.step()) {
            events.push_back(read_row(query, options_.upcasters.get()));
        }
        return events;
    }

    std::int64_t query_head() {
        auto reader = lease();
        StatementUse query(
            reader->db.cached("SELECT COALESCE(MAX(global_position), 0) FROM oe_events"));
        query->step();
        return query->column_int64(0);
    }

    static void rollback(Database& db) {
        try {
            db.exec("ROLLBACK");
        } catch (const StoreError&) {
            // The transaction is already gone (SQLite rolled it back itself); nothing to undo.
        }
    }

    // Runs on the group-commit leader's thread; the committer guarantees one leader at a time,
    // so writer_ is used by one thread at once.
    /// The write transaction of one group commit, on writer_ (BEGIN IMMEDIATE held).
    class WriterTx final : public WriteTransaction {
      public:
        WriterTx(SqliteEventStore& store, std::int64_t head, std::int64_t recorded_at_us)
            : store_(store), head_(head), recorded_at_us_(recorded_at_us) {}

        std::vector<RecordedEvent> read_after(std::int64_t position,
                                              std::size_t max_count) override {
            StatementUse query(store_.writer_.cached(
                std::string(select_columns) +
                "WHERE global_position > ?1 ORDER BY global_position LIMIT ?2"));
            query->bind(1, position);
            query->bind(2, clamp_limit(max_count));
            return store_.collect(*query);
        }

        Result<AppendResult, AppendError> write(const std::vector<StreamAppend>& streams,
                                                std::vector<RecordedEvent>* written) override {
            return store_.write_one(streams, head_, recorded_at_us_, written);
        }

        [[nodiscard]] std::int64_t head() const { return head_; }

      private:
        SqliteEventStore& store_;
        std::int64_t head_;
        std::int64_t recorded_at_us_;
    };

    // Runs on the group-commit leader's thread; the committer guarantees one leader at a time,
    // and write_mutex_ keeps the projector's transactions out of the way.
    void commit_batch(std::vector<PendingAppend*>& batch) {
        std::lock_guard write(write_mutex_);
        writer_.exec("BEGIN IMMEDIATE");
        std::int64_t head = 0;
        try {
            std::int64_t recorded_at_us = now_us();
            {
                StatementUse last(
                    writer_.cached("SELECT global_position, recorded_at_us FROM oe_events "
                                   "ORDER BY global_position DESC LIMIT 1"));
                if (last->step()) {
                    head = last->column_int64(0);
                    // Time never goes backwards along the log, so an as-of instant maps to a
                    // prefix of it.
                    recorded_at_us = std::max(recorded_at_us, last->column_int64(1));
                }
            }
            WriterTx tx(*this, head, recorded_at_us);
            run_batch(tx, batch);
            head = tx.head();
            writer_.exec("COMMIT");
        } catch (...) {
            rollback(writer_);
            if (DecisionState* state = batch_state(batch)) {
                state->clear();  // It may hold events that were never committed.
            }
            throw;
        }
        signal_.raise(head);
    }

    std::int64_t stream_version(std::string_view stream_id) {
        StatementUse query(writer_.cached(
            "SELECT COALESCE(MAX(stream_version), 0) FROM oe_events WHERE stream_id = ?1"));
        query->bind(1, stream_id);
        query->step();
        return query->column_int64(0);
    }

    Result<AppendResult, AppendError> write_one(const std::vector<StreamAppend>& streams,
                                                std::int64_t& head, std::int64_t recorded_at_us,
                                                std::vector<RecordedEvent>* written) {
        std::vector<std::int64_t> versions;
        versions.reserve(streams.size());
        for (const auto& stream : streams) {
            const std::int64_t actual = stream_version(stream.stream_id);
            if (!stream.expected.matches(actual)) {
                AppendError error;
                error.reason = AppendRejected::wrong_expected_version;
                error.stream_id = stream.stream_id;
                error.expected = stream.expected.encoded();
                error.actual = actual;
                error.message = fmt::format("stream '{}' is at version {}, expected {}",
                                            stream.stream_id, actual, stream.expected.describe());
                return error;
            }
            versions.push_back(actual);
        }
        AppendResult result;
        result.first_position = head + 1;
        StatementUse insert(writer_.cached(
            "INSERT INTO oe_events (global_position, stream_id, stream_version, type, "
            "schema_version, data, metadata, recorded_at_us) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)"));
        for (std::size_t s = 0; s < streams.size(); ++s) {
            const auto& stream = streams[s];
            for (const auto& event : stream.events) {
                std::string metadata = event.metadata.to_json();
                insert->bind(1, ++head);
                insert->bind(2, std::string_view(stream.stream_id));
                insert->bind(3, ++versions[s]);
                insert->bind(4, std::string_view(event.type));
                insert->bind(5, static_cast<std::int64_t>(event.schema_version));
                insert->bind(6, std::string_view(event.data));
                insert->bind(7, std::string_view(metadata));
                insert->bind(8, recorded_at_us);
                insert->step();
                (*insert).reset();
                if (written != nullptr) {
                    written->push_back(RecordedEvent{head, stream.stream_id, versions[s],
                                                     event.type, event.schema_version, event.data,
                                                     std::move(metadata), recorded_at_us});
                }
            }
        }
        result.last_position = head;
        result.stream_versions = std::move(versions);
        return result;
    }

    SqliteOptions options_;
    Database writer_;
    Database projector_;
    WalCheckpointer checkpointer_;  // Before committer_: outlives every commit's hook.
    GroupCommitter committer_;
    std::mutex readers_mutex_;
    std::vector<std::unique_ptr<Reader>> readers_;
    std::mutex write_mutex_;
    std::map<std::string, int, std::less<>> hold_fds_;  // Under write_mutex_.
    HeadSignal signal_;
};

}  // namespace

int latest_schema_version() {
    return migrations().back().version;
}

int migrate(const std::string& path) {
    ensure_parent_directory(path);
    Database db(path, /*create=*/true);
    set_busy_wait(db.handle(), std::chrono::seconds(10));
    // WAL lets readers run beside the one writer; the setting is stored in the file.
    {
        Statement journal(db.handle(), "PRAGMA journal_mode = WAL");
        journal.step();
        if (journal.column_text(0) != "wal") {
            throw StoreError(fmt::format(
                "sqlite: '{}' cannot use write-ahead logging (journal_mode is {}); put the "
                "database on a local filesystem",
                path, journal.column_text(0)));
        }
    }
    db.exec("PRAGMA synchronous = FULL");
    db.exec("BEGIN IMMEDIATE");
    try {
        db.exec(
            "CREATE TABLE IF NOT EXISTS oe_schema_migrations (version INTEGER PRIMARY KEY, "
            "name TEXT NOT NULL, applied_at_us INTEGER NOT NULL)");
        const int version = current_version(db);
        if (version > latest_schema_version()) {
            throw SchemaTooNew(
                fmt::format("database schema is version {}, this binary understands up to {}",
                            version, latest_schema_version()));
        }
        for (const auto& migration : migrations()) {
            if (migration.version <= version) {
                continue;
            }
            db.exec(migration.sql);
            Statement record(db.handle(),
                             "INSERT INTO oe_schema_migrations (version, name, applied_at_us) "
                             "VALUES (?1, ?2, ?3)");
            record.bind(1, static_cast<std::int64_t>(migration.version));
            record.bind(2, std::string_view(migration.name));
            record.bind(3, now_us());
            record.step();
        }
        db.exec("COMMIT");
    } catch (...) {
        try {
            db.exec("ROLLBACK");
        } catch (const StoreError&) {
            // Already rolled back by SQLite.
        }
        throw;
    }
    return latest_schema_version();
}

std::unique_ptr<EventStore> open_event_store(const SqliteOptions& options) {
    if (!std::filesystem::exists(options.path)) {
        throw StoreError(fmt::format(
            "sqlite: database '{}' does not exist; run 'orderengine migrate'", options.path));
    }
    return std::make_unique<SqliteEventStore>(options);
}

}  // namespace oe::sqlite
