#include <oe/projections/rebuild.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <functional>
#include <future>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <oe/kernel/json_text.hpp>
#include <oe/kernel/log.hpp>
#include <oe/kernel/thread_name.hpp>
#include <oe/kernel/time.hpp>
#include <oe/model/commerce_state.hpp>
#include <oe/model/fold.hpp>
#include <oe/projections/pacer.hpp>
#include <oe/projections/projection.hpp>

namespace oe::projections {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t read_batch = 10'000;
constexpr std::string_view shadow_suffix = "_rebuild";
constexpr int rebuild_nice = 10;
constexpr std::chrono::seconds live_wait{3};
constexpr std::chrono::milliseconds live_still{300};

/// Runs `work` on a thread of its own whose policy is SCHED_IDLE (it runs only when no other
/// thread wants the CPU), and waits for it; rethrows what it throws. A thread may always move
/// itself to SCHED_IDLE; the caller keeps its own policy for what follows.
template <typename Work>
void run_at_idle_priority(const Work& work) {
    std::exception_ptr failure;
    std::thread idle([&] {
        name_this_thread("oe-rebuild-idle");
        const sched_param param{};
        if (::sched_setscheduler(0, SCHED_IDLE, &param) != 0) {
            log(LogLevel::warn, "rebuild runs at its caller's CPU priority",
                {{"error", std::strerror(errno)}});
        }
        try {
            work();
        } catch (...) {
            failure = std::current_exception();
        }
    });
    idle.join();
    if (failure) {
        std::rethrow_exception(failure);
    }
}

/// A 64-bit hash of one row: its values eight bytes at a time (multiply, rotate — the
/// xxHash64 round), each value followed by its length and NULL distinct from every text.
/// Not cryptographic: it tells a rebuilt table from the live one, it does not resist forgery.
class RowHash {
  public:
    void add(std::optional<std::string_view> value) {
        if (!value) {
            round(0xFFFF'FFFF'FFFF'FFFFULL);
            return;
        }
        const char* p = value->data();
        std::size_t left = value->size();
        for (; left >= 8; left -= 8, p += 8) {
            std::uint64_t word = 0;
            std::memcpy(&word, p, 8);
            round(word);
        }
        std::uint64_t tail = 0;
        std::memcpy(&tail, p, left);
        round(tail);
        round(value->size());
    }
    [[nodiscard]] std::uint64_t value() const {
        std::uint64_t h = hash_;
        h ^= h >> 33;
        h *= 0xC2B2'AE3D'27D4'EB4FULL;
        h ^= h >> 29;
        return h;
    }

  private:
    void round(std::uint64_t word) {
        hash_ ^= word * 0xC2B2'AE3D'27D4'EB4FULL;
        hash_ = std::rotl(hash_, 31) * 0x9E37'79B1'85EB'CA87ULL;
    }
    std::uint64_t hash_ = 0x27D4'EB2F'1656'67C5ULL;
};

/// The sum of some rows' hashes (mod 2^64), and how many rows.
struct RowHashSum {
    std::uint64_t sum = 0;
    std::int64_t rows = 0;
};

/// The sum (mod 2^64) of every row's hash: independent of row order, so neither a sort nor a
/// collation can change it, and a table summed in parts adds up to its whole. `scan(each)`
/// calls `each` once per row.
template <typename Scan>
RowHashSum row_hash_sum(Scan&& scan) {
    RowHashSum total;
    scan([&](const SqlTx::RowView& row) {
        RowHash hash;
        for (const auto& value : row) {
            hash.add(value);
        }
        total.sum += hash.value();
        ++total.rows;
    });
    return total;
}

std::string format_row_hash_sum(std::uint64_t sum) {
    return fmt::format("rowhash64-sum:{:016x}", sum);
}

/// The bulk write of the shadow tables, on two threads: the caller builds statements (rows
/// from the folded write model) while a writer thread executes the previous chunk, so
/// building and executing overlap. Chunks of `statements_per_chunk` statements (~5,000 rows);
/// with `one_tx_per_chunk` each chunk commits on its own, so another writer (checkout, on
/// SQLite's single write lock) gets its turn between them; otherwise the whole write is one
/// transaction (PostgreSQL, where the shadow tables block nobody). Only for writers that never
/// read.
class PipelinedBulkWrite final : public SqlTx {
  public:
    /// One queued write: a statement, or (with columns) a bulk insert into a table.
    struct Write {
        std::string sql_or_table;
        std::vector<std::string> columns;
        std::vector<SqlValue> values;
    };
    using Chunk = std::vector<Write>;

    /// `threaded` false: each chunk is written on the calling thread when it is full, in a
    /// transaction of its own (one core only).
    /// `tx_begins_with`: a statement each transaction runs first (PostgreSQL: asynchronous
    /// commits). `rows_per_insert` (0: as given): bulk inserts split into inserts of at most
    /// that many rows, each a statement of its own (SQLite beside a server: shorter holds of
    /// the write lock). `prepare` (if set): run at the start of each transaction, after
    /// `tx_begins_with`; what it answers runs last before the transaction commits (PostgreSQL:
    /// the shadow tables' indexes are dropped, then built again, EventStore::defer_indexes).
    /// `written` (if set, and not `threaded`): called after each chunk's commit with the rows
    /// written so far.
    using Prepare = std::function<std::function<void(SqlTx&)>(SqlTx&)>;
    PipelinedBulkWrite(EventStore& store, std::size_t statements_per_chunk, bool one_tx_per_chunk,
                       bool threaded = true, Pacer* pacer = nullptr,
                       std::string tx_begins_with = {}, std::size_t rows_per_insert = 0,
                       Prepare prepare = {}, std::function<void(std::int64_t)> written = {})
        : store_(store),
          pacer_(pacer),
          written_(std::move(written)),
          rows_per_insert_(rows_per_insert),
          tx_begins_with_(std::move(tx_begins_with)),
          prepare_(std::move(prepare)),
          per_chunk_(statements_per_chunk),
          one_tx_per_chunk_(one_tx_per_chunk || !threaded),
          threaded_(threaded) {
        if (threaded_) {
            writer_ = std::thread([this] {
                name_this_thread("oe-rebuild-wr");
                write_all();
            });
        }
    }
    ~PipelinedBulkWrite() override {
        close();
        if (writer_.joinable()) {
            writer_.join();
        }
    }
    PipelinedBulkWrite(const PipelinedBulkWrite&) = delete;
    PipelinedBulkWrite& operator=(const PipelinedBulkWrite&) = delete;

