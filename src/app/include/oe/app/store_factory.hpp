#pragma once

#include <memory>
#include <optional>
#include <string>

#include <oe/kernel/event_store.hpp>
#include <oe/kernel/upcaster.hpp>

namespace oe::metrics {
class Registry;
}

namespace oe::app {

enum class Backend { sqlite, postgresql };

/// A DATABASE_URL taken apart: `sqlite://<path>` (so `sqlite:///abs.db` is absolute) or a libpq
/// `postgresql://` / `postgres://` URL.
struct DatabaseUrl {
    Backend backend = Backend::sqlite;
    std::string location;  // The file path for SQLite, the whole URL for PostgreSQL.
};

/// Throws InvalidDatabaseUrl with a one-line reason.
[[nodiscard]] DatabaseUrl parse_database_url(const std::string& url);

/// Runs pending migrations. With a separate `migration_url` (MIGRATION_DATABASE_URL) the
/// migrations run as that owner role and the role of `url` receives only the application's
/// grants. Returns the schema version.
int migrate(const std::string& url, const std::optional<std::string>& migration_url = {});

/// What a store is opened for.
enum class StoreUse {
    serving,
    /// Work that must yield to a server taking orders (a rebuild): on PostgreSQL, a pool of
    /// two connections apart from the server's, named "orderengine-background", whose server
    /// processes run at nice 19 (the `prioritize` extension; without it, at normal priority
    /// and one warning), apart from a hold of checkpoints, which others wait for. On SQLite
    /// the same as serving.
    background,
};

/// Opens the store for `url`; the schema must be current. `metrics`, when given, receives the
/// store's own metrics (SQLite: its WAL checkpoints).
[[nodiscard]] std::unique_ptr<EventStore> open_store(
    const std::string& url, std::shared_ptr<const UpcasterRegistry> upcasters = {},
    metrics::Registry* metrics = nullptr, StoreUse use = StoreUse::serving);

}  // namespace oe::app
