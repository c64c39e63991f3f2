#include <oe/http/api.hpp>

#include <algorithm>
#include <charconv>
#include <map>
#include <optional>
#include <vector>

#include <fmt/format.h>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <oe/auth/identity.hpp>
#include <oe/auth/jwt.hpp>
#include <oe/commands/commands.hpp>
#include <oe/events/order_status.hpp>
#include <oe/kernel/event_store.hpp>
#include <oe/kernel/json_text.hpp>
#include <oe/kernel/log.hpp>
#include <oe/kernel/metrics.hpp>
#include <oe/kernel/time.hpp>

namespace oe::http {

namespace {

constexpr std::size_t order_page_default = 50;
constexpr std::size_t order_page_max = 200;

Response json_response(int status, std::string body) {
    Response r;
    r.status = status;
    r.body = std::move(body);
    return r;
}

/// A failed step of a request: the response to send instead.
struct Failure {
    Response response;
};

template <typename T>
using Step = Result<T, Failure>;

Failure fail(int status, std::string_view code, std::string_view message) {
    return Failure{error_response(status, code, message)};
}

Failure not_found() {
    return fail(404, "not_found", "no such resource");
}

std::vector<std::string_view> segments(std::string_view path) {
    std::vector<std::string_view> parts;
    while (!path.empty()) {
        if (path.front() == '/') {
            path.remove_prefix(1);
            continue;
        }
        const auto end = path.find('/');
        parts.push_back(path.substr(0, end));
        path = end == std::string_view::npos ? std::string_view{} : path.substr(end);
    }
    return parts;
}

/// Query parameters, undecoded (every value we accept is [A-Za-z0-9_-]).
std::map<std::string, std::string, std::less<>> query_of(std::string_view target) {
    std::map<std::string, std::string, std::less<>> params;
    const auto q = target.find('?');
    if (q == std::string_view::npos) {
        return params;
    }
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const auto pair = rest.substr(0, amp);
        const auto eq = pair.find('=');
        params[std::string(pair.substr(0, eq))] =
            eq == std::string_view::npos ? std::string() : std::string(pair.substr(eq + 1));
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    }
    return params;
}

std::string text(const std::optional<std::string>& value) {
    std::string out;
    if (!value) {
        return "null";
    }
    append_json_string(out, *value);
    return out;
}

std::string number(const std::optional<std::string>& value) {
    return value.value_or("null");
}

/// The order view of SPEC §6 from a row of rm_orders (columns in kOrderColumns order).
constexpr const char* order_columns =
    "order_id, partner_id, status, tier, lines, subtotal, loyalty_points, warehouse, placed_at, "
    "placed_by, on_behalf_of, erp_order_ref";

std::string order_view(const SqlRow& row) {
    return fmt::format(
        R"({{"order_id":{},"partner_id":{},"status":{},"tier":{},"lines":{},"subtotal":{},)"
        R"("loyalty_points":{},"warehouse":{},"placed_at":{},"placed_by":{},"on_behalf_of":{},)"
        R"("erp_order_ref":{}}})",
        text(row[0]), text(row[1]), text(row[2]), text(row[3]), row[4].value_or("[]"),
        number(row[5]), number(row[6]), text(row[7]), text(row[8]), text(row[9]), text(row[10]),
        text(row[11]));
}

}  // namespace

Response error_response(int status, std::string_view code, std::string_view message) {
    std::string body = R"({"error":{"code":)";
    append_json_string(body, code);
    body += R"(,"message":)";
    append_json_string(body, message);
    body += "}}";
    return json_response(status, std::move(body));
}

struct Api::Impl {
    ApiDependencies deps;

    /// 401 unless a valid bearer token is presented.
    Step<auth::Principal> authenticate(const Request& request) const {
        const auto header = request.header("Authorization");
        if (!header) {
            return fail(401, "unauthenticated", "missing bearer token");
        }
        constexpr std::string_view scheme = "Bearer ";
        if (header->size() <= scheme.size() || header->substr(0, scheme.size()) != scheme) {
            return fail(401, "unauthenticated", "the Authorization header must be 'Bearer <JWT>'");
        }
        auto principal = auth::verify_token(header->substr(scheme.size()), deps.jwt_secret,
                                            now_us() / 1'000'000);
        if (!principal.ok()) {
            return fail(401, "unauthenticated", auth::to_string(principal.error()));
        }
        return std::move(principal).value();
    }