    void exec(std::string_view sql, const std::vector<SqlValue>& params) override {
        queue(Write{std::string(sql), {}, params});
    }
    void insert_rows(const std::string& table, const std::vector<std::string>& columns,
                     const std::vector<SqlValue>& values) override {
        const std::size_t per_insert = rows_per_insert_ * columns.size();
        if (per_insert == 0 || values.size() <= per_insert) {
            queue(Write{table, columns, values});
            return;
        }
        for (std::size_t at = 0; at < values.size(); at += per_insert) {
            const auto first = values.begin() + static_cast<std::ptrdiff_t>(at);
            const auto last = values.begin() +
                              static_cast<std::ptrdiff_t>(std::min(values.size(), at + per_insert));
            queue(Write{table, columns, std::vector<SqlValue>(first, last)});
        }
    }
    std::vector<SqlRow> query(std::string_view, const std::vector<SqlValue>&) override {
        throw StoreError("a bulk write must not read");
    }

    /// Rows inserted so far (committed, or in the transaction under way); all of them after
    /// finish().
    [[nodiscard]] std::int64_t rows_written() const { return rows_written_.load(); }

    /// Writes what is left and waits until everything is committed; rethrows a write error.
    void finish() {
        hand_over();
        if (!threaded_) {
            return;
        }
        close();
        writer_.join();
        if (failure_) {
            std::rethrow_exception(failure_);
        }
    }

  private:
    void queue(Write write) {
        building_.push_back(std::move(write));
        if (building_.size() >= per_chunk_) {
            hand_over();
        }
    }

    void hand_over() {
        if (building_.empty()) {
            return;
        }
        if (!threaded_) {
            store_.commit_projections({}, [&](SqlTx& tx) {
                const auto before_commit = begin(tx);
                write(building_, tx);
                before_commit(tx);
            });
            building_.clear();
            if (pacer_ != nullptr) {
                pacer_->pace();
            }
            if (written_) {
                written_(rows_written_.load());
            }
            return;
        }
        std::unique_lock lock(mutex_);
        // At most one chunk waits while another is written: memory stays bounded.
        changed_.wait(lock, [this] { return !waiting_ || failure_; });
        if (failure_) {
            std::rethrow_exception(failure_);
        }
        waiting_ = std::move(building_);
        building_.clear();
        changed_.notify_all();
    }

    void close() {
        std::lock_guard lock(mutex_);
        closed_ = true;
        changed_.notify_all();
    }

    /// The next chunk to write; nothing once closed and drained.
    std::optional<Chunk> next() {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [this] { return waiting_ || closed_; });
        if (!waiting_) {
            return std::nullopt;
        }
        auto chunk = std::move(waiting_);
        waiting_.reset();
        changed_.notify_all();
        return chunk;
    }

    /// Starts a transaction; answers what to run before it commits.
    [[nodiscard]] std::function<void(SqlTx&)> begin(SqlTx& tx) const {
        if (!tx_begins_with_.empty()) {
            tx.exec(tx_begins_with_);
        }
        if (prepare_) {
            if (auto before_commit = prepare_(tx)) {
                return before_commit;
            }
        }
        return [](SqlTx&) {};
    }

    void write(const Chunk& chunk, SqlTx& tx) {
        for (const auto& w : chunk) {
            if (w.columns.empty()) {
                tx.exec(w.sql_or_table, w.values);
            } else {
                tx.insert_rows(w.sql_or_table, w.columns, w.values);
                rows_written_ += static_cast<std::int64_t>(w.values.size() / w.columns.size());
            }
        }
    }

    void write_all() {
        try {
            // The next chunk is taken before a transaction begins, so no transaction (and on
            // SQLite no write lock) is held while the builder is still building it.
            for (auto chunk = next(); chunk; chunk = next()) {
                store_.commit_projections({}, [&](SqlTx& tx) {
                    const auto before_commit = begin(tx);
                    for (;;) {
                        write(*chunk, tx);
                        if (one_tx_per_chunk_ || !(chunk = next())) {
                            before_commit(tx);
                            return;
                        }
                    }
                });
                if (!chunk) {
                    return;
                }
            }
        } catch (...) {
            std::lock_guard lock(mutex_);
            failure_ = std::current_exception();
            changed_.notify_all();
        }
    }

