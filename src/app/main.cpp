// orderengine: the composition root. Reads like the list of the parts that run.

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <oe/app/config_service.hpp>
#include <oe/app/demo.hpp>
#include <oe/app/store_factory.hpp>
#include <oe/auth/jwt.hpp>
#include <oe/commands/command_service.hpp>
#include <oe/http/api.hpp>
#include <oe/http/server.hpp>
#include <oe/kernel/event_store.hpp>
#include <oe/kernel/log.hpp>
#include <oe/kernel/metrics.hpp>
#include <oe/kernel/time.hpp>
#include <oe/projections/runner.hpp>

namespace {

constexpr int exit_usage = 2;
constexpr int exit_failure = 2;
constexpr const char* default_database_url = "sqlite://./data/orderengine.db";

constexpr const char* usage =
    "usage: orderengine <command> [options]\n"
    "  serve [--port P] [--no-migrate] [--demo]\n"
    "                                    run the HTTP API (DATABASE_URL, PORT,\n"
    "                                    AUTH_JWT_SECRET, REDIS_URL);\n"
    "                                    --demo loads demo data into an empty store\n"
    "  migrate                           apply pending schema migrations and exit\n"
    "  token --role R [--partner P] [--partners P1,P2] [--sub S] [--ttl-s N]\n"
    "                                    mint a JWT for local use (AUTH_JWT_SECRET)\n"
    "environment: DATABASE_URL (default sqlite://./data/orderengine.db),\n"
    "             MIGRATION_DATABASE_URL (owner role for migrations, PostgreSQL), PORT\n";

std::string env_or(const char* name, const std::string& fallback) {
    const char* value = std::getenv(name);
    return value != nullptr && *value != '\0' ? std::string(value) : fallback;
}

std::optional<std::string> env_optional(const char* name) {
    const char* value = std::getenv(name);
    return value != nullptr && *value != '\0' ? std::optional<std::string>(value) : std::nullopt;
}

/// Parses a TCP port; nothing when the text is not 0..65535.
std::optional<std::uint16_t> parse_port(const std::string& text) {
    if (text.empty() || text.size() > 5 ||
        text.find_first_not_of("0123456789") != std::string::npos) {
        return std::nullopt;
    }
    const long value = std::stol(text);
    return value <= 65535 ? std::optional<std::uint16_t>(static_cast<std::uint16_t>(value))
                          : std::nullopt;
}

oe::http::Response json(int status, std::string body) {
    oe::http::Response response;
    response.status = status;
    response.body = std::move(body);
    return response;
}

/// The route a path belongs to, for metric labels: ids become {id}, so label sets stay few.
std::string route_template(std::string_view path) {
    if (path.starts_with("/api/orders/")) {
        return path.ends_with("/cancel") ? "/api/orders/{id}/cancel" : "/api/orders/{id}";
    }
    if (path.starts_with("/api/admin/orders/") && path.ends_with("/release-credit-hold")) {
        return "/api/admin/orders/{id}/release-credit-hold";
    }
    if (path.starts_with("/api/admin/partners/")) {
        return "/api/admin/partners/{id}";
    }
    if (path.starts_with("/api/admin/tiers/")) {
        return "/api/admin/tiers/{tier}";
    }
    if (path == "/api/admin/partners" || path == "/api/admin/products" ||
        path == "/api/admin/warehouses") {
        return std::string(path);
    }
    if (path.starts_with("/api/admin/config/")) {
        return path.ends_with("/history") ? "/api/admin/config/{key}/history"
                                          : "/api/admin/config/{key}";
    }
    if (path == "/api/orders" || path == "/api/catalog" || path == "/api/credit" ||
        path == "/api/events" || path == "/api/admin/config") {
        return std::string(path);
    }
    return "unmatched";
}

/// 200 when the store answers and every projection is less than 5 s behind the log.
oe::http::Response readiness(oe::EventStore& store, oe::projections::ProjectionRunner& runner) {
    constexpr std::int64_t lag_us_max = 5'000'000;
    try {
        std::int64_t slowest = INT64_MAX;
        for (const auto& [name, position] : runner.checkpoints()) {
            slowest = std::min(slowest, position);
        }
        const auto pending = store.read_all(slowest == INT64_MAX ? 0 : slowest, 1);
        const std::int64_t lag_us =
            pending.empty() ? 0
                            : std::max<std::int64_t>(0, oe::now_us() - pending[0].recorded_at_us);
        if (lag_us >= lag_us_max) {
            return json(503, fmt::format(R"({{"status":"projections_lagging","lag_ms":{}}})",
                                         lag_us / 1000));
        }
        return json(200, fmt::format(R"({{"status":"ready","lag_ms":{}}})", lag_us / 1000));
    } catch (const oe::StoreError&) {
        return json(503, R"({"status":"store_unavailable"})");
    }
}

int run_token(const std::vector<std::string>& args) {
    std::optional<oe::auth::Role> role;
    oe::auth::Principal principal;
    std::int64_t ttl_s = 24 * 3600;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const bool has_value = i + 1 < args.size();
        if (args[i] == "--role" && has_value) {
            role = oe::auth::parse_role(args[++i]);
            if (!role) {
                std::cerr << "orderengine token: --role must be reseller, agent, admin or "
                             "finance\n";
                return exit_usage;
            }
        } else if (args[i] == "--partner" && has_value) {
            principal.partner_id = args[++i];
        } else if (args[i] == "--partners" && has_value) {
            std::string list = args[++i];
            for (std::size_t start = 0; start <= list.size();) {
                const auto comma = std::min(list.find(',', start), list.size());
                if (comma > start) {
                    principal.partners.push_back(list.substr(start, comma - start));
                }
                start = comma + 1;
            }
        } else if (args[i] == "--sub" && has_value) {
            principal.subject = args[++i];
        } else if (args[i] == "--ttl-s" && has_value) {
            const auto& text = args[++i];
            if (text.empty() || text.size() > 9 ||
                text.find_first_not_of("0123456789") != std::string::npos || text == "0") {
                std::cerr << "orderengine token: --ttl-s must be 1..999999999\n";
                return exit_usage;
            }
            ttl_s = std::stoll(text);
        } else {
            std::cerr << "orderengine token: unknown option '" << args[i]
                      << "' (see orderengine --help)\n";
            return exit_usage;
        }
    }
    if (!role) {
        std::cerr << "orderengine token: --role is required\n";
        return exit_usage;
    }
    principal.role = *role;
    if (principal.role == oe::auth::Role::reseller && principal.partner_id.empty()) {
        std::cerr << "orderengine token: a reseller token needs --partner\n";
        return exit_usage;
    }
    if (principal.role == oe::auth::Role::agent && principal.partners.empty()) {
        std::cerr << "orderengine token: an agent token needs --partners\n";
        return exit_usage;
    }
    if (principal.subject.empty()) {
        principal.subject = std::string(oe::auth::to_string(principal.role)) +
                            (principal.partner_id.empty() ? "" : "-" + principal.partner_id);
    }
    const auto secret = env_optional("AUTH_JWT_SECRET");
    if (!secret) {
        std::cerr << "orderengine token: AUTH_JWT_SECRET is not set\n";
        return exit_usage;
    }
    std::cout << oe::auth::mint_token(principal, *secret, oe::now_us() / 1'000'000 + ttl_s) << "\n";
    return 0;
}

