#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include <oe/kernel/event_store.hpp>
#include <oe/kernel/upcaster.hpp>

namespace oe::postgres {

struct PostgresOptions {
    std::string url;  // A libpq connection URL or keyword string.
    std::shared_ptr<const UpcasterRegistry> upcasters;
    std::size_t batch_events_max = 5000;           // One group commit writes at most this many.
    std::size_t readers_max = 8;                   // Pooled read connections.
    std::chrono::milliseconds poll_interval{500};  // Safety net beside LISTEN/NOTIFY.
    /// Shown in pg_stat_activity unless the URL names one.
    std::string application_name = "orderengine";
    /// Above 0, the server processes of this store's connections run at that nice value (1-19),
    /// so that work done through it — a rebuild beside checkout — yields the CPU to other
    /// backends. Needs the `prioritize` extension in the database (Debian
    /// postgresql-15-prioritize; migrate() creates it when it can); without it the store
    /// logs one warning and runs at normal priority. A hold of checkpoints
    /// (with_checkpoints_held), which others wait for, keeps normal priority.
    int backend_niceness = 0;
};

/// The schema version this binary writes and understands.
[[nodiscard]] int latest_schema_version();

/// Applies every pending migration (each in its own transaction, serialised across instances
/// by an advisory lock) connected as the schema owner at `owner_url`. When `app_role` is given,
/// grants it what the application needs and nothing more: SELECT and INSERT on the event log
/// (never UPDATE, DELETE or TRUNCATE) and read/write on checkpoints and read models.
/// Returns the schema version; throws SchemaTooNew when the database is ahead of this binary.
int migrate(const std::string& owner_url, const std::optional<std::string>& app_role = {});

/// The user name a libpq URL connects as (empty when it names none). Throws InvalidDatabaseUrl.
[[nodiscard]] std::string url_user(const std::string& url);

/// Connects and checks the schema is at latest_schema_version(). Throws InvalidDatabaseUrl,
/// StoreError (unreachable, not migrated) or SchemaTooNew.
[[nodiscard]] std::unique_ptr<EventStore> open_event_store(const PostgresOptions& options);

}  // namespace oe::postgres