    EventStore& store_;
    Pacer* pacer_;
    std::function<void(std::int64_t)> written_;
    std::atomic<std::int64_t> rows_written_{0};
    std::size_t rows_per_insert_;
    std::string tx_begins_with_;
    Prepare prepare_;
    std::size_t per_chunk_;
    bool one_tx_per_chunk_;
    bool threaded_;
    Chunk building_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::optional<Chunk> waiting_;
    bool closed_ = false;
    std::exception_ptr failure_;
    std::thread writer_;
};

/// Writes per shadow-write chunk (a bulk insert is 500 rows): ~5,000 rows, a few tens of
/// milliseconds.
constexpr std::size_t statements_per_chunk = 10;

/// The most of the time a rebuild beside a server on SQLite works (see rebuild()).
constexpr int sqlite_most_percent = 10;

/// Events per read of the fold on one core: short bursts of work for the database's server
/// process too (its share of the work is paced only through this thread's waits for it).
constexpr std::size_t one_core_read_batch = 250;

/// Beside a server the fold goes on to the head again while more than this many events were
/// appended during its previous pass (at most `max_fold_passes` more passes).
constexpr std::size_t fold_again_above = 5'000;
constexpr int max_fold_passes = 10;

/// Beside a server, the most events one pass of the catch-up outside the holds applies before
/// it checks that it gains on checkout (tens of seconds at a twentieth of the time).
constexpr std::int64_t catch_up_pass_most = 20'000;

/// On SQLite beside a server, rows per shadow-write commit and events per catch-up commit:
/// each holds the database's one write lock, which checkout's appends wait for.
constexpr std::size_t one_core_sqlite_rows_per_commit = 100;
constexpr std::size_t one_core_sqlite_catch_up_batch = 250;

/// PostgreSQL: whether the role owns `table` (may alter and rename it).
bool owns_table(SqlTx& tx, const std::string& table) {
    return tx.query(
                 "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() "
                 "AND tablename = $1 AND pg_has_role(current_user, tableowner, 'USAGE')",
                 {table})
               .size() == 1;
}

/// Empties the shadow tables of `live_tables`. On SQLite beside a server in transactions of
/// `rows_per_commit` rows, so checkout (on the same write lock) interleaves; with no server
/// (`rows_per_commit` 0) one DELETE each, which SQLite turns into freeing the table's pages
/// without touching its rows or indexes row by row (the lock it holds, ~0.6-0.9 s for 500k
/// orders, waits for nobody then; the fold beside it went 3.4 -> 2.9 s on average over twelve
/// rebuilds, bench/README.md). On PostgreSQL the shadow tables block nobody, so one statement
/// each.
void empty_shadows(EventStore& store, const std::vector<std::string>& live_tables,
                   Pacer* pacer = nullptr, std::size_t rows_per_commit = 0) {
    const bool sqlite = store.backend_name() == "sqlite";
    for (const auto& table : live_tables) {
        const std::string shadow = table + std::string(shadow_suffix);
        if (!sqlite) {
            // TRUNCATE (granted to the application role on the shadow tables) frees the table
            // at once; DELETE, for a role without the grant, leaves dead rows to vacuum.
            // Autovacuum is kept off a shadow table the role owns: it is written in bulk and
            // then renamed, and a rename (or this TRUNCATE) waits for an autovacuum at work
            // on the table until the deadlock timeout (1 s) cancels it. The swap turns it
            // back on for the table it makes live.
            store.commit_projections({}, [&](SqlTx& tx) {
                const bool may_truncate =
                    tx.query("SELECT 1 WHERE has_table_privilege($1, 'TRUNCATE')", {shadow})
                        .size() == 1;
                tx.exec((may_truncate ? "TRUNCATE " : "DELETE FROM ") + shadow);
                if (owns_table(tx, shadow)) {
                    tx.exec("ALTER TABLE " + shadow + " SET (autovacuum_enabled = false)");
                }
            });
            if (pacer != nullptr) {
                pacer->pace();
            }
            continue;
        }
        if (rows_per_commit == 0) {
            store.commit_projections({}, [&](SqlTx& tx) { tx.exec("DELETE FROM " + shadow); });
            continue;
        }
        for (bool more = true; more;) {
            store.commit_projections({}, [&](SqlTx& tx) {
                tx.exec(
                    fmt::format("DELETE FROM {0} WHERE rowid IN (SELECT rowid FROM {0} LIMIT {1})",
                                shadow, rows_per_commit));
                more = !tx.query("SELECT 1 FROM " + shadow + " LIMIT 1").empty();
            });
            if (pacer != nullptr) {
                pacer->pace();
            }
        }
    }
}

std::vector<std::unique_ptr<Projection>> chosen(std::string_view suffix,
                                                const std::vector<std::string>& names) {
    auto all = make_read_models(suffix);
    std::vector<std::unique_ptr<Projection>> out;
    for (auto& p : all) {
        if (std::find(names.begin(), names.end(), p->name()) != names.end()) {
            out.push_back(std::move(p));
        }
    }
    return out;
}

}  // namespace

std::vector<std::string> projection_names() {
    std::vector<std::string> names;
    for (const auto& p : make_read_models()) {
        names.emplace_back(p->name());
    }
    return names;
}