int run_migrate(const std::vector<std::string>& args) {
    if (!args.empty()) {
        std::cerr << "orderengine migrate: unexpected argument '" << args.front() << "'\n";
        return exit_usage;
    }
    const std::string url = env_or("DATABASE_URL", default_database_url);
    const int version = oe::app::migrate(url, env_optional("MIGRATION_DATABASE_URL"));
    std::cout << "schema at version " << version << "\n";
    return 0;
}

int run_serve(const std::vector<std::string>& args) {
    bool migrate = true;
    bool demo = false;
    std::optional<std::uint16_t> port = parse_port(env_or("PORT", "8080"));
    if (!port) {
        std::cerr << "orderengine serve: PORT must be 0..65535\n";
        return exit_usage;
    }
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--no-migrate") {
            migrate = false;
        } else if (args[i] == "--demo") {
            demo = true;
        } else if (args[i] == "--port" && i + 1 < args.size()) {
            port = parse_port(args[++i]);
            if (!port) {
                std::cerr << "orderengine serve: --port must be 0..65535\n";
                return exit_usage;
            }
        } else {
            std::cerr << "orderengine serve: unknown option '" << args[i]
                      << "' (see orderengine --help)\n";
            return exit_usage;
        }
    }

    const auto jwt_secret = env_optional("AUTH_JWT_SECRET");
    if (!jwt_secret) {
        std::cerr << "orderengine serve: AUTH_JWT_SECRET is not set (the API signs and checks "
                     "tokens with it)\n";
        return exit_usage;
    }
    const std::string url = env_or("DATABASE_URL", default_database_url);
    if (migrate) {
        oe::app::migrate(url, env_optional("MIGRATION_DATABASE_URL"));
    }
    auto store = oe::app::open_store(url);

    // The parts that run: the command side (write model) and the read models.
    oe::commands::CommandService commands(*store);
    if (demo && store->head_position() == 0) {
        const auto applied = oe::app::load_demo_data(commands);
        oe::log(oe::LogLevel::info, "demo data loaded", {{"commands", std::to_string(applied)}});
    }
    oe::projections::ProjectionRunner projections(*store, oe::projections::make_read_models());
    projections.start();

    oe::metrics::Registry metrics;
    auto config_cache = oe::app::make_config_cache(env_optional("REDIS_URL"));
    oe::app::ConfigService config(*store, commands, projections, *config_cache);
    oe::log(oe::LogLevel::info, "config cache", {{"cache", std::string(config_cache->name())}});
    oe::http::Api api({*store, commands, config, metrics, *jwt_secret});
    for (const auto& [name, position] : projections.checkpoints()) {
        metrics.gauge_callback(
            "projection_lag_events", "Committed events a projection has not applied yet",
            {{"projection", name}}, [&store, &projections, projection = name] {
                const auto checkpoints = projections.checkpoints();
                return static_cast<double>(store->head_position() - checkpoints.at(projection));
            });
    }

    oe::http::ServerOptions options;
    options.port = *port;
    oe::http::Server server(options, [&](const oe::http::Request& incoming) {
        const auto started = std::chrono::steady_clock::now();
        oe::http::Request request = incoming;
        auto [trace_id, traceparent] = oe::http::trace_context(request.header("traceparent"));
        request.trace_id = trace_id;
        const auto path = request.path();
        std::string route = "unmatched";
        oe::http::Response response;
        if (request.method == "GET" && path == "/health") {
            route = "/health";
            response = json(200, R"({"status":"ok"})");
        } else if (request.method == "GET" && path == "/ready") {
            route = "/ready";
            response = readiness(*store, projections);
        } else if (request.method == "GET" && path == "/metrics") {
            route = "/metrics";
            response.content_type = "text/plain; version=0.0.4; charset=utf-8";
            response.body = metrics.render();
        } else if (path.starts_with("/api/")) {
            route = route_template(path);
            response = api.handle(request);
        } else {
            response = json(404, R"({"error":{"code":"not_found","message":"no such route"}})");
        }
        metrics
            .histogram("http_request_duration_seconds", "HTTP request duration by route and status",
                       {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
                       {{"route", route}, {"status", std::to_string(response.status)}})
            .observe(
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
        response.headers.emplace_back("traceparent", traceparent);
        if (route != "/health" && route != "/metrics") {
            const double ms = std::chrono::duration<double, std::milli>(
                                  std::chrono::steady_clock::now() - started)
                                  .count();
            oe::log(response.status >= 500 ? oe::LogLevel::error : oe::LogLevel::info, "request",
                    {{"trace_id", trace_id},
                     {"method", request.method},
                     {"route", route},
                     {"status", std::to_string(response.status)},
                     {"duration_ms", fmt::format("{:.3f}", ms)}});
        }
        return response;
    });
    server.start();
    oe::log(oe::LogLevel::info, "listening",
            {{"url", fmt::format("http://127.0.0.1:{}", server.port())},
             {"backend", std::string(store->backend_name())}});
    server.run_until_signal();
    projections.stop();  // Commits the batch in progress; checkpoints are durable after this.
    oe::log(oe::LogLevel::info, "stopped");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty()) {
        std::cerr << usage;
        return exit_usage;
    }
    if (args.front() == "--help" || args.front() == "help") {
        std::cout << usage;
        return 0;
    }
    const std::string command = args.front();
    args.erase(args.begin());
    try {
        if (command == "serve") {
            return run_serve(args);
        }
        if (command == "migrate") {
            return run_migrate(args);
        }
        if (command == "token") {
            return run_token(args);
        }
        std::cerr << "orderengine: unknown command '" << command << "' (see orderengine --help)\n";
        return exit_usage;
    } catch (const std::exception& e) {
        std::cerr << "orderengine " << command << ": " << e.what() << "\n";
        return exit_failure;
    }
}
