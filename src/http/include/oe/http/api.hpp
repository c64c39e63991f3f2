#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <oe/http/server.hpp>

namespace oe {
class EventStore;
namespace metrics {
class Registry;
}
namespace commands {
class CommandService;
}
namespace app {
class ConfigService;
class ErpWorker;
}  // namespace app
namespace projections {
class ProjectionRunner;
class RebuildJobs;
}  // namespace projections
}  // namespace oe

namespace oe::http {

/// What the API needs from the rest of the program (the composition root wires it).
struct ApiDependencies {
    EventStore& store;  // Read models are read through EventStore::query.
    commands::CommandService& commands;
    app::ConfigService& config;
    metrics::Registry& metrics;
    std::string jwt_secret;         // AUTH_JWT_SECRET.
    app::ErpWorker* erp = nullptr;  // The ERP admin routes answer 503 without one.
    projections::ProjectionRunner* projections = nullptr;  // For GET /api/admin/projections.
    projections::RebuildJobs* rebuilds = nullptr;          // For the rebuild routes.
};

/// The JSON API of SPEC §6 behind one handler: authentication (HS256 bearer tokens), roles,
/// agent masquerade, BOLA (another partner's order is 404, exactly like an unknown one), the
/// error body shape, Idempotency-Key on every mutating request, and the routes: GET
/// /api/catalog, /api/credit, /api/orders, /api/orders/{id}, /api/events,
/// /api/admin/config[/{key}[/history]]; POST /api/orders, /api/orders/{id}/cancel,
/// /api/admin/orders/{id}/release-credit-hold.
class Api {
  public:
    explicit Api(ApiDependencies dependencies);
    ~Api();
    Api(const Api&) = delete;
    Api& operator=(const Api&) = delete;

    /// Answers one request under /api. Never throws for bad input.
    [[nodiscard]] Response handle(const Request& request);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// W3C trace context: continues a valid incoming `traceparent` (same trace id, new span) or
/// starts a new trace. Returns {trace_id, traceparent header value for the response}.
[[nodiscard]] std::pair<std::string, std::string> trace_context(
    std::optional<std::string_view> incoming);

/// {"error":{"code":…,"message":…}}
[[nodiscard]] Response error_response(int status, std::string_view code, std::string_view message);

}  // namespace oe::http