    static std::optional<Failure> require(const auth::Principal& p, auth::Permission permission) {
        if (!auth::allows(p.role, permission)) {
            return fail(403, "forbidden", "this role may not do that");
        }
        return std::nullopt;
    }

    /// The partner a reseller or agent acts for (agents name it in X-On-Behalf-Of).
    static Step<auth::ActingFor> acting(const auth::Principal& p, const Request& request) {
        auto acting = auth::acting_for(p, request.header("X-On-Behalf-Of"));
        if (!acting.ok()) {
            switch (acting.error()) {
                case auth::AuthRejected::partner_required:
                    return fail(400, "invalid_request",
                                "an agent must name the partner in X-On-Behalf-Of");
                case auth::AuthRejected::not_your_partner:
                    return fail(403, "forbidden", "not a partner this token may act for");
                case auth::AuthRejected::forbidden:
                    return fail(403, "forbidden", "forbidden");
            }
        }
        return std::move(acting).value();
    }

    Step<Response> catalog(const auth::Principal& p, const Request& request) const {
        if (auto denied = require(p, auth::Permission::view_catalog)) {
            return *denied;
        }
        auto who = acting(p, request);
        if (!who.ok()) {
            return who.error();
        }
        const auto partner = auth::PartnerDirectory(deps.store).find(who.value().partner_id);
        if (!partner) {
            return fail(422, "unknown_partner", "the partner is not registered");
        }
        // Warehouses that serve the partner's region.
        std::vector<std::string> serving;
        for (const auto& row :
             deps.store.query("SELECT warehouse_id, sla_hours FROM rm_warehouses")) {
            boost::system::error_code ec;
            const auto sla = boost::json::parse(row[1].value_or("{}"), ec);
            if (!ec && sla.is_object() && sla.get_object().contains(partner->region)) {
                serving.push_back(*row[0]);
            }
        }
        std::map<std::string, std::int64_t> available;
        for (const auto& row :
             deps.store.query("SELECT sku, warehouse_id, available FROM rm_stock")) {
            if (std::find(serving.begin(), serving.end(), *row[1]) != serving.end()) {
                available[*row[0]] += std::max<std::int64_t>(0, std::stoll(*row[2]));
            }
        }
        std::string body = "[";
        for (const auto& row : deps.store.query(
                 "SELECT sku, name, base_price, unit_price FROM rm_pricing WHERE tier = $1 "
                 "ORDER BY sku",
                 {std::string(events::to_string(partner->tier))})) {
            if (body.size() > 1) {
                body.push_back(',');
            }
            body += fmt::format(R"({{"sku":{},"name":{},"base_price":{},"unit_price":{},)"
                                R"("available":{}}})",
                                text(row[0]), text(row[1]), number(row[2]), number(row[3]),
                                available[*row[0]]);
        }
        body.push_back(']');
        return json_response(200, std::move(body));
    }

    Step<Response> credit(const auth::Principal& p, const Request& request) const {
        if (auto denied = require(p, auth::Permission::view_credit)) {
            return *denied;
        }
        auto who = acting(p, request);
        if (!who.ok()) {
            return who.error();
        }
        const auto rows = deps.store.query(
            "SELECT partner_id, credit_limit, erp_debt, open_orders_total, available_credit, "
            "debt_synced_at FROM rm_credit WHERE partner_id = $1",
            {who.value().partner_id});
        if (rows.empty()) {
            return fail(422, "unknown_partner", "the partner is not registered");
        }
        const auto& r = rows[0];
        return json_response(
            200,
            fmt::format(R"({{"partner_id":{},"credit_limit":{},"erp_debt":{},)"
                        R"("open_orders_total":{},"available_credit":{},"debt_synced_at":{}}})",
                        text(r[0]), number(r[1]), number(r[2]), number(r[3]), number(r[4]),
                        text(r[5])));
    }

