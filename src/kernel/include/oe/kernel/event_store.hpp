#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <oe/kernel/decision_state.hpp>
#include <oe/kernel/event.hpp>
#include <oe/kernel/result.hpp>

namespace oe {

/// An I/O failure of the store (the database is unreachable, a statement failed). The caller
/// cannot fix it by changing its input; nothing was written.
class StoreError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// The append may or may not have been committed (the connection broke during COMMIT). Read the
/// stream, or retry with an exact expected version, to find out. Never retry with `any`.
class AppendOutcomeUnknown : public StoreError {
  public:
    using StoreError::StoreError;
};

/// A projection's stored checkpoint is not where the caller's batch starts: another instance
/// (or an earlier attempt) already moved it. Reload the checkpoint and continue from there.
class CheckpointConflict : public StoreError {
  public:
    using StoreError::StoreError;
};

/// DATABASE_URL cannot be understood.
class InvalidDatabaseUrl : public StoreError {
  public:
    using StoreError::StoreError;
};

/// The database's schema was written by a newer binary than this one.
class SchemaTooNew : public StoreError {
  public:
    using StoreError::StoreError;
};

/// A stored event cannot be read back (bad schema_version, unparsable payload, failed upcast).
class CorruptEvent : public StoreError {
  public:
    CorruptEvent(std::int64_t position, const std::string& why);
    [[nodiscard]] std::int64_t position() const noexcept { return position_; }

  private:
    std::int64_t position_;
};

/// A value bound to a portable SQL statement. Statements use $1, $2, … placeholders on both
/// backends and stick to the SQL both understand (INSERT … ON CONFLICT … DO UPDATE included).
using SqlValue = std::variant<std::nullptr_t, std::int64_t, std::string>;
using SqlRow = std::vector<std::optional<std::string>>;

/// The transaction a projection writes its read model in. The checkpoint is written by the
/// store in the same transaction, after `apply` returns.
class SqlTx {
  public:
    virtual ~SqlTx() = default;
    virtual void exec(std::string_view sql, const std::vector<SqlValue>& params = {}) = 0;
    [[nodiscard]] virtual std::vector<SqlRow> query(std::string_view sql,
                                                    const std::vector<SqlValue>& params = {}) = 0;
    /// Each column's text, nullopt for NULL; the views are valid during the callback only.
    using RowView = std::vector<std::optional<std::string_view>>;
    /// query() without keeping the rows: calls `each` once per row, in the query's order (for
    /// scans of whole tables). The default runs query(); backends stream.
    virtual void for_each_row(std::string_view sql, const std::vector<SqlValue>& params,
                              const std::function<void(const RowView&)>& each);
    /// Inserts rows in bulk: `values` holds them one after another, columns.size() values
    /// each. The default writes multi-row INSERT statements (insert_slice); PostgreSQL
    /// streams a COPY.
    virtual void insert_rows(const std::string& table, const std::vector<std::string>& columns,
                             const std::vector<SqlValue>& values);

  protected:
    /// One multi-row INSERT of the default insert_rows: `rows` rows from `values` (at most
    /// 500, and never more than 30,000 values: SQLite binds at most 32,766). The default
    /// copies them into a parameter list for exec(); a backend may bind them in place.
    virtual void insert_slice(const std::string& table, const std::vector<std::string>& columns,
                              const SqlValue* values, std::size_t rows);
};

/// A projection's checkpoint moving from `from` to `to` (see EventStore::commit_projections).
struct CheckpointMove {
    std::string_view projection;
    std::int64_t from = 0;
    std::int64_t to = 0;
};

/// Reads that all see the database as it stood at one moment (EventStore::snapshot).
class ReadSnapshot {
  public:
    virtual ~ReadSnapshot() = default;
    /// Like EventStore::scan, as of the snapshot's moment. Rows come from the server in
    /// batches of a few thousand, so an `each` that sleeps slows the server's side too.
    virtual void scan(std::string_view sql, const std::vector<SqlValue>& params,
                      const std::function<void(const SqlTx::RowView&)>& each) = 0;

