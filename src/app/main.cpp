// orderengine: the composition root. Reads like the list of the parts that run.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <sys/prctl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <oe/app/config_service.hpp>
#include <oe/app/demo.hpp>
#include <oe/app/erp_worker.hpp>
#include <oe/app/finance.hpp>
#include <oe/app/rebuild_process.hpp>
#include <oe/app/store_factory.hpp>
#include <oe/auth/jwt.hpp>
#include <oe/commands/command_service.hpp>
#include <oe/commands/commands.hpp>
#include <oe/erp/fake_erp.hpp>
#include <oe/erp/gateway.hpp>
#include <oe/erp/http_erp.hpp>
#include <oe/http/api.hpp>
#include <oe/http/server.hpp>
#include <oe/kernel/event_store.hpp>
#include <oe/kernel/log.hpp>
#include <oe/kernel/metrics.hpp>
#include <oe/kernel/time.hpp>
#include <oe/projections/rebuild.hpp>
#include <oe/projections/runner.hpp>

namespace {

constexpr int exit_usage = 2;

/// The one-line error for an argument a command's options did not take: one of `valued` (the
/// options that take a value) given last, without its value, or an option it does not have.
int bad_option(std::string_view command, const std::string& arg,
               std::initializer_list<std::string_view> valued,
               std::string_view hint = "see orderengine --help") {
    if (std::find(valued.begin(), valued.end(), arg) != valued.end()) {
        std::cerr << "orderengine " << command << ": " << arg << " needs a value (" << hint
                  << ")\n";
    } else {
        std::cerr << "orderengine " << command << ": unknown option '" << arg << "' (" << hint
                  << ")\n";
    }
    return exit_usage;
}
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
    "  audit order <id>                  an order's history and its price, points and credit\n"
    "                                    re-derived as of its position (exit 1: inconsistent)\n"
    "  replay --as-of <ISO8601|position> [--model credit|stock|pricing|orders]\n"
    "         [--format json|csv]        a read model as it stood then, from the log alone\n"
    "  rebuild <projection|--all> [--beside-server] [--progress json]\n"
    "                                    rebuild read models into shadow tables from the log\n"
    "                                    and swap them in (safe while serve runs; SIGTERM or\n"
    "                                    Ctrl-C cancels before the swap)\n"
    "  fake-erp --port P [--fail-rate F] [--latency-ms L] [--down] [--seed FILE]\n"
    "                                    run the simulated legacy ERP (wire format in\n"
    "                                    docs/erp-wire-format.md, control under /_sim)\n"
    "environment: DATABASE_URL (default sqlite://./data/orderengine.db),\n"
    "             MIGRATION_DATABASE_URL (owner role for migrations, PostgreSQL), PORT,\n"
    "             ERP_URL (the legacy ERP; unset: a simulated ERP runs in-process)\n";

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
    if (path.starts_with("/api/admin/products/")) {
        return "/api/admin/products/{sku}";
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
    if (path.starts_with("/api/finance/orders/")) {
        return "/api/finance/orders/{id}/audit";
    }
    if (path == "/api/finance/replay") {
        return std::string(path);
    }
    if (path.starts_with("/api/admin/projections/")) {
        return "/api/admin/projections/{name}/rebuild";
    }
    if (path == "/api/admin/projections") {
        return std::string(path);
    }
    if (path.starts_with("/api/admin/erp/dead-letters/")) {
        return "/api/admin/erp/dead-letters/{id}/retry";
    }
    if (path == "/api/admin/erp" || path == "/api/admin/erp/sync") {
        return std::string(path);
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
            return bad_option("token", args[i],
                              {"--role", "--partner", "--partners", "--sub", "--ttl-s"});
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
    // Claims the server would never see in such a token, and ids it would never match.
    if (!principal.partner_id.empty() && principal.role != oe::auth::Role::reseller) {
        std::cerr << "orderengine token: --partner is for a reseller token (an agent's are "
                     "--partners)\n";
        return exit_usage;
    }
    if (!principal.partners.empty() && principal.role != oe::auth::Role::agent) {
        std::cerr << "orderengine token: --partners is for an agent token\n";
        return exit_usage;
    }
    std::vector<std::string> ids = principal.partners;
    if (!principal.partner_id.empty()) {
        ids.push_back(principal.partner_id);
    }
    for (const auto& id : ids) {
        if (!oe::commands::is_valid_id(id)) {
            std::cerr << "orderengine token: partner id '" << id.substr(0, 80)
                      << "' must be 1..64 characters of [A-Za-z0-9_-]\n";
            return exit_usage;
        }
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

/// Blocks SIGINT and SIGTERM in this thread (and the threads it starts afterwards) and waits
/// for one of them.
int wait_for_stop_signal() {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    int received = 0;
    sigwait(&signals, &received);
    return received;
}

void block_stop_signals() {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

std::optional<double> parse_rate(const std::string& text) {
    try {
        std::size_t used = 0;
        const double value = std::stod(text, &used);
        if (used == text.size() && value >= 0 && value <= 1) {
            return value;
        }
    } catch (const std::exception&) {
    }
    return std::nullopt;
}

int run_fake_erp(const std::vector<std::string>& args) {
    oe::erp::FakeErpOptions options;
    std::optional<std::uint16_t> port;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const bool has_value = i + 1 < args.size();
        if (args[i] == "--port" && has_value) {
            port = parse_port(args[++i]);
            if (!port) {
                std::cerr << "orderengine fake-erp: --port must be 0..65535\n";
                return exit_usage;
            }
        } else if (args[i] == "--fail-rate" && has_value) {
            const auto rate = parse_rate(args[++i]);
            if (!rate) {
                std::cerr << "orderengine fake-erp: --fail-rate must be a number 0..1\n";
                return exit_usage;
            }
            options.mode.fail_rate = *rate;
        } else if (args[i] == "--latency-ms" && has_value) {
            const std::string text = args[++i];
            if (text.empty() || text.size() > 6 ||
                text.find_first_not_of("0123456789") != std::string::npos) {
                std::cerr << "orderengine fake-erp: --latency-ms must be 0..600000\n";
                return exit_usage;
            }
            options.mode.latency_ms = std::stoll(text);
        } else if (args[i] == "--down") {
            options.mode.down = true;
        } else if (args[i] == "--address" && has_value) {
            options.address = args[++i];
        } else if (args[i] == "--seed" && has_value) {
            const std::string& path = args[++i];
            std::error_code ec;
            std::ifstream file(path);
            if (!std::filesystem::is_regular_file(path, ec) || !file) {
                std::cerr << "orderengine fake-erp: cannot read the seed file " << path
                          << " (not a readable file)\n";
                return exit_usage;
            }
            std::stringstream text;
            text << file.rdbuf();
            options.seed_json = text.str();
            if (file.bad() || options.seed_json.find_first_not_of(" \t\r\n") == std::string::npos) {
                std::cerr << "orderengine fake-erp: the seed file " << path
                          << " is empty (expected {\"stock\":[...],\"debt\":{...}})\n";
                return exit_usage;
            }
        } else {
            return bad_option("fake-erp", args[i],
                              {"--port", "--fail-rate", "--latency-ms", "--address", "--seed"});
        }
    }
    if (!port) {
        std::cerr << "orderengine fake-erp: --port is required\n";
        return exit_usage;
    }
    options.port = *port;
    block_stop_signals();
    std::unique_ptr<oe::erp::FakeErp> erp;
    try {
        erp = std::make_unique<oe::erp::FakeErp>(options);
        erp->start();
    } catch (const std::exception& e) {
        std::cerr << "orderengine fake-erp: " << e.what() << "\n";
        return exit_usage;
    }
    oe::log(oe::LogLevel::info, "simulated ERP listening",
            {{"url", fmt::format("http://{}:{}", options.address, erp->port())}});
    wait_for_stop_signal();
    erp->stop();
    oe::log(oe::LogLevel::info, "simulated ERP stopped");
    return 0;
}

/// A milliseconds setting from the environment (tuning for tests and operators).
std::optional<std::chrono::milliseconds> env_ms(const char* name, std::int64_t fallback) {
    const auto text = env_optional(name);
    if (!text) {
        return std::chrono::milliseconds(fallback);
    }
    if (text->size() > 9 || text->find_first_not_of("0123456789") != std::string::npos) {
        return std::nullopt;
    }
    return std::chrono::milliseconds(std::stoll(*text));
}

/// A config value as a number: ints as they are, decimals ("2.50") in hundredths.
std::int64_t config_number(oe::app::ConfigService& config, std::string_view key) {
    const auto entry = config.get(key);
    if (!entry) {
        throw std::invalid_argument(fmt::format("unknown config key {}", key));
    }
    std::string text = entry->value_json;
    if (!text.empty() && text.front() == '"') {
        text = text.substr(1, text.size() - 2);
        const auto dot = text.find('.');
        if (dot == std::string::npos) {
            return std::stoll(text) * 100;
        }
        return std::stoll(text.substr(0, dot)) * 100 + std::stoll(text.substr(dot + 1, 2));
    }
    return std::stoll(text);
}

/// Seeds an in-process simulated ERP with what the log last synced, so it agrees with the
/// read models from the first sync on.
void seed_from_log(oe::erp::FakeErp& erp, oe::commands::CommandService& commands) {
    commands.with_state([&](const oe::model::CommerceState& state) {
        for (const auto& [key, row] : state.stock_rows()) {
            if (row.as_of_us != 0) {
                erp.set_stock(key.first, key.second, row.on_hand);
            }
        }
        for (const auto& id : state.partner_ids()) {
            erp.set_debt(id, state.partner(id)->erp_debt_idr);
        }
    });
}

/// Set by SIGTERM or SIGINT during `orderengine rebuild`: stop before the swap.
std::atomic<bool> rebuild_cancelled{false};

extern "C" void cancel_rebuild_on_signal(int) {
    rebuild_cancelled.store(true);
}

int run_rebuild(const std::vector<std::string>& all_args) {
    // --beside-server: on one core whether or not a server holds the database (a server
    // starts its rebuilds so). --progress json: each progress report, and the end, as one
    // line of JSON on stdout (the object GET /api/admin/projections shows), and nothing else.
    bool beside_server = false;
    bool json = false;
    std::vector<std::string> args;
    for (std::size_t i = 0; i < all_args.size(); ++i) {
        if (all_args[i] == "--beside-server") {
            beside_server = true;
        } else if (all_args[i] == "--progress") {
            if (i + 1 >= all_args.size() || all_args[i + 1] != "json") {
                std::cerr << "orderengine rebuild: --progress takes one value: json\n";
                return exit_usage;
            }
            json = true;
            ++i;
        } else {
            args.push_back(all_args[i]);
        }
    }
    if (args.size() != 1) {
        std::cerr << "orderengine rebuild: name one projection or --all ("
                  << fmt::format("{}", fmt::join(oe::projections::projection_names(), ", "))
                  << ")\n";
        return exit_usage;
    }
    std::vector<std::string> names;
    if (args[0] != "--all") {
        const auto known = oe::projections::projection_names();
        if (std::find(known.begin(), known.end(), args[0]) == known.end()) {
            std::cerr << "orderengine rebuild: unknown projection '" << args[0]
                      << "' (known: " << fmt::format("{}", fmt::join(known, ", "))
                      << ", or --all)\n";
            return exit_usage;
        }
        names.push_back(args[0]);
    }
    // Ctrl-C or SIGTERM (a server stopping its rebuild) cancels before the swap: the live read
    // models stay as they are.
    struct sigaction action {};
    action.sa_handler = cancel_rebuild_on_signal;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGTERM, &action, nullptr);
    ::sigaction(SIGINT, &action, nullptr);
    if (beside_server) {
        // Started by a server (or a shell) that dies before it ends: cancelled as if stopped,
        // rather than carrying on unseen with the "rebuild" lease held. (Linux sends it when
        // the thread that started this process ends; a server's waits for it.)
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        // Its progress goes to a pipe the server reads: with the server gone, a write fails
        // (EPIPE) instead of ending this process before it says it was cancelled.
        ::signal(SIGPIPE, SIG_IGN);
    }
    // With --progress json a failure is a line of JSON too (the server shows its error): the
    // last status reported, failed.
    oe::projections::RebuildStatus failed;
    failed.projections = names.empty() ? oe::projections::projection_names() : names;
    failed.started_at_us = oe::now_us();
    const auto fail = [&](const std::string& message, int code) {
        failed.state = "failed";
        if (json) {
            failed.error = message;
            failed.finished_at_us = oe::now_us();
            std::cout << oe::projections::to_json(failed) << std::endl;
        }
        std::cerr << "orderengine rebuild: " << message << "\n";
        return code;
    };
    if (const auto parent = env_optional("OE_REBUILD_PARENT_PID");
        beside_server && parent && *parent != std::to_string(::getppid())) {
        // The server that started it ended before PR_SET_PDEATHSIG above took effect.
        return fail("cancelled: the server that started it has gone", exit_failure);
    }
    try {
        const std::string url = env_or("DATABASE_URL", default_database_url);
        auto store = oe::app::open_store(url);
        const auto lease = store->try_lease("rebuild");
        if (!lease) {
            return fail("a rebuild is already running against this database", 1);
        }
        // A server taking orders against this database holds the "erp" lease (its ERP worker):
        // then the rebuild leaves it the other cores, as a rebuild started through the API does.
        const bool serving = beside_server || store->try_lease("erp") == nullptr;
        std::unique_ptr<oe::EventStore> background;
        if (serving) {
            if (!json) {
                std::cerr << "a server is running against this database: rebuilding on one core\n";
            }
            if (oe::app::parse_database_url(url).backend == oe::app::Backend::postgresql) {
                background = oe::app::open_store(url, {}, nullptr, oe::app::StoreUse::background);
            }
        }
        // A test's failpoint: the rebuild stops once its shadow tables are written, before the
        // catch-up and the swap, until it is cancelled (how a test kills a server mid-rebuild).
        const bool stall_before_swap = env_or("OE_FAILPOINT", "") == "rebuild_before_swap";
        const auto done = oe::projections::rebuild(
            background ? *background : *store, names,
            [json, &failed, stall_before_swap](const auto& s) {
                if (json) {
                    failed = s;
                    std::cout << oe::projections::to_json(s) << std::endl;
                } else {
                    std::cerr << fmt::format(
                        "{}: {} of {} events, {} events/s, eta {} ms, {} rows written, "
                        "working {} % of the time\n",
                        s.state, s.position, s.target, s.events_per_s, s.eta_ms, s.written_rows,
                        s.share_percent);
                }
                if (stall_before_swap && s.state == "swapping") {
                    while (!rebuild_cancelled.load()) {
                        std::this_thread::sleep_for(std::chrono::milliseconds(10));
                    }
                }
            },
            &rebuild_cancelled,
            serving ? oe::projections::RebuildCores::one : oe::projections::RebuildCores::all);
        if (json) {
            std::cout << oe::projections::to_json(done) << std::endl;
            return 0;
        }
        bool identical = true;
        for (const auto& c : done.checksums) {
            std::cout << fmt::format("{:<18} {:>9} rows  live {}  rebuilt {}{}\n", c.projection,
                                     c.rows, c.live, c.rebuilt,
                                     c.live == c.rebuilt ? "  identical" : "  CHANGED");
            identical = identical && c.live == c.rebuilt;
        }
        std::cout << fmt::format(
            "swapped in at position {} in {} ms{}\n", done.swapped_at,
            (done.finished_at_us - done.started_at_us) / 1000,
            identical ? "" : " (the rebuilt tables differ from what they replaced)");
        return 0;
    } catch (const std::exception& e) {
        return fail(e.what(), exit_failure);
    }
}

int run_audit(const std::vector<std::string>& args) {
    if (args.size() != 2 || args[0] != "order") {
        std::cerr << "orderengine audit: usage: orderengine audit order <id>\n";
        return exit_usage;
    }
    auto store = oe::app::open_store(env_or("DATABASE_URL", default_database_url));
    auto report = oe::app::audit_order(*store, args[1]);
    if (!report.ok()) {
        std::cerr << "orderengine audit: " << report.error().message << "\n";
        return exit_usage;
    }
    std::cout << oe::app::to_json(report.value()) << "\n";
    return report.value().consistent ? 0 : 1;
}

int run_replay(const std::vector<std::string>& args) {
    std::optional<std::string> as_of_text;
    std::string model_text = "credit";
    std::string format_text = "json";
    for (std::size_t i = 0; i < args.size(); ++i) {
        const bool has_value = i + 1 < args.size();
        if (args[i] == "--as-of" && has_value) {
            as_of_text = args[++i];
        } else if (args[i] == "--model" && has_value) {
            model_text = args[++i];
        } else if (args[i] == "--format" && has_value) {
            format_text = args[++i];
        } else {
            return bad_option("replay", args[i], {"--as-of", "--model", "--format"},
                              "usage: replay --as-of T [--model M] [--format csv|json]");
        }
    }
    if (!as_of_text) {
        std::cerr << "orderengine replay: --as-of is required (an ISO 8601 UTC instant or a "
                     "global position)\n";
        return exit_usage;
    }
    const auto as_of = oe::app::parse_as_of(*as_of_text);
    const auto model = oe::app::parse_replay_model(model_text);
    const auto format = oe::app::parse_replay_format(format_text);
    for (const oe::app::FinanceError* error :
         {as_of.ok() ? nullptr : &as_of.error(), model.ok() ? nullptr : &model.error(),
          format.ok() ? nullptr : &format.error()}) {
        if (error != nullptr) {
            std::cerr << "orderengine replay: " << error->message << "\n";
            return exit_usage;
        }
    }
    auto store = oe::app::open_store(env_or("DATABASE_URL", default_database_url));
    const auto table = oe::app::replay(*store, as_of.value(), model.value(), oe::now_us());
    if (!table.ok()) {
        std::cerr << "orderengine replay: " << table.error().message << "\n";
        return exit_usage;
    }
    std::cout << (format.value() == oe::app::ReplayFormat::csv
                      ? oe::app::to_csv(table.value())
                      : oe::app::to_json(table.value()) + "\n");
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
            return bad_option("serve", args[i], {"--port"});
        }
    }

    const auto jwt_secret = env_optional("AUTH_JWT_SECRET");
    if (!jwt_secret) {
        std::cerr << "orderengine serve: AUTH_JWT_SECRET is not set (the API signs and checks "
                     "tokens with it)\n";
        return exit_usage;
    }
    const auto erp_url = env_optional("ERP_URL");
    std::optional<oe::erp::ErpEndpoint> erp_endpoint;
    if (erp_url) {
        erp_endpoint = oe::erp::parse_erp_url(*erp_url);
        if (!erp_endpoint) {
            std::cerr << "orderengine serve: ERP_URL must be http://host[:port][/path]\n";
            return exit_usage;
        }
    }
    const auto erp_timeout = env_ms("ERP_TIMEOUT_MS", 5'000);
    const auto erp_open_for = env_ms("ERP_CIRCUIT_OPEN_MS", 30'000);
    const auto erp_retry_base = env_ms("ERP_RETRY_BASE_MS", 500);
    const auto erp_sim_port = parse_port(env_or("ERP_SIM_PORT", "0"));
    // The built-in simulated ERP answers like a legacy one: in a quarter of a second.
    const auto erp_sim_latency = env_ms("ERP_SIM_LATENCY_MS", 250);
    if (!erp_timeout || !erp_open_for || !erp_retry_base || !erp_sim_port || !erp_sim_latency) {
        std::cerr << "orderengine serve: ERP_TIMEOUT_MS, ERP_CIRCUIT_OPEN_MS, ERP_RETRY_BASE_MS "
                     "and ERP_SIM_LATENCY_MS must be whole milliseconds, ERP_SIM_PORT 0..65535\n";
        return exit_usage;
    }

    const std::string url = env_or("DATABASE_URL", default_database_url);
    if (migrate) {
        oe::app::migrate(url, env_optional("MIGRATION_DATABASE_URL"));
    }
    oe::metrics::Registry metrics;
    auto store = oe::app::open_store(url, {}, &metrics);

    // The parts that run: the command side (write model) and the read models.
    oe::commands::CommandService commands(*store);
    if (demo && store->head_position() == 0) {
        const auto applied = oe::app::load_demo_data(commands);
        oe::log(oe::LogLevel::info, "demo data loaded", {{"commands", std::to_string(applied)}});
    }
    oe::projections::ProjectionRunner projections(*store, oe::projections::make_read_models());
    projections.start();

    oe::commands::observe_routing_latency(&metrics.histogram(
        "lead_routing_latency_ms", "SLA routing of an order to a warehouse, in milliseconds",
        {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25}));
    auto config_cache = oe::app::make_config_cache(env_optional("REDIS_URL"));
    oe::app::ConfigService config(*store, commands, projections, *config_cache);
    oe::log(oe::LogLevel::info, "config cache", {{"cache", std::string(config_cache->name())}});

    // The ERP side: the legacy ERP at ERP_URL, or a simulated one in-process; the ACL's
    // gateway (circuit breaker, counters); the projector and the stock/debt sync.
    std::unique_ptr<oe::erp::FakeErp> simulated_erp;
    if (!erp_endpoint) {
        oe::erp::FakeErpOptions sim;
        sim.port = *erp_sim_port;
        sim.mode.latency_ms = erp_sim_latency->count();
        simulated_erp = std::make_unique<oe::erp::FakeErp>(sim);
        seed_from_log(*simulated_erp, commands);
        simulated_erp->start();
        erp_endpoint = oe::erp::ErpEndpoint{"127.0.0.1", simulated_erp->port(), ""};
        oe::log(oe::LogLevel::info, "simulated ERP in-process (ERP_URL is not set)",
                {{"url", fmt::format("http://127.0.0.1:{}", simulated_erp->port())}});
    }
    oe::erp::ErpGateway erp_gateway(oe::erp::make_http_erp(*erp_endpoint, *erp_timeout),
                                    {5, *erp_open_for}, metrics);
    oe::app::ErpWorkerOptions erp_options;
    erp_options.retry_base = *erp_retry_base;
    erp_options.crash_after_erp_answer = env_or("OE_FAILPOINT", "") == "erp_after_answer";
    oe::app::ErpWorker erp_worker(
        *store, commands, erp_gateway,
        [&config](std::string_view key) { return config_number(config, key); }, metrics,
        erp_options);
    erp_worker.start();

    // Rebuilds run in a process of their own (this binary: `orderengine rebuild
    // --beside-server`): the write model a fold builds is the child's and freed when it exits,
    // and a crash in a rebuild leaves the server up. It yields the CPU as an in-process
    // rebuild did (src/app/rebuild_process.hpp).
    oe::projections::RebuildJobs rebuilds(*store,
                                          oe::app::rebuild_in_child_process("/proc/self/exe", url));
    oe::http::Api api(
        {*store, commands, config, metrics, *jwt_secret, &erp_worker, &projections, &rebuilds});
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
    if (simulated_erp) {
        simulated_erp->stop();  // Answers what it holds at once, so the worker stops promptly.
    }
    rebuilds.stop();     // A rebuild not swapped in yet is dropped; the live tables stay.
    erp_worker.stop();   // A delivery in flight finishes first; its checkpoint is committed.
    projections.stop();  // Commits the batch in progress; checkpoints are durable after this.
    oe::commands::observe_routing_latency(nullptr);
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
    // Help asked for anywhere, of any command (`orderengine fake-erp --help`): the usage, exit 0.
    if (args.front() == "help" || std::find_if(args.begin(), args.end(), [](const std::string& a) {
                                      return a == "--help" || a == "-h";
                                  }) != args.end()) {
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
        if (command == "fake-erp") {
            return run_fake_erp(args);
        }
        if (command == "rebuild") {
            return run_rebuild(args);
        }
        if (command == "audit") {
            return run_audit(args);
        }
        if (command == "replay") {
            return run_replay(args);
        }
        std::cerr << "orderengine: unknown command '" << command << "' (see orderengine --help)\n";
        return exit_usage;
    } catch (const std::exception& e) {
        std::cerr << "orderengine " << command << ": " << e.what() << "\n";
        return exit_failure;
    }
}
