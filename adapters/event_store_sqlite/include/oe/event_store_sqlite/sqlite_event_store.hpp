#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include <oe/kernel/event_store.hpp>
#include <oe/kernel/upcaster.hpp>

namespace oe::metrics {
class Registry;
}

namespace oe::sqlite {

struct SqliteOptions {
    std::string path;  // A file path; its directory is created when missing.
    std::shared_ptr<const UpcasterRegistry> upcasters;
    std::size_t batch_events_max = 5000;             // One group commit writes at most this many.
    std::chrono::milliseconds busy_timeout{10'000};  // Waiting for another process's write lock.
    std::chrono::milliseconds poll_interval{50};     // How often waiters look for other processes.
    std::size_t readers_max = 8;                     // Pooled read connections.
    // When set: sqlite_wal_checkpoints_total counts the WAL checkpoints the store's own
    // thread ran (no commit runs one; see WalCheckpointer).
    metrics::Registry* metrics = nullptr;
};

/// The schema version this binary writes and understands.
[[nodiscard]] int latest_schema_version();

/// Applies every pending migration in order, each in its own transaction, and returns the
/// schema version. Throws SchemaTooNew when the database is ahead of this binary.
int migrate(const std::string& path);

/// Opens the store. The schema must be at latest_schema_version() (run migrate first);
/// throws SchemaTooNew or StoreError otherwise.
[[nodiscard]] std::unique_ptr<EventStore> open_event_store(const SqliteOptions& options);

}  // namespace oe::sqlite