    /// A table's checksum computed where the rows are: the sum (mod 2^64) of a hash of every
    /// row, so independent of row order, and its row count. Nothing when the database cannot
    /// (SQLite; a column type PostgreSQL has no hash function for): the caller hashes the
    /// rows it scans. Two tables' checksums compare only when both came from here, or both
    /// from the caller's hashing (the label says which).
    struct TableChecksum {
        std::string checksum;
        std::int64_t rows = 0;
    };
    virtual std::optional<TableChecksum> checksum_in_database(const std::string& table) {
        (void)table;
        return std::nullopt;
    }
};

/// Exclusive right to run one background worker (a projector, the ERP drain, the stock sync)
/// among every process sharing the store. Released when destroyed or when its process dies.
class Lease {
  public:
    virtual ~Lease() = default;
    /// False once the lease is known to be lost (the connection that holds it broke). Cheap
    /// enough to call before every unit of work.
    [[nodiscard]] virtual bool held() = 0;
};

/// The event store: one interface, two backends (SQLite, PostgreSQL), one conformance suite.
///
/// Guarantees every backend gives:
/// - append is atomic across all its streams: every event is written or none is;
/// - global positions start at 1 and are assigned in commit order, so a reader that has seen
///   position N has seen every committed event below N (no reader ever skips an event);
/// - an acknowledged append is durable (it survives a process and an OS crash);
/// - stored events are never changed; old shapes are upcast on read.
class EventStore {
  public:
    virtual ~EventStore() = default;

    /// Appends to one or several streams atomically, each with its expected version.
    /// Returns the typed rejection when nothing was written; throws StoreError on I/O failure.
    [[nodiscard]] virtual Result<AppendResult, AppendError> append(
        std::vector<StreamAppend> streams) = 0;

    /// Serialised decision (TigerBeetle's state-machine shape, batched): under the store's
    /// write lock, brings `state` up to date with every committed event, runs `decide`, and
    /// appends what it returns in the same transaction, applying it to `state` before the next
    /// decision. Concurrent calls share a transaction and its flush. Returns the append's
    /// result (first_position 0 when `decide` returned nothing); an invalid append from
    /// `decide` is a rejection like any other. Throws StoreError on I/O failure (the state is
    /// then cleared and rebuilt by the next call).
    [[nodiscard]] virtual Result<AppendResult, AppendError> decide_and_append(DecisionState& state,
                                                                              Decide decide) = 0;

    /// Events of one stream with version >= from_version, in version order.
    [[nodiscard]] virtual std::vector<RecordedEvent> read_stream(
        std::string_view stream_id, std::int64_t from_version = 1,
        std::size_t max_count = SIZE_MAX) = 0;

    /// Up to max_count events with global_position > after_position, in global order.
    [[nodiscard]] virtual std::vector<RecordedEvent> read_all(std::int64_t after_position,
                                                              std::size_t max_count) = 0;

    /// The highest committed position (0 when the store is empty).
    [[nodiscard]] virtual std::int64_t head_position() = 0;

    /// Blocks until an event after `after_position` may have been committed, the timeout
    /// passes, `cancel` is set, or interrupt_waiters() is called. True when the head is known
    /// to be past it (a hint: read to find out).
    virtual bool wait_for_events(std::int64_t after_position, std::chrono::milliseconds timeout,
                                 const std::atomic<bool>* cancel = nullptr) = 0;

    /// Wakes every wait_for_events caller (used at shutdown).
    virtual void interrupt_waiters() = 0;

    /// The projection's checkpoint: the last global position it applied (0 when new).
    [[nodiscard]] virtual std::int64_t load_checkpoint(std::string_view projection) = 0;

    /// Runs `apply` and then moves the projection's checkpoint from `from_position` to
    /// `to_position`, in one transaction: either the read-model change and the checkpoint both
    /// commit, or neither. Throws CheckpointConflict (and changes nothing) unless the stored
    /// checkpoint is exactly `from_position` — so a batch is never applied twice, even by two
    /// instances or by a retry after an in-doubt commit. `apply` must not append events.
    void commit_projection(std::string_view projection, std::int64_t from_position,
                           std::int64_t to_position, const std::function<void(SqlTx&)>& apply) {
        commit_projections({{projection, from_position, to_position}}, apply);
    }