RebuildStatus rebuild(EventStore& store, std::vector<std::string> names,
                      const std::function<void(const RebuildStatus&)>& progress,
                      const std::atomic<bool>* cancel, RebuildCores cores) {
    const bool one_core = cores == RebuildCores::one;
    // On SQLite checkout waits for the one write lock each of the rebuild's commits holds, and
    // a checkout that waits uses no CPU: the machine then looks idle to the pacer while the
    // rebuild is what keeps checkout waiting. So there it takes at most a tenth, however idle
    // the cores look (at 73-100 %, which is what the load alone gave, checkout's p99 went from
    // 3 ms to over 100 ms: bench/README.md, ninth session).
    Pacer pacer = !one_core                          ? Pacer(100)
                  : store.backend_name() == "sqlite" ? Pacer::adaptive(sqlite_most_percent)
                                                     : Pacer::adaptive();
    const auto check_cancel = [cancel] {
        if (cancel != nullptr && cancel->load()) {
            throw StoreError("cancelled");
        }
    };
    const auto known = projection_names();
    if (names.empty()) {
        names = known;
    }
    std::set<std::string> seen;
    for (const auto& name : names) {
        if (std::find(known.begin(), known.end(), name) == known.end()) {
            throw std::invalid_argument(
                fmt::format("unknown projection '{}' (known: {})", name, fmt::join(known, ", ")));
        }
        if (!seen.insert(name).second) {
            throw std::invalid_argument(fmt::format("projection '{}' named twice", name));
        }
    }
    RebuildStatus status;
    status.started_at_us = now_us();
    status.job_id = fmt::format("rebuild-{}", status.started_at_us);
    status.projections = names;
    status.state = "running";
    const auto report = [&] {
        status.share_percent = pacer.percent();
        if (progress) {
            progress(status);
        }
    };
    auto shadows = chosen(shadow_suffix, names);
    std::vector<std::string> live_tables;
    for (const auto& p : shadows) {
        for (const auto& table : p->tables()) {
            live_tables.push_back(table);
        }
    }

    // Where the live checkpoints stood as the rebuild began, and since when: a live projector
    // that has not moved them by the time the rebuild is caught up is not running (see
    // wait_for_live below).
    const auto furthest_live = [&store, &names] {
        std::int64_t furthest = 0;
        for (const auto& name : names) {
            furthest = std::max(furthest, store.load_checkpoint(name));
        }
        return furthest;
    };
    std::int64_t live_last_seen = furthest_live();
    auto live_still_since = Clock::now();

    std::vector<std::string> names_in_order;
    for (const auto& p : shadows) {
        names_in_order.emplace_back(p->name());
    }
    const bool sqlite = store.backend_name() == "sqlite";
    // Some rows' hashes, row by row here (`where`: a condition on the rows, and its
    // parameters).
    const auto scan_sum = [&check_cancel](ReadSnapshot& view, const std::string& table,
                                          const std::string& where = {},
                                          const std::vector<SqlValue>& params = {}) {
        return row_hash_sum([&](const auto& each) {
            std::size_t rows = 0;
            view.scan("SELECT * FROM " + table + where, params, [&](const SqlTx::RowView& row) {
                each(row);
                if (++rows % 2'000 == 0) {
                    check_cancel();
                }
            });
        });
    };
    // One table's checksum as a snapshot sees it: summed by the database where it can,
    // otherwise row by row here.
    const auto sum_of = [&scan_sum](ReadSnapshot& view, const std::string& table) {
        if (auto in_database = view.checksum_in_database(table)) {
            return std::pair{std::move(in_database->checksum), in_database->rows};
        }
        const auto total = scan_sum(view, table);
        return std::pair{format_row_hash_sum(total.sum), total.rows};
    };
    // SQLite with every core (no server): the live tables' checksums are taken while the
    // shadow tables are written, on a SCHED_IDLE thread — the write is one thread executing
    // SQLite's inserts, which leaves about half a core idle — together with the live
    // checkpoints, in one snapshot. Where the checkpoints have not moved by the hold, the
    // live tables have not either (a projector commits its rows with its checkpoint), and
    // these sums stand for the hold's; otherwise they are taken again there.
    struct EarlyLiveSums {
        std::vector<std::int64_t> positions;
        std::vector<std::string> sums;  // By table, in `live_tables` order.
    };
    std::future<EarlyLiveSums> early_live;
    const auto start_early_live_sums = [&] {
        early_live = std::async(std::launch::async, [&] {
            name_this_thread("oe-rebuild-sum");
            const sched_param param{};
            (void)::sched_setscheduler(0, SCHED_IDLE, &param);  // Otherwise as it is.
            EarlyLiveSums early;
            const auto view = store.snapshot();
            for (const auto& name : names_in_order) {
                std::int64_t position = 0;
                view->scan("SELECT position FROM oe_checkpoints WHERE projection = $1", {name},
                           [&](const SqlTx::RowView& row) {
                               position = std::stoll(std::string(row.at(0).value_or("0")));
                           });
                early.positions.push_back(position);
            }
            for (const auto& table : live_tables) {
                early.sums.push_back(sum_of(*view, table).first);
            }
            return early;
        });
    };

    model::CommerceState state;
    const auto ms_since = [](Clock::time_point t) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
    };
    // Steps 1-3 hold nothing the live projector waits for, and checkout only the SQLite write
    // lock for one 500-row chunk at a time (a waiting append sleeps, leaving the CPU to the
    // chunk), so beside a server they run on a thread of their own at SCHED_IDLE: a checkout
    // thread that wakes up takes the CPU from it at once, where at nice 10 it could wait
    // (bench/README.md). The swap, which holds the live projector, runs at the caller's.
    const auto build_shadows = [&] {
        // 1. Empty the shadow tables — they hold the rows the previous rebuild swapped out, or
        //    what a rebuild that died midway wrote — on a second thread while the fold runs (on
        //    one core: first).
        std::future<void> emptied;
        if (one_core) {
            empty_shadows(store, live_tables, &pacer, one_core_sqlite_rows_per_commit);
        } else {
            emptied = std::async(std::launch::async, [&store, &live_tables] {
                name_this_thread("oe-rebuild-emp");
                empty_shadows(store, live_tables);
            });
        }

        // 2. Fold the whole log, as it is now, into a fresh write model. Beside a server the
        //    fold then goes on to what checkout appended while it ran, pass after pass, until
        //    what is left is small: an event costs the fold a fraction of what it costs the
        //    catch-up (which writes its rows, a commit per batch), and a paced fold of a big
        //    log takes minutes in which checkout appends hundreds of thousands of events
        //    (bench/README.md, tenth session).
        const auto started = Clock::now();
        status.target = store.head_position();
        report();
        auto last_report = Clock::now();
        const auto fold_to = [&](std::int64_t last) {
            model::fold_log(
                store, state,
                model::FoldLimits{last, std::nullopt, one_core ? one_core_read_batch : read_batch,
                                  !one_core},
                [&](std::int64_t position) {
                    status.position = position;
                    check_cancel();
                    pacer.pace();
                    const double seconds =
                        std::chrono::duration<double>(Clock::now() - started).count();
                    status.events_per_s = seconds > 0
                                              ? static_cast<std::int64_t>(
                                                    static_cast<double>(status.position) / seconds)
                                              : 0;
                    status.eta_ms = status.events_per_s > 0 ? (status.target - status.position) *
                                                                  1000 / status.events_per_s
                                                            : 0;
                    if (Clock::now() - last_report > std::chrono::milliseconds(250)) {
                        report();
                        last_report = Clock::now();
                    }
                });
        };
        fold_to(status.target);
        status.position = std::max(status.position, state.position());
        if (one_core) {
            for (int pass = 0; pass < max_fold_passes; ++pass) {
                check_cancel();
                const auto head = store.head_position();
                const auto gap = head - status.position;
                if (gap <= static_cast<std::int64_t>(fold_again_above)) {
                    break;
                }
                status.target = head;
                fold_to(head);
                status.position = std::max(status.position, state.position());
                if ((store.head_position() - status.position) * 2 > gap) {
                    break;  // Checkout outruns the fold: the catch-up's floor takes over.
                }
            }
        }
        status.eta_ms = 0;
        status.fold_ms = ms_since(started);
        report();

        if (emptied.valid()) {
            emptied.get();
        }
        if (!one_core && sqlite) {
            start_early_live_sums();
        }

        // 3. Every row, in bulk, into the shadow tables.
        const auto write_started = Clock::now();
        // Short transactions matter on SQLite (one write lock, shared with checkout); PostgreSQL's
        // shadow writes block nobody, so one transaction saves the commits.
        {
            // On one core beside checkout, every bulk insert (500 rows) commits on its own. On
            // SQLite checkout's appends wait for the one write lock a chunk holds: ~2 ms instead
            // of ~20 ms. On PostgreSQL checkout's commits, which must flush whatever WAL
            // precedes theirs, then wait for a small flush; and these commits do not flush at
            // all (asynchronous commit: the WAL writer or checkout's next commit flushes them),
            // so they do not queue for the WAL flush checkout's commits wait on. A shadow row
            // lost in a crash costs nothing (the next rebuild starts over), and the swap's
            // commit, synchronous, flushes every row before it.
            const bool small_chunks = one_core;
            const bool sqlite_store = store.backend_name() == "sqlite";
            // In one transaction (PostgreSQL, all cores) the shadow tables' indexes are built
            // once at the end rather than kept up row by row; in many small ones they are kept
            // (a build is a burst of every core, and a transaction that died between chunks
            // would leave tables without their indexes).
            std::vector<std::string> shadow_tables;
            for (const auto& table : live_tables) {
                shadow_tables.push_back(table + std::string(shadow_suffix));
            }
            PipelinedBulkWrite::Prepare defer;
            if (!one_core && !sqlite_store) {
                defer = [&store, &shadow_tables](SqlTx& tx) {
                    return store.defer_indexes(tx, shadow_tables);
                };
            }
            // Beside a server the chunks are written on this thread: its progress (and the
            // pacer's share) is reported as it goes, at most four times a second.
            auto last_write_report = Clock::now();
            PipelinedBulkWrite bulk(
                store, small_chunks ? 1 : statements_per_chunk, sqlite_store, !one_core, &pacer,
                one_core && !sqlite_store ? "SET LOCAL synchronous_commit TO off" : "",
                one_core && sqlite_store ? one_core_sqlite_rows_per_commit : 0, std::move(defer),
                [&](std::int64_t rows) {
                    status.written_rows = rows;
                    if (Clock::now() - last_write_report > std::chrono::milliseconds(250)) {
                        report();
                        last_write_report = Clock::now();
                    }
                });
            for (const auto& p : shadows) {
                check_cancel();
                p->write_all(bulk, state);
            }
            bulk.finish();
            status.written_rows = bulk.rows_written();
        }
        if (one_core) {
            // Beside a server, before the checksums read them: otherwise PostgreSQL's
            // autovacuum starts on the freshly filled shadow tables, and the swap's renames
            // wait for it until the deadlock timeout (1 s) cancels it.
            for (const auto& table : live_tables) {
                check_cancel();
                store.after_bulk_load(table + std::string(shadow_suffix));
            }
        }
        status.write_ms = ms_since(write_started);
    };
    if (one_core) {
        run_at_idle_priority(build_shadows);
    } else {
        build_shadows();
    }

    // 4-6. Catch up, checksum, swap. The live checkpoints are held (their projector's commits
    //    wait; checkout does not) twice, each time only to apply the last few events: once to
    //    take a snapshot of both sides at one position, which is checksummed after the hold
    //    ends, and once for the swap. Beside a server everything outside the holds runs at
    //    SCHED_IDLE and paced, like the fold.
    status.state = "swapping";
    report();
    const auto swap_started = Clock::now();
    // PostgreSQL: whether the role may rename the tables is asked table by table.
    const auto owns_tables = [sqlite](SqlTx& tx, const std::string& table,
                                      const std::string& shadow) {
        return !sqlite && tx.query(
                                "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() "
                                "AND tablename IN ($1, $2) "
                                "AND pg_has_role(current_user, tableowner, 'USAGE') "
                                "HAVING count(*) = 2",
                                {table, shadow})
                                  .size() == 1;
    };
    // What checkout appended since the fold, into the shadow tables, in commits of `batch`
    // events (each paced beside a server: on SQLite a commit holds the write lock checkout's
    // appends take).
    auto last_catch_up_report = Clock::now();
    const auto catch_up_to = [&](std::int64_t to, std::size_t batch, bool paced) {
        std::int64_t at = status.position;
        status.target = std::max(status.target, to);
        while (at < to) {
            const auto events =
                store.read_all(at, std::min<std::size_t>(batch, static_cast<std::size_t>(to - at)));
            if (events.empty()) {
                throw StoreError("the log ended before the live checkpoint");
            }
            for (const auto& e : events) {
                // Decoded once, for the write model and the projections alike.
                const auto decoded = events::decode(e);
                state.apply(e, decoded);
                if (decoded.ok()) {
                    for (const auto& p : shadows) {
                        p->observe(e, decoded.value(), state);
                    }
                }
                at = e.global_position;
            }
            store.commit_projections({}, [&](SqlTx& tx) {
                // Paced on PostgreSQL, asynchronously, like the shadow write: these commits do
                // not wait for the disk, and the swap's own commit flushes them.
                if (paced && !sqlite) {
                    tx.exec("SET LOCAL synchronous_commit TO off");
                }
                for (const auto& p : shadows) {
                    p->flush_in_bulk(tx, state);
                }
            });
            status.position = at;
            if (paced) {
                check_cancel();
                pacer.pace();
                if (Clock::now() - last_catch_up_report > std::chrono::milliseconds(250)) {
                    report();
                    last_catch_up_report = Clock::now();
                }
            }
        }
    };
    // Outside any hold, until what is left fits one small batch (a few passes: checkout keeps
    // appending meanwhile; if it outruns the paced catch-up, the hold applies the rest).
    const std::size_t outside_batch =
        !one_core ? read_batch : (sqlite ? one_core_sqlite_catch_up_batch : 1'000);
    // Beside a server the catch-up must still outrun checkout: at the share the machine's load
    // leaves it, one pass can take longer than checkout needs to append as many events again
    // (the catch-up redoes the live projector's work for them), and then it never ends, and the
    // hold applies whatever is left, unpaced, while the live projector waits. So a pass that
    // does not halve the distance to the head doubles the least share the catch-ups work at
    // (kept for the second catch-up, after the checksums). Beside a server a pass covers at
    // most `catch_up_pass_most` events, so that falling behind shows within a minute: on a slow
    // machine one pass to the head would have taken over half an hour before the share could
    // double (1.44M events appended during a paced shadow write, caught up at ~700 a second
    // while checkout appended ~1,300). A pass gains when it applies at least twice what
    // checkout appended meanwhile (for a pass to the head: when it halves the distance). At
    // the full share, three passes that do not gain leave the rest to the hold.
    int catch_up_floor = 0;
    const std::int64_t pass_most =
        one_core ? catch_up_pass_most : std::numeric_limits<std::int64_t>::max();
    const auto catch_up_outside = [&] {
        // What ran since the last paced unit — the shadow tables' VACUUM (cost-delayed: mostly
        // asleep), or the unpaced checksums and hold — is not slept for: that sleep only
        // stood the rebuild still for tens of seconds (a twentieth share sleeps nineteen times
        // as long as it worked) while checkout appended more for it to catch up.
        pacer.restart();
        pacer.set_floor(catch_up_floor);
        int behind_at_full = 0;
        for (int pass = 0; pass < 1'000 && behind_at_full < 3; ++pass) {
            check_cancel();
            const auto head = store.head_position();
            const auto from = status.position;
            if (head - from <= static_cast<std::int64_t>(outside_batch)) {
                break;
            }
            catch_up_to(from + std::min(head - from, pass_most), outside_batch, true);
            const auto applied = status.position - from;
            const auto appended = store.head_position() - head;
            if (applied < 2 * appended) {
                behind_at_full += catch_up_floor >= 100 ? 1 : 0;
                catch_up_floor = std::min(100, std::max(pacer.percent(), 5) * 2);
                pacer.set_floor(catch_up_floor);
            }
        }
        pacer.set_floor(0);
        report();
    };
    // A live projector behind the rebuild gets a moment to pass it, so the checksums compare
    // like for like; one that has not moved its checkpoints for `live_still` — since the
    // rebuild began, typically: none is running (`orderengine rebuild` with no server) — is
    // carried forward by the swap, and not waited for again.
    bool live_still_seen = false;
    const auto wait_for_live = [&] {
        const auto behind_since = Clock::now();
        while (!live_still_seen && Clock::now() - behind_since < live_wait) {
            check_cancel();
            const std::int64_t furthest = furthest_live();
            if (furthest >= status.position) {
                break;
            }
            if (furthest != live_last_seen) {
                live_last_seen = furthest;
                live_still_since = Clock::now();
            } else if (Clock::now() - live_still_since > live_still) {
                live_still_seen = true;
                break;  // Nobody is moving it.
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        check_cancel();
    };
    const auto idle_if_one_core = [&](const auto& work) {
        if (one_core) {
            run_at_idle_priority(work);
        } else {
            work();
        }
    };
    std::chrono::nanoseconds held{0};

    // 4. Caught up and held: a snapshot of each side at the same position (one for both on
    //    one core, where the scans run one after the other).
    idle_if_one_core(catch_up_outside);
    wait_for_live();
    // The live sums taken during the write (the write is over: the thread has the CPU now).
    std::optional<EarlyLiveSums> early;
    if (early_live.valid()) {
        try {
            early = early_live.get();
        } catch (const std::exception& failure) {
            log(LogLevel::warn, "rebuild checksums the live tables in the hold instead",
                {{"error", failure.what()}});
        }
        check_cancel();
    }
    bool early_stands = false;
    std::unique_ptr<ReadSnapshot> live_view;
    std::unique_ptr<ReadSnapshot> shadow_view;
    // With the live sums taken already, each shadow table is summed in two halves at once.
    std::unique_ptr<ReadSnapshot> second_half_view;
    std::vector<std::int64_t> checked_at;
    store.with_checkpoints_held(
        names_in_order,
        [&](const std::vector<std::int64_t>& live) {
            const auto held_at = Clock::now();
            catch_up_to(std::max(*std::max_element(live.begin(), live.end()), status.position),
                        read_batch, false);
            early_stands = early && early->positions == live;
            live_view = early_stands ? nullptr : store.snapshot();
            shadow_view = one_core ? nullptr : store.snapshot();
            second_half_view = early_stands ? store.snapshot() : nullptr;
            checked_at = live;
            held += Clock::now() - held_at;
        },
        {});

    // 5. Both sides checksummed as they stood in the hold, while the live projector moves on.
    //    Not paced, though beside a server still at SCHED_IDLE: the snapshot of the live side
    //    lasts as long as the scans, and while it lasts PostgreSQL cannot prune the row
    //    versions checkout leaves behind (the checkpoints, a partner's credit, a SKU's stock,
    //    updated hundreds of times a second), so every checkout reads a longer chain of them.
    //    Paced, the checksums of a 1M-event log took ~70 s, in which checkout's database
    //    processes used a seventh of a core more and its p99 rose by three quarters; unpaced
    //    they take seconds (bench/README.md, tenth session).
    std::vector<RebuildStatus::Checksum> sums;
    const auto checksum_started = Clock::now();
    // A shadow table summed in two halves by rowid, one on each core (SQLite; a table
    // without rowids is summed whole).
    bool halves_work = true;
    const auto sum_in_halves = [&](const std::string& shadow) {
        std::int64_t middle = 0;
        try {
            second_half_view->scan(
                "SELECT max(rowid) FROM " + shadow, {}, [&](const SqlTx::RowView& row) {
                    middle = std::stoll(std::string(row.at(0).value_or("0"))) / 2;
                });
        } catch (const StoreError& failure) {
            halves_work = false;  // That snapshot is not used again.
            log(LogLevel::warn, "rebuild sums each new table whole",
                {{"table", shadow}, {"error", failure.what()}});
        }
        if (!halves_work) {
            return sum_of(*shadow_view, shadow);
        }
        auto second = std::async(std::launch::async, [&, middle] {
            name_this_thread("oe-rebuild-sum");
            return scan_sum(*second_half_view, shadow, " WHERE rowid > $1", {middle});
        });
        const auto first = scan_sum(*shadow_view, shadow, " WHERE rowid <= $1", {middle});
        const auto rest = second.get();
        return std::pair{format_row_hash_sum(first.sum + rest.sum), first.rows + rest.rows};
    };
    idle_if_one_core([&] {
        std::size_t t = 0;  // Index into live_tables (and early->sums).
        for (std::size_t i = 0; i < shadows.size(); ++i) {
            for (const auto& table : shadows[i]->tables()) {
                const std::string shadow = table + std::string(shadow_suffix);
                if (early_stands) {
                    const auto [new_sum, new_rows] = sum_in_halves(shadow);
                    sums.push_back({table, early->sums[t], new_sum, new_rows, checked_at[i]});
                } else {
                    auto live_scan = std::async(
                        one_core ? std::launch::deferred : std::launch::async, [&, table] {
                            if (!one_core) {
                                name_this_thread("oe-rebuild-sum");
                            }
                            return sum_of(*live_view, table);
                        });
                    const auto [new_sum, new_rows] =
                        sum_of(shadow_view ? *shadow_view : *live_view, shadow);
                    const auto live_sum = live_scan.get().first;
                    sums.push_back({table, live_sum, new_sum, new_rows, checked_at[i]});
                }
                ++t;
            }
        }
    });
    // Closed before the swap: on PostgreSQL a snapshot that read a table keeps a lock on it
    // that the renames would wait for.
    live_view.reset();
    shadow_view.reset();
    second_half_view.reset();
    status.checksum_ms = ms_since(checksum_started);

    // 6. Caught up again (the live projector moved on during the checksums) and swapped.
    idle_if_one_core(catch_up_outside);
    wait_for_live();
    std::int64_t swapped_at = 0;
    std::int64_t target = 0;
    Clock::time_point held_at;
    store.with_checkpoints_held(
        names_in_order,
        [&](const std::vector<std::int64_t>& live) {
            held_at = Clock::now();
            target = std::max(*std::max_element(live.begin(), live.end()), status.position);
            catch_up_to(target, read_batch, false);
        },
        [&](const std::vector<std::int64_t>& live, SqlTx& tx) {
            const auto locked_at = Clock::now();
            for (const auto& p : shadows) {
                for (const auto& table : p->tables()) {
                    const std::string shadow = table + std::string(shadow_suffix);
                    if (sqlite || owns_tables(tx, table, shadow)) {
                        // DDL is transactional on both backends and O(1); the old rows end up
                        // in the shadow table, where the next rebuild empties them.
                        // (PostgreSQL renames take an exclusive lock on both tables until the
                        // commit.)
                        std::vector<std::string> ddl{
                            "ALTER TABLE " + table + " RENAME TO " + table + "_swap",
                            "ALTER TABLE " + shadow + " RENAME TO " + table,
                            "ALTER TABLE " + table + "_swap RENAME TO " + shadow};
                        if (sqlite) {
                            for (const auto& statement : ddl) {
                                tx.exec(statement);
                            }
                        } else {
                            // Autovacuum back on for the live table, off for the shadow (see
                            // empty_shadows); one round trip for the five statements.
                            ddl.push_back("ALTER TABLE " + table + " RESET (autovacuum_enabled)");
                            ddl.push_back("ALTER TABLE " + shadow +
                                          " SET (autovacuum_enabled = false)");
                            tx.exec(fmt::format("DO $$BEGIN {}; END$$", fmt::join(ddl, "; ")));
                        }
                    } else {
                        // PostgreSQL, run by an application role that does not own the tables
                        // (MIGRATION_DATABASE_URL): renaming needs the owner; copying needs
                        // only the grants the role has.
                        tx.exec("DELETE FROM " + table);
                        tx.exec("INSERT INTO " + table + " SELECT * FROM " + shadow);
                    }
                }
            }
            swapped_at = target;
            status.locked_ms = ms_since(locked_at);
            return std::vector<std::int64_t>(live.size(), target);
        });
    held += Clock::now() - held_at;
    status.held_ms = std::chrono::duration_cast<std::chrono::milliseconds>(held).count();
    status.checksums = std::move(sums);
    status.swapped_at = swapped_at;
    status.swap_ms = ms_since(swap_started);
    status.state = "done";
    status.target = status.swapped_at;
    status.finished_at_us = now_us();
    report();
    return status;
}

std::string to_json(const RebuildStatus& s) {
    std::string out = R"({"job_id":)";
    append_json_string(out, s.job_id);
    out += R"(,"projections":[)";
    for (std::size_t i = 0; i < s.projections.size(); ++i) {
        if (i > 0) {
            out += ",";
        }
        append_json_string(out, s.projections[i]);
    }
    out += fmt::format(
        R"(],"state":"{}","position":{},"target":{},"events_per_s":{},"eta_ms":{},"written_rows":{},)"
        R"("share_percent":{},)"
        R"("phases_ms":{{"fold":{},"write":{},"swap":{},"checksum":{},"held":{},"locked":{}}},)"
        R"("started_at":"{}","finished_at":{},"swapped_at":{},"checksums":[)",
        s.state, s.position, s.target, s.events_per_s, s.eta_ms, s.written_rows, s.share_percent,
        s.fold_ms, s.write_ms, s.swap_ms, s.checksum_ms, s.held_ms, s.locked_ms,
        format_iso8601_us(s.started_at_us),
        s.finished_at_us == 0 ? std::string("null")
                              : "\"" + format_iso8601_us(s.finished_at_us) + "\"",
        s.swapped_at == 0 ? std::string("null") : std::to_string(s.swapped_at));
    for (std::size_t i = 0; i < s.checksums.size(); ++i) {
        const auto& c = s.checksums[i];
        out += fmt::format(R"({}{{"table":"{}","live":"{}","live_at":{},"rebuilt":"{}","rows":{},)"
                           R"("identical":{}}})",
                           i == 0 ? "" : ",", c.projection, c.live, c.live_at, c.rebuilt, c.rows,
                           c.live == c.rebuilt ? "true" : "false");
    }
    out += R"(],"error":)";
    if (s.error.empty()) {
        out += "null";
    } else {
        append_json_string(out, s.error);
    }
    out += "}";
    return out;
}

RebuildJobs::RebuildJobs(EventStore& store, RebuildRunner runner)
    : store_(store), runner_(std::move(runner)) {}

RebuildJobs::~RebuildJobs() {
    stop();
}

std::optional<RebuildStatus> RebuildJobs::start(const std::vector<std::string>& names,
                                                RebuildStatus* running) {
    const auto known = projection_names();
    for (const auto& name : names) {
        if (std::find(known.begin(), known.end(), name) == known.end()) {
            throw std::invalid_argument(fmt::format("unknown projection '{}'", name));
        }
    }
    std::lock_guard lock(mutex_);
    if (running_) {
        if (running != nullptr && latest_) {
            *running = *latest_;
        }
        return std::nullopt;
    }
    auto lease = store_.try_lease("rebuild");
    if (!lease) {
        if (running != nullptr) {
            running->state = "running";
            running->error = "a rebuild is running in another process";
        }
        return std::nullopt;
    }
    if (runner_) {
        // The runner's process takes the lease itself (one started in the gap fails with
        // "already running", and the job with it).
        lease.reset();
    }
    if (thread_.joinable()) {
        thread_.join();
    }
    RebuildStatus first;
    first.started_at_us = now_us();
    first.job_id = fmt::format("rebuild-{}", first.started_at_us);
    first.projections = names.empty() ? known : names;
    first.state = "running";
    latest_ = first;
    running_ = true;
    cancel_ = false;
    thread_ = std::thread(
        [this, names, lease = std::shared_ptr<Lease>(std::move(lease)), job_id = first.job_id] {
            name_this_thread("oe-rebuild");
            // Checkout comes first: the rebuild (and the threads it starts, which inherit
            // this) runs at a lower CPU priority, so on two cores it takes what checkout
            // leaves instead of its share.
            if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), rebuild_nice) != 0) {
                log(LogLevel::warn, "rebuild runs at normal CPU priority",
                    {{"job_id", job_id}, {"error", std::strerror(errno)}});
            }
            try {
                const auto progress = [&](const RebuildStatus& s) {
                    std::lock_guard guard(mutex_);
                    latest_ = s;
                    latest_->job_id = job_id;
                };
                auto done = runner_ ? runner_(names, progress, cancel_)
                                    : rebuild(store_, names, progress, &cancel_, RebuildCores::one);
                progress(done);
                log(LogLevel::info, "rebuild done",
                    {{"job_id", job_id}, {"swapped_at", std::to_string(done.swapped_at)}});
            } catch (const std::exception& e) {
                std::lock_guard guard(mutex_);
                latest_->state = "failed";
                latest_->error = e.what();
                latest_->finished_at_us = now_us();
                log(LogLevel::error, "rebuild failed; the live read models are untouched",
                    {{"job_id", job_id}, {"error", e.what()}});
            }
            std::lock_guard guard(mutex_);
            running_ = false;
        });
    return first;
}

std::optional<RebuildStatus> RebuildJobs::latest() const {
    std::lock_guard lock(mutex_);
    return latest_;
}

void RebuildJobs::stop() {
    cancel_ = true;
    std::thread done;
    {
        std::lock_guard lock(mutex_);
        done = std::move(thread_);
    }
    if (done.joinable()) {
        done.join();
    }
}

}  // namespace oe::projections
