#include <oe/app/store_factory.hpp>

#include <oe/events/events.hpp>

#include <fmt/format.h>

#include <oe/event_store_postgres/postgres_event_store.hpp>
#include <oe/event_store_sqlite/sqlite_event_store.hpp>

namespace oe::app {

DatabaseUrl parse_database_url(const std::string& url) {
    constexpr std::string_view sqlite_scheme = "sqlite://";
    if (url.starts_with(sqlite_scheme)) {
        DatabaseUrl parsed{Backend::sqlite, url.substr(sqlite_scheme.size())};
        if (parsed.location.empty()) {
            throw InvalidDatabaseUrl(
                "invalid DATABASE_URL: sqlite:// needs a file path, e.g. "
                "sqlite://./data/orderengine.db");
        }
        return parsed;
    }
    if (url.starts_with("postgresql://") || url.starts_with("postgres://")) {
        (void)postgres::url_user(url);  // Throws InvalidDatabaseUrl when libpq cannot parse it.
        return {Backend::postgresql, url};
    }
    // Never echo the URL itself: it may carry a password.
    const auto scheme_end = url.find("://");
    throw InvalidDatabaseUrl(fmt::format(
        "invalid DATABASE_URL: expected sqlite://<path> or postgresql://… (got {})",
        scheme_end == std::string::npos ? std::string("no scheme")
                                        : "scheme '" + url.substr(0, scheme_end) + "'"));
}

int migrate(const std::string& url, const std::optional<std::string>& migration_url) {
    const DatabaseUrl parsed = parse_database_url(url);
    if (parsed.backend == Backend::sqlite) {
        return sqlite::migrate(parsed.location);
    }
    if (migration_url && !migration_url->empty() && *migration_url != url) {
        const DatabaseUrl owner = parse_database_url(*migration_url);
        if (owner.backend != Backend::postgresql) {
            throw InvalidDatabaseUrl("MIGRATION_DATABASE_URL must be a postgresql:// URL");
        }
        return postgres::migrate(owner.location, postgres::url_user(url));
    }
    return postgres::migrate(parsed.location);
}

std::unique_ptr<EventStore> open_store(const std::string& url,
                                       std::shared_ptr<const UpcasterRegistry> upcasters,
                                       metrics::Registry* metrics, StoreUse use) {
    if (!upcasters) {
        upcasters = events::published_upcasters();  // Old event shapes are lifted on read.
    }
    const DatabaseUrl parsed = parse_database_url(url);
    if (parsed.backend == Backend::sqlite) {
        sqlite::SqliteOptions options;
        options.path = parsed.location;
        options.upcasters = std::move(upcasters);
        options.metrics = metrics;
        return sqlite::open_event_store(options);
    }
    postgres::PostgresOptions options;
    options.url = parsed.location;
    options.upcasters = std::move(upcasters);
    if (use == StoreUse::background) {
        options.readers_max = 2;
        options.application_name = "orderengine-background";
        // The lowest priority there is: at 10 the rebuild's fold still raised checkout's p99
        // on PostgreSQL (bench/README.md, sixth session).
        options.backend_niceness = 19;
    }
    return postgres::open_event_store(options);
}

}  // namespace oe::app