    /// commit_projection for several projections in one transaction (one durable flush):
    /// every checkpoint must be at its `from`, or CheckpointConflict is thrown and nothing
    /// changes.
    virtual void commit_projections(const std::vector<CheckpointMove>& moves,
                                    const std::function<void(SqlTx&)>& apply) = 0;

    /// For work that must not race a projector — a rebuild's swap — in two steps, so that the
    /// first holds up nobody but those projectors. First the named projections' checkpoints
    /// are held still (their projectors' commits wait, in this process or another; appends and
    /// other writes go on) and `inspect` gets their positions: it may write elsewhere
    /// (commit_projections without moves) and read (query, scan) while those read models stay
    /// as they are. Then `apply` runs in one transaction that sets each checkpoint to the
    /// position it returns for it (never lower), and the hold ends; with no `apply` (an empty
    /// function) the hold ends after `inspect`, with no transaction (a rebuild takes its
    /// checksums' snapshots so, and renames in the transaction of a second hold). Throws
    /// StoreError; the hold ends either way.
    using HeldCheckpoints = std::function<void(const std::vector<std::int64_t>& positions)>;
    using LockedCheckpoints = std::function<std::vector<std::int64_t>(
        const std::vector<std::int64_t>& positions, SqlTx& tx)>;
    virtual void with_checkpoints_held(const std::vector<std::string>& projections,
                                       const HeldCheckpoints& inspect,
                                       const LockedCheckpoints& apply) = 0;

    /// Reads read models: one portable SELECT ($1, $2, … placeholders), outside any write
    /// transaction. Values come back as text, NULL as nothing. Throws StoreError.
    [[nodiscard]] virtual std::vector<SqlRow> query(std::string_view sql,
                                                    const std::vector<SqlValue>& params = {}) = 0;
    /// query() without keeping the rows (see SqlTx::for_each_row), on a reader connection.
    /// The default runs query(); backends stream.
    virtual void scan(std::string_view sql, const std::vector<SqlValue>& params,
                      const std::function<void(const SqlTx::RowView&)>& each);

    /// Housekeeping for a read-model table just filled in bulk (a rebuild's shadow table), done
    /// now and gently rather than later by the database on its own: PostgreSQL vacuums and
    /// analyses it (cost-limited; skipped unless the role owns the table), so autovacuum does
    /// not start on it and hold a lock a rename must wait for; SQLite needs nothing. Throws
    /// StoreError.
    virtual void after_bulk_load(const std::string& table);

    /// For a transaction that fills `tables` from empty and blocks nobody (a rebuild's shadow
    /// tables): drops, in `tx`, the indexes that are cheaper to build once from the finished
    /// table than to maintain row by row, and answers what builds them again — to be run in
    /// the same transaction before it commits, so a rollback leaves every index in place.
    /// PostgreSQL drops the indexes of the tables the role owns (not one a foreign key needs);
    /// the default (SQLite, where building afterwards gains nothing) drops none and answers a
    /// no-op. Throws StoreError.
    [[nodiscard]] virtual std::function<void(SqlTx&)> defer_indexes(
        SqlTx& tx, const std::vector<std::string>& tables);

    /// A read-only transaction on a connection of its own whose reads all see what was
    /// committed when snapshot() returned, whatever commits while they run (PostgreSQL:
    /// REPEATABLE READ; SQLite: a read transaction on the WAL). It holds up nobody — a
    /// rebuild checksums a live read model through one while the projector moves on — but
    /// keep it short: vacuum and WAL checkpoints cannot pass it. Tables it reads must not be
    /// renamed or dropped while it is open. Throws StoreError.
    [[nodiscard]] virtual std::unique_ptr<ReadSnapshot> snapshot() = 0;

    /// The lease named `name` when no other holder has it (PostgreSQL: a session advisory lock
    /// on a connection of its own; SQLite: an exclusive lock on a file beside the database),
    /// nothing otherwise. Never blocks. Throws StoreError when it cannot ask.
    [[nodiscard]] virtual std::unique_ptr<Lease> try_lease(std::string_view name) = 0;

    /// Name of the backend ("sqlite" or "postgresql"), for logs and benchmarks.
    [[nodiscard]] virtual std::string_view backend_name() const = 0;
};

}  // namespace oe