    Step<Response> order(const auth::Principal& p, std::string_view id) const {
        if (!commands::is_valid_id(id)) {
            return not_found();
        }
        const auto rows = deps.store.query(
            fmt::format("SELECT {} FROM rm_orders WHERE order_id = $1", order_columns),
            {std::string(id)});
        // Unknown and not-yours look exactly the same (BOLA).
        if (rows.empty() || !auth::may_view_order(p, rows[0][1].value_or(""))) {
            return not_found();
        }
        return json_response(200, order_view(rows[0]));
    }

    Step<Response> orders(const auth::Principal& p, const Request& request) const {
        if (auto denied = require(p, auth::Permission::list_own_orders)) {
            return *denied;
        }
        auto who = acting(p, request);
        if (!who.ok()) {
            return who.error();
        }
        const auto params = query_of(request.target);
        for (const auto& [key, value] : params) {
            if (key != "status" && key != "limit" && key != "after") {
                return fail(400, "invalid_request", fmt::format("unknown parameter '{}'", key));
            }
        }
        std::size_t limit = order_page_default;
        if (const auto found = params.find("limit"); found != params.end()) {
            const auto& v = found->second;
            const auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), limit);
            if (ec != std::errc{} || ptr != v.data() + v.size() || limit < 1 ||
                limit > order_page_max) {
                return fail(400, "invalid_request",
                            fmt::format("limit must be 1..{}", order_page_max));
            }
        }
        std::string sql = fmt::format(
            "SELECT {} FROM rm_orders WHERE partner_id = $1 AND order_id > $2", order_columns);
        std::vector<SqlValue> values{who.value().partner_id, std::string()};
        if (const auto found = params.find("after"); found != params.end()) {
            values[1] = found->second;
        }
        if (const auto found = params.find("status"); found != params.end()) {
            if (!events::parse_order_status(found->second)) {
                return fail(400, "invalid_request", "unknown status");
            }
            sql += " AND status = $3";
            values.emplace_back(found->second);
        }
        sql += fmt::format(" ORDER BY order_id LIMIT {}", limit + 1);
        const auto rows = deps.store.query(sql, values);
        std::string body = R"({"orders":[)";
        const std::size_t shown = std::min(rows.size(), limit);
        for (std::size_t i = 0; i < shown; ++i) {
            body += (i > 0 ? "," : "") + order_view(rows[i]);
        }
        body += R"(],"next_after":)";
        body += rows.size() > limit ? text(rows[limit - 1][0]) : "null";
        body += "}";
        return json_response(200, std::move(body));
    }

    Step<Response> route(const Request& request) const {
        const auto parts = segments(request.path());
        auto principal = authenticate(request);
        if (!principal.ok()) {
            return principal.error();
        }
        const auto& p = principal.value();
        const bool get = request.method == "GET";
        if (get && parts.size() == 2 && parts[1] == "catalog") {
            return catalog(p, request);
        }
        if (get && parts.size() == 2 && parts[1] == "credit") {
            return credit(p, request);
        }
        if (get && parts.size() == 2 && parts[1] == "orders") {
            return orders(p, request);
        }
        if (get && parts.size() == 3 && parts[1] == "orders") {
            return order(p, parts[2]);
        }
        return not_found();
    }
};

Api::Api(ApiDependencies dependencies)
    : impl_(std::make_unique<Impl>(Impl{std::move(dependencies)})) {}

Api::~Api() = default;

Response Api::handle(const Request& request) {
    try {
        auto result = impl_->route(request);
        return result.ok() ? std::move(result).value() : result.error().response;
    } catch (const StoreError& e) {
        log(LogLevel::error, "store error",
            {{"path", std::string(request.path())}, {"error", e.what()}});
        return error_response(503, "unavailable", "the store is unavailable; retry");
    }
}

}  // namespace oe::http
