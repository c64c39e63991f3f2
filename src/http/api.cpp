#include <oe/http/api.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <limits>
#include <map>
#include <optional>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <openssl/evp.h>

#include <mutex>
#include <random>
#include <set>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <oe/app/config_service.hpp>
#include <oe/app/erp_worker.hpp>
#include <oe/app/finance.hpp>
#include <oe/auth/identity.hpp>
#include <oe/auth/jwt.hpp>
#include <oe/commands/command_service.hpp>
#include <oe/commands/commands.hpp>
#include <oe/erp/erp_port.hpp>
#include <oe/events/order_status.hpp>
#include <oe/http/json_request.hpp>
#include <oe/kernel/event_store.hpp>
#include <oe/kernel/invariant.hpp>
#include <oe/kernel/json_text.hpp>
#include <oe/kernel/log.hpp>
#include <oe/kernel/metrics.hpp>
#include <oe/kernel/time.hpp>
#include <oe/model/config_keys.hpp>
#include <oe/projections/order_lines.hpp>
#include <oe/projections/rebuild.hpp>
#include <oe/projections/runner.hpp>

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
/// Percent-decodes a query component (RFC 3986: "%3A" -> ":"). '+' stays '+' (a timestamp's
/// offset), and a malformed escape is kept as written, so the value is then refused by its
/// own validation rather than guessed at.
std::string percent_decoded(std::string_view text) {
    const auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        if (c >= 'A' && c <= 'F') {
            return c - 'A' + 10;
        }
        return -1;
    };
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 &&
            hex(text[i + 2]) >= 0) {
            out.push_back(static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2])));
            i += 2;
        } else {
            out.push_back(text[i]);
        }
    }
    return out;
}

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
        params[percent_decoded(pair.substr(0, eq))] =
            eq == std::string_view::npos ? std::string() : percent_decoded(pair.substr(eq + 1));
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
        text(row[0]), text(row[1]), text(row[2]), text(row[3]),
        projections::order_lines_view(row[4].value_or("[]")), number(row[5]), number(row[6]),
        text(row[7]), text(row[8]), text(row[9]), text(row[10]), text(row[11]));
}

/// Lower-case hex SHA-256.
std::string sha256_hex(std::string_view data) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
    std::string hex;
    hex.reserve(2 * length);
    for (unsigned int i = 0; i < length; ++i) {
        hex += fmt::format("{:02x}", digest[i]);
    }
    return hex;
}

/// The order view of SPEC §6 from what the write model knows.
std::string order_view(const events::OrderPlaced& placed, std::string_view status,
                       std::string_view warehouse, std::string_view erp_order_ref) {
    std::string lines = "[";
    for (const auto& line : placed.lines) {
        if (lines.size() > 1) {
            lines.push_back(',');
        }
        lines += "{\"sku\":";
        append_json_string(lines, line.sku);
        lines += fmt::format(
            R"(,"qty":{},"base_price":{},"unit_price":{},"discount_bps":{},"line_total":{}}})",
            line.qty, line.base_price_idr, line.unit_price_idr, line.discount_bps,
            line.line_total_idr);
    }
    lines.push_back(']');
    auto optional = [](std::string_view v) {
        return v.empty() ? std::optional<std::string>() : std::optional<std::string>(v);
    };
    return fmt::format(
        R"({{"order_id":{},"partner_id":{},"status":{},"tier":{},"lines":{},"subtotal":{},)"
        R"("loyalty_points":{},"warehouse":{},"placed_at":{},"placed_by":{},"on_behalf_of":{},)"
        R"("erp_order_ref":{}}})",
        text(placed.order_id), text(placed.partner_id), text(std::string(status)),
        text(std::string(events::to_string(placed.tier))), lines, placed.subtotal_idr,
        placed.loyalty_points, text(optional(warehouse)),
        text(format_iso8601_us(placed.placed_at_us)), text(placed.placed_by),
        text(optional(placed.on_behalf_of)), text(optional(erp_order_ref)));
}

/// HTTP status of a refused command (SPEC §6).
int status_of(commands::Rejected reason) {
    using commands::Rejected;
    switch (reason) {
        case Rejected::invalid_request:
            return 400;
        case Rejected::order_not_found:
        case Rejected::dead_letter_not_found:
            return 404;
        case Rejected::order_state_changed:
        case Rejected::not_cancellable:
        case Rejected::not_on_hold:
        case Rejected::already_exists:
            return 409;
        default:
            return 422;
    }
}

/// Stored for replay: 2xx and the 409/422 business outcomes; never 400/401/403/404/413/5xx.
bool storable(int status) {
    return (status >= 200 && status < 300) || status == 409 || status == 422;
}

constexpr std::string_view idempotency_record_type = "IdempotentResponseRecorded";

}  // namespace

namespace {

bool is_lower_hex(std::string_view text) {
    return std::all_of(text.begin(), text.end(),
                       [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string random_hex(std::size_t bytes) {
    thread_local std::mt19937_64 random{std::random_device{}()};
    std::string out;
    while (out.size() < 2 * bytes) {
        out += fmt::format("{:016x}", random());
    }
    out.resize(2 * bytes);
    return out;
}

}  // namespace

std::pair<std::string, std::string> trace_context(std::optional<std::string_view> incoming) {
    std::string trace_id;
    // version-traceid-parentid-flags: "00-" 32 hex "-" 16 hex "-" 2 hex; all-zero ids invalid.
    if (incoming && incoming->size() == 55 && incoming->substr(0, 3) == "00-" &&
        (*incoming)[35] == '-' && (*incoming)[52] == '-' && is_lower_hex(incoming->substr(3, 32)) &&
        is_lower_hex(incoming->substr(36, 16)) && is_lower_hex(incoming->substr(53, 2)) &&
        incoming->substr(3, 32) != std::string(32, '0') &&
        incoming->substr(36, 16) != std::string(16, '0')) {
        trace_id = std::string(incoming->substr(3, 32));
    } else {
        trace_id = random_hex(16);
    }
    return {trace_id, "00-" + trace_id + "-" + random_hex(8) + "-01"};
}

Response error_response(int status, std::string_view code, std::string_view message) {
    std::string body = R"({"error":{"code":)";
    append_json_string(body, code);
    body += R"(,"message":)";
    append_json_string(body, message);
    body += "}}";
    return json_response(status, std::move(body));
}

struct Api::Impl {
    explicit Impl(ApiDependencies d) : deps(std::move(d)) {
        // SPEC §8's order counters are on /metrics from the first scrape, at 0, so a rate or
        // an alert over them has a series before the first order (count_order_outcome).
        (void)deps.metrics.counter("credit_check_rejection_count_total",
                                   "Orders put on credit hold by the credit check");
        for (const char* status : {"placed", "credit_hold"}) {
            (void)deps.metrics.counter("orders_placed_total",
                                       "Orders placed, by the status they got",
                                       {{"status", status}});
        }
        for (const char* code : {"invalid_json", "invalid_request", "unknown_sku",
                                 "below_minimum_order", "insufficient_stock"}) {
            (void)deps.metrics.counter("order_failures_total", "Orders refused, by error code",
                                       {{"code", code}});
        }
    }

    ApiDependencies deps;

    // ---- Read your writes. The read models follow the log a few milliseconds behind it, so
    // ---- a GET right after a 201 could miss the order it just placed (404), or show an
    // ---- order as placed after its cancel answered 200. A read-model GET therefore waits
    // ---- until the projectors have applied what it must see of this server's appends:
    // ---- everything admin and finance appended (rare; every reader must see a new partner,
    // ---- product, price or stock level), and the caller's own appends — not every other
    // ---- reseller's, which checkout appends hundreds of a second.

    /// How long a read waits for the projectors before it answers from what they have.
    static constexpr std::chrono::milliseconds read_your_writes_wait{1000};
    /// Callers remembered at most; past it, the settled ones are forgotten first.
    static constexpr std::size_t writers_max = 10'000;

    mutable std::mutex written_mutex;
    std::int64_t written_for_all = 0;  // The last position admin or finance appended.
    std::map<std::string, std::int64_t, std::less<>> written_by;  // By reseller or agent.

    /// Whose reads must see an append: the caller's own (reseller, agent), or everyone's.
    static std::string writer_of(const auth::Principal& p) {
        return p.role == auth::Role::reseller || p.role == auth::Role::agent ? p.subject
                                                                             : std::string();
    }

    void note_written(const std::string& writer, std::int64_t position) {
        if (deps.projections == nullptr) {
            return;  // No projector to wait for (settle_reads).
        }
        std::lock_guard lock(written_mutex);
        if (writer.empty()) {
            written_for_all = std::max(written_for_all, position);
            return;
        }
        auto& mine = written_by[writer];
        mine = std::max(mine, position);
        if (written_by.size() > writers_max) {
            // Forget the callers whose appends every read model holds already.
            std::int64_t settled = std::numeric_limits<std::int64_t>::max();
            for (const auto& [name, checkpoint] : deps.projections->checkpoints()) {
                settled = std::min(settled, checkpoint);
            }
            std::erase_if(written_by, [&](const auto& entry) { return entry.second <= settled; });
        }
        if (written_by.size() > writers_max) {
            // Still too many: everyone waits for all of them once (safe, never stale).
            for (const auto& [name, at] : written_by) {
                written_for_all = std::max(written_for_all, at);
            }
            written_by.clear();
        }
    }

    /// Returns once the read models hold what `p` must see (above), or after
    /// read_your_writes_wait: then the read answers from what the projectors have and a
    /// warning is logged — a stuck projector makes reads stale, never hung.
    void settle_reads(const auth::Principal& p, const Request& request) const {
        if (deps.projections == nullptr) {
            return;
        }
        std::int64_t position = 0;
        {
            std::lock_guard lock(written_mutex);
            position = written_for_all;
            if (const auto mine = written_by.find(p.subject); mine != written_by.end()) {
                position = std::max(position, mine->second);
            }
        }
        if (position == 0 || deps.projections->wait_for(position, read_your_writes_wait)) {
            return;
        }
        log(LogLevel::warn, "read models are behind the writes this read must see; answering",
            {{"trace_id", request.trace_id},
             {"position", std::to_string(position)},
             {"waited_ms", std::to_string(read_your_writes_wait.count())}});
    }

    /// 401 unless a valid bearer token is presented.
    Step<auth::Principal> authenticate(const Request& request) const {
        const auto header = request.header("Authorization");
        if (!header) {
            return fail(401, "unauthenticated", "missing bearer token");
        }
        // The scheme name is case-insensitive (RFC 9110 §11.1).
        constexpr std::string_view scheme = "bearer ";
        const auto same_letters = [](std::string_view a, std::string_view b) {
            return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
                return std::tolower(static_cast<unsigned char>(x)) == y;
            });
        };
        if (header->size() <= scheme.size() ||
            !same_letters(header->substr(0, scheme.size()), scheme)) {
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
        settle_reads(p, request);
        // The answer depends only on the read models, so it is kept per partner until the
        // projector has applied another batch (or a rebuild swapped tables in).
        const auto version = read_model_version();
        if (version) {
            std::lock_guard lock(catalog_mutex);
            const auto found = catalog_cache.find(who.value().partner_id);
            if (found != catalog_cache.end() && found->second.first == *version) {
                return json_response(200, found->second.second);
            }
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
        if (version) {
            std::lock_guard lock(catalog_mutex);
            if (catalog_cache.size() >= catalog_cache_max) {
                catalog_cache.clear();
            }
            catalog_cache[who.value().partner_id] = {*version, body};
        }
        return json_response(200, std::move(body));
    }

    /// Changes whenever a read model the catalog reads may have: the sum of the partners,
    /// pricing and stock checkpoints, and the end of the latest rebuild. Nothing without a
    /// projector in this process (then every request reads the tables).
    std::optional<std::pair<std::int64_t, std::int64_t>> read_model_version() const {
        if (deps.projections == nullptr) {
            return std::nullopt;
        }
        std::int64_t sum = 0;
        for (const auto& [name, position] : deps.projections->checkpoints()) {
            if (name == "partners" || name == "pricing" || name == "stock") {
                sum += position;
            }
        }
        std::int64_t rebuilt = 0;
        if (deps.rebuilds != nullptr) {
            if (const auto latest = deps.rebuilds->latest()) {
                rebuilt = latest->finished_at_us + (latest->state == "done" ? 0 : 1);
            }
        }
        return std::pair{sum, rebuilt};
    }

    static constexpr std::size_t catalog_cache_max = 10'000;
    mutable std::mutex catalog_mutex;
    mutable std::map<std::string, std::pair<std::pair<std::int64_t, std::int64_t>, std::string>,
                     std::less<>>
        catalog_cache;

    Step<Response> credit(const auth::Principal& p, const Request& request) const {
        if (auto denied = require(p, auth::Permission::view_credit)) {
            return *denied;
        }
        auto who = acting(p, request);
        if (!who.ok()) {
            return who.error();
        }
        settle_reads(p, request);
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

    Step<Response> order(const auth::Principal& p, std::string_view id,
                         const Request& request) const {
        if (!commands::is_valid_id(id)) {
            return not_found();
        }
        settle_reads(p, request);
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
        settle_reads(p, request);
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

    // ---- Idempotency (SPEC §6): the stored response is an event in a stream of its own,
    // ---- appended in the same transaction as the command's events.

    struct Idempotency {
        std::string key;
        std::string stream_id;    // idempotency-<sha256(subject, key)>: scoped to the principal.
        std::string fingerprint;  // sha256(method, path, body): "the same request".
        std::string writer;       // Whose reads must see what it appends (writer_of).
    };

    std::mutex in_flight_mutex;
    std::set<std::string> in_flight;

    /// Removes a key from the in-flight set when the request is done, however it ends.
    struct InFlight {
        Impl& impl;
        std::string stream_id;
        ~InFlight() {
            std::lock_guard lock(impl.in_flight_mutex);
            impl.in_flight.erase(stream_id);
        }
    };

    static Step<Idempotency> idempotency_of(const auth::Principal& p, const Request& request) {
        const auto key = request.header("Idempotency-Key");
        const bool printable = key && std::all_of(key->begin(), key->end(),
                                                  [](char c) { return c >= 0x20 && c < 0x7F; });
        if (!key || key->empty() || key->size() > 255 || !printable) {
            return fail(400, "idempotency_key_required",
                        "mutating requests need an Idempotency-Key header of 1..255 printable "
                        "characters");
        }
        Idempotency idem;
        idem.key = std::string(*key);
        idem.writer = writer_of(p);
        idem.stream_id = "idempotency-" + sha256_hex(p.subject + '\x1f' + idem.key);
        idem.fingerprint =
            sha256_hex(request.method + ' ' + std::string(request.path()) + '\n' + request.body);
        return idem;
    }

    /// The stored response for this key, replayed; 422 when the key was used for another
    /// request; nothing when the key is new.
    std::optional<Response> replay(const Idempotency& idem) const {
        const auto stored = deps.store.read_stream(idem.stream_id, 1, 1);
        if (stored.empty()) {
            return std::nullopt;
        }
        boost::system::error_code ec;
        const auto data = boost::json::parse(stored[0].data, ec);
        if (ec || !data.is_object() || !data.get_object().contains("fingerprint")) {
            throw StoreError("unreadable idempotency record " + idem.stream_id);
        }
        const auto& record = data.get_object();
        if (record.at("fingerprint").as_string() != idem.fingerprint) {
            return error_response(422, "idempotency_key_reuse",
                                  "this Idempotency-Key was used for a different request");
        }
        Response r = json_response(static_cast<int>(record.at("status").as_int64()),
                                   std::string(record.at("body").as_string()));
        r.headers.emplace_back("Idempotent-Replayed", "true");
        return r;
    }

    StreamAppend record(const Idempotency& idem, const Response& response,
                        const EventMetadata& metadata) const {
        std::string data = R"({"fingerprint":)";
        append_json_string(data, idem.fingerprint);
        data += fmt::format(R"(,"status":{},"body":)", response.status);
        append_json_string(data, response.body);
        data += "}";
        return StreamAppend{idem.stream_id,
                            ExpectedVersion::no_stream(),
                            {NewEvent{std::string(idempotency_record_type), 1, data, metadata}}};
    }

    /// Runs a command under an Idempotency-Key: replays a stored answer, refuses a key in use,
    /// otherwise executes and stores the answer with the command's events.
    template <typename Command>
    Step<Response> idempotent(const Idempotency& idem, const Command& command,
                              const EventMetadata& metadata,
                              const std::function<Response(const commands::Decision&,
                                                           const model::CommerceState&)>& answer) {
        {
            std::lock_guard lock(in_flight_mutex);
            if (!in_flight.insert(idem.stream_id).second) {
                return fail(409, "idempotency_key_in_flight",
                            "a request with this Idempotency-Key is still being processed");
            }
        }
        InFlight guard{*this, idem.stream_id};
        if (auto stored = replay(idem)) {
            return std::move(*stored);
        }
        std::optional<Response> response;
        auto result = deps.commands.execute(
            command, metadata,
            [&](const commands::Decision& decision,
                const model::CommerceState& state) -> std::optional<StreamAppend> {
                response = answer(decision, state);
                if (!storable(response->status)) {
                    return std::nullopt;
                }
                return record(idem, *response, metadata);
            });
        if (result.ok()) {
            note_written(idem.writer, result.value().append.last_position);
        }
        if (!result.ok() && result.error().stream_id == idem.stream_id) {
            // Another instance stored an answer for this key first: that one counts.
            if (auto stored = replay(idem)) {
                return std::move(*stored);
            }
        }
        if (!response) {
            return fail(500, "internal", "no response was decided");
        }
        return std::move(*response);
    }

    static Response rejection_response(const commands::Rejection& rejection) {
        return error_response(status_of(rejection.reason), commands::code(rejection.reason),
                              rejection.message);
    }

    /// Routes that take no body accept none or an empty object; anything else is 400.
    static std::optional<Failure> bodyless(const Request& request) {
        if (request.body.empty()) {
            return std::nullopt;
        }
        auto body = JsonObject::parse(request.body);
        if (!body.ok()) {
            return fail(400, body.error().code, body.error().message);
        }
        if (auto unknown = body.value().only({})) {
            return fail(400, unknown->code, unknown->message);
        }
        return std::nullopt;
    }

    /// The front of a mutating route that takes no body: the permission, an Idempotency-Key,
    /// and no body (or `{}`).
    static Step<Idempotency> bodyless_front(const auth::Principal& p, auth::Permission permission,
                                            const Request& request) {
        if (auto denied = require(p, permission)) {
            return *denied;
        }
        auto idem = idempotency_of(p, request);
        if (!idem.ok()) {
            return idem.error();
        }
        if (auto bad = bodyless(request)) {
            return *bad;
        }
        return std::move(idem).value();
    }

    static EventMetadata metadata_of(const auth::ActingFor& who, const Idempotency& idem,
                                     const Request& request) {
        EventMetadata m;
        m.actor = who.actor;
        m.on_behalf_of = who.on_behalf_of;
        m.idempotency_key = idem.key;
        m.trace_id = request.trace_id;
        m.correlation_id = request.trace_id;
        return m;
    }

    Step<Response> place_order(const auth::Principal& p, const Request& request) {
        if (auto denied = require(p, auth::Permission::place_order)) {
            return *denied;
        }
        auto who = acting(p, request);
        if (!who.ok()) {
            return who.error();
        }
        auto idem = idempotency_of(p, request);
        if (!idem.ok()) {
            return idem.error();
        }
        auto body = JsonObject::parse(request.body);
        if (!body.ok()) {
            return fail(400, body.error().code, body.error().message);
        }
        if (auto unknown = body.value().only({"lines", "note"})) {
            return fail(400, unknown->code, unknown->message);
        }
        auto lines = body.value().objects("lines", commands::limits::order_lines_max);
        auto note = body.value().optional_string("note", commands::limits::note_bytes_max);
        if (!lines.ok() || !note.ok()) {
            const auto& e = !lines.ok() ? lines.error() : note.error();
            return fail(400, e.code, e.message);
        }
        commands::PlaceOrder command;
        command.order_id = commands::CommandService::new_order_id();
        command.partner_id = who.value().partner_id;
        command.note = note.value().value_or("");
        for (const auto& line : lines.value()) {
            auto sku = line.string("sku", commands::limits::id_bytes_max);
            auto qty = line.integer("qty", 1, commands::limits::line_qty_max);
            if (auto unknown = line.only({"sku", "qty"})) {
                return fail(400, unknown->code, unknown->message);
            }
            if (!sku.ok() || !qty.ok()) {
                const auto& e = !sku.ok() ? sku.error() : qty.error();
                return fail(400, e.code, e.message);
            }
            command.lines.push_back({sku.value(), qty.value()});
        }
        auto answer = idempotent(
            idem.value(), command, metadata_of(who.value(), idem.value(), request),
            [&](const commands::Decision& decision, const model::CommerceState&) {
                if (!decision.ok()) {
                    return rejection_response(decision.error());
                }
                const auto& events = decision.value().at(0).events;
                auto placed = events::decode(events.at(0).type, 1, events.at(0).data);
                OE_INVARIANT(placed.ok(), "a decided OrderPlaced decodes");
                const auto& order = std::get<events::OrderPlaced>(placed.value());
                std::string status = "placed";
                std::string warehouse;
                if (events.at(1).type == "OrderCreditHeld") {
                    status = "credit_hold";
                } else {
                    auto routed = events::decode(events.at(1).type, 1, events.at(1).data);
                    warehouse = std::get<events::OrderRouted>(routed.value()).warehouse_id;
                }
                return json_response(201, order_view(order, status, warehouse, {}));
            });
        return answer;
    }

    /// orders_placed_total, credit_check_rejection_count_total and order_failures_total for
    /// every authenticated POST /api/orders (replays are not new outcomes and do not count).
    void count_order_outcome(const Response& response) {
        for (const auto& [name, value] : response.headers) {
            if (name == "Idempotent-Replayed") {
                return;
            }
        }
        if (response.status == 201) {
            const bool held = response.body.find(R"("status":"credit_hold")") != std::string::npos;
            deps.metrics
                .counter("orders_placed_total", "Orders placed, by the status they got",
                         {{"status", held ? "credit_hold" : "placed"}})
                .inc();
            if (held) {
                deps.metrics
                    .counter("credit_check_rejection_count_total",
                             "Orders put on credit hold by the credit check")
                    .inc();
            }
        } else if (response.status >= 400) {
            const auto at = response.body.find(R"("code":")");
            const std::string code =
                at == std::string::npos
                    ? "unknown"
                    : response.body.substr(at + 8, response.body.find('"', at + 8) - at - 8);
            deps.metrics
                .counter("order_failures_total", "Orders refused, by error code", {{"code", code}})
                .inc();
        }
    }

    Step<Response> cancel_order(const auth::Principal& p, std::string_view id,
                                const Request& request) {
        if (auto denied = require(p, auth::Permission::cancel_order)) {
            return *denied;
        }
        auth::ActingFor who{{}, p.subject, {}};
        std::vector<std::string> visible;
        if (p.role != auth::Role::admin) {
            auto acting_for = acting(p, request);
            if (!acting_for.ok()) {
                return acting_for.error();
            }
            who = acting_for.value();
            visible.push_back(who.partner_id);
        }
        auto idem = idempotency_of(p, request);
        if (!idem.ok()) {
            return idem.error();
        }
        if (auto bad = bodyless(request)) {
            return *bad;
        }
        if (!commands::is_valid_id(id)) {
            return not_found();
        }
        const std::string order_id(id);
        return idempotent(idem.value(), commands::CancelOrder{order_id, visible},
                          metadata_of(who, idem.value(), request),
                          [&](const commands::Decision& decision, const model::CommerceState& s) {
                              if (!decision.ok()) {
                                  return rejection_response(decision.error());
                              }
                              const auto* order = s.order(order_id);
                              return json_response(
                                  200, order_view(order->placed, "cancelled", order->warehouse_id,
                                                  order->erp_order_ref));
                          });
    }

    Step<Response> release_credit_hold(const auth::Principal& p, std::string_view id,
                                       const Request& request) {
        auto idem = bodyless_front(p, auth::Permission::release_credit_hold, request);
        if (!idem.ok()) {
            return idem.error();
        }
        if (!commands::is_valid_id(id)) {
            return not_found();
        }
        const std::string order_id(id);
        const auth::ActingFor who{{}, p.subject, {}};
        return idempotent(
            idem.value(), commands::ReleaseCreditHold{order_id, {}},
            metadata_of(who, idem.value(), request),
            [&](const commands::Decision& decision, const model::CommerceState& s) {
                if (!decision.ok()) {
                    return rejection_response(decision.error());
                }
                const auto* order = s.order(order_id);
                const auto& events = decision.value().at(0).events;
                auto routed = events::decode(events.at(1).type, 1, events.at(1).data);
                return json_response(
                    200, order_view(order->placed, "placed",
                                    std::get<events::OrderRouted>(routed.value()).warehouse_id,
                                    order->erp_order_ref));
            });
    }

    /// GET /api/events?after=N&limit=M: the raw log in global order (SPEC §6).
    Step<Response> event_feed(const auth::Principal& p, const Request& request) const {
        if (auto denied = require(p, auth::Permission::read_events)) {
            return *denied;
        }
        const auto params = query_of(request.target);
        std::int64_t after = 0;
        std::int64_t limit = 100;
        for (const auto& [key, value] : params) {
            std::int64_t* target = key == "after" ? &after : key == "limit" ? &limit : nullptr;
            if (target == nullptr) {
                return fail(400, "invalid_request", fmt::format("unknown parameter '{}'", key));
            }
            const auto [ptr, ec] =
                std::from_chars(value.data(), value.data() + value.size(), *target);
            if (ec != std::errc{} || ptr != value.data() + value.size()) {
                return fail(400, "invalid_request", fmt::format("{} must be an integer", key));
            }
        }
        if (after < 0 || limit < 1 || limit > 1000) {
            return fail(400, "invalid_request", "after must be >= 0 and limit 1..1000");
        }
        const auto events = deps.store.read_all(after, static_cast<std::size_t>(limit));
        std::string body = R"({"events":[)";
        for (std::size_t i = 0; i < events.size(); ++i) {
            const auto& e = events[i];
            if (i > 0) {
                body.push_back(',');
            }
            body += fmt::format(R"({{"global_position":{},"stream_id":{},"stream_version":{},)"
                                R"("type":{},"schema_version":{},"data":{},"metadata":{},)"
                                R"("recorded_at":{}}})",
                                e.global_position, text(e.stream_id), e.stream_version,
                                text(e.type), e.schema_version, e.data, e.metadata,
                                text(format_iso8601_us(e.recorded_at_us)));
        }
        body += fmt::format(R"(],"next_after":{}}})",
                            events.empty() ? after : events.back().global_position);
        return json_response(200, std::move(body));
    }

    static std::string entry_json(const app::ConfigEntry& e) {
        return fmt::format(
            R"({{"key":{},"value":{},"version":{},"updated_by":{},"updated_at":{}}})", text(e.key),
            e.value_json, e.version, text(e.updated_by), text(e.updated_at));
    }

    /// GET /api/admin/config and /api/admin/config/{key}: through the config cache.
    Step<Response> config_read(const auth::Principal& p, std::optional<std::string_view> key) {
        if (auto denied = require(p, auth::Permission::manage_config)) {
            return *denied;
        }
        if (key) {
            const auto entry = deps.config.get(*key);
            if (!entry) {
                return not_found();
            }
            return json_response(200, entry_json(*entry));
        }
        std::string body = "[";
        for (const auto& entry : deps.config.all()) {
            body += (body.size() > 1 ? "," : "") + entry_json(entry);
        }
        body.push_back(']');
        return json_response(200, std::move(body));
    }

    /// GET /api/admin/config/{key}/history: every change, oldest first, from the log itself.
    Step<Response> config_history(const auth::Principal& p, std::string_view key) const {
        if (auto denied = require(p, auth::Permission::view_config_history)) {
            return *denied;
        }
        const auto* spec = model::find_config_key(key);
        if (spec == nullptr) {
            return not_found();
        }
        const auto render = [spec](std::int64_t number) {
            std::string out;
            if (spec->type == model::ConfigType::integer) {
                return std::to_string(number);
            }
            append_json_string(out, model::format_decimal2(number));
            return out;
        };
        std::int64_t current = spec->default_value;
        std::int64_t version = 0;
        std::string body = "[";
        const auto tier = model::tier_of_key(key);
        for (const auto& e : deps.store.read_stream(events::config_stream())) {
            auto decoded = events::decode(e);
            if (!decoded.ok()) {
                continue;
            }
            std::optional<std::int64_t> value;
            std::int64_t changed_at_us = e.recorded_at_us;
            bool reset = false;
            bool tier_change = false;
            if (const auto* t = std::get_if<events::TierConfigChanged>(&decoded.value())) {
                tier_change = true;
                if (tier && t->tier == *tier) {
                    value = key == model::tier_discount_key(*tier)
                                ? t->discount_bps
                                : t->loyalty_multiplier_hundredths;
                    changed_at_us = t->changed_at_us;
                }
            } else if (const auto* c = std::get_if<events::SystemConfigChanged>(&decoded.value())) {
                if (c->key == key) {
                    value = model::numeric_value(*spec, c->value);
                    changed_at_us = c->changed_at_us;
                }
            } else if (const auto* r = std::get_if<events::SystemConfigReset>(&decoded.value())) {
                if (r->key == key) {
                    value = spec->default_value;
                    reset = true;
                    changed_at_us = r->changed_at_us;
                }
            }
            // Every change and reset of the key counts, as the write model counts versions;
            // a tier change names both of the tier's keys and counts only for one it changed.
            if (!value || (tier_change && *value == current)) {
                continue;
            }
            current = *value;
            ++version;
            std::optional<std::string> actor;
            try {
                const auto m = EventMetadata::from_json(e.metadata);
                if (!m.actor.empty()) {
                    actor = m.actor;
                }
            } catch (const std::invalid_argument&) {
                actor.reset();
            }
            body += fmt::format(
                R"({}{{"version":{},"value":{},"change":"{}","updated_by":{},"updated_at":{}}})",
                body.size() > 1 ? "," : "", version, render(current), reset ? "reset" : "set",
                text(actor), text(format_iso8601_us(changed_at_us)));
        }
        body.push_back(']');
        return json_response(200, std::move(body));
    }

    // ---- Admin: master data and tiers (SPEC §6). Each is one command under an
    // ---- Idempotency-Key; the answer echoes what is now true.

    using Answer = std::function<Response(const commands::Decision&, const model::CommerceState&)>;

    /// An answer that maps a rejection to its error and success to `status` with `body`.
    static Answer answer_with(int status,
                              std::function<std::string(const model::CommerceState&)> body) {
        return [status, body = std::move(body)](const commands::Decision& decision,
                                                const model::CommerceState& state) {
            if (!decision.ok()) {
                return rejection_response(decision.error());
            }
            return json_response(status, body(state));
        };
    }

    static std::string partner_json(std::string_view id, std::string_view name,
                                    std::string_view tier, std::string_view region,
                                    std::int64_t credit_limit) {
        return fmt::format(
            R"({{"partner_id":{},"name":{},"tier":{},"region":{},"credit_limit":{}}})",
            text(std::string(id)), text(std::string(name)), text(std::string(tier)),
            text(std::string(region)), credit_limit);
    }

    /// The shared front of every admin mutation: role, key, strict body with allowed fields.
    Step<std::pair<Idempotency, JsonObject>> admin_front(
        const auth::Principal& p, const Request& request, auth::Permission permission,
        std::initializer_list<std::string_view> fields) const {
        if (auto denied = require(p, permission)) {
            return *denied;
        }
        auto idem = idempotency_of(p, request);
        if (!idem.ok()) {
            return idem.error();
        }
        auto body = JsonObject::parse(request.body);
        if (!body.ok()) {
            return fail(400, body.error().code, body.error().message);
        }
        if (auto unknown = body.value().only(fields)) {
            return fail(400, unknown->code, unknown->message);
        }
        return std::pair<Idempotency, JsonObject>{std::move(idem).value(), std::move(body).value()};
    }

#define OE_TAKE(var, expr)                                                         \
    auto var##_result = (expr);                                                    \
    if (!var##_result.ok()) {                                                      \
        return fail(400, var##_result.error().code, var##_result.error().message); \
    }                                                                              \
    auto var = std::move(var##_result).value()

    Step<Response> register_partner(const auth::Principal& p, const Request& request) {
        auto front = admin_front(p, request, auth::Permission::manage_master_data,
                                 {"partner_id", "name", "tier", "region", "credit_limit"});
        if (!front.ok()) {
            return front.error();
        }
        const auto& [idem, body] = front.value();
        OE_TAKE(id, body.string("partner_id", 64));
        OE_TAKE(name, body.string("name", commands::limits::name_bytes_max));
        OE_TAKE(tier, body.string("tier", 16));
        OE_TAKE(region, body.string("region", 64));
        OE_TAKE(limit, body.integer("credit_limit", 0, commands::limits::money_idr_max));
        const auth::ActingFor who{{}, p.subject, {}};
        return idempotent(idem, commands::RegisterPartner{id, name, tier, region, limit},
                          metadata_of(who, idem, request),
                          answer_with(201, [=](const model::CommerceState&) {
                              return partner_json(id, name, tier, region, limit);
                          }));
    }

    Step<Response> update_partner(const auth::Principal& p, std::string_view id,
                                  const Request& request) {
        auto front = admin_front(p, request, auth::Permission::manage_master_data,
                                 {"partner_id", "name", "tier", "region", "credit_limit"});
        if (!front.ok()) {
            return front.error();
        }
        const auto& [idem, body] = front.value();
        OE_TAKE(same_id, body.optional_string("partner_id", 64));
        if (same_id && *same_id != id) {
            return fail(400, "invalid_request", "partner_id cannot be changed");
        }
        OE_TAKE(name, body.optional_string("name", commands::limits::name_bytes_max));
        OE_TAKE(tier, body.optional_string("tier", 16));
        OE_TAKE(region, body.optional_string("region", 64));
        OE_TAKE(limit, body.optional_integer("credit_limit", 0, commands::limits::money_idr_max));
        const std::string partner_id(id);
        const auth::ActingFor who{{}, p.subject, {}};
        return idempotent(
            idem, commands::UpdatePartner{partner_id, name, region, tier, limit},
            metadata_of(who, idem, request),
            [=](const commands::Decision& decision, const model::CommerceState& s) {
                if (!decision.ok()) {
                    if (decision.error().reason == commands::Rejected::unknown_partner) {
                        return error_response(404, "not_found", "no such partner");
                    }
                    return rejection_response(decision.error());
                }
                // The state is as before this change; the answer shows it after.
                const auto* before = s.partner(partner_id);
                return json_response(
                    200, partner_json(partner_id, name.value_or(before->name),
                                      tier.value_or(std::string(events::to_string(before->tier))),
                                      region.value_or(before->region),
                                      limit.value_or(before->credit_limit_idr)));
            });
    }

    Step<Response> register_product(const auth::Principal& p, const Request& request) {
        auto front = admin_front(p, request, auth::Permission::manage_master_data,
                                 {"sku", "name", "base_price", "buffer_qty"});
        if (!front.ok()) {
            return front.error();
        }
        const auto& [idem, body] = front.value();
        OE_TAKE(sku, body.string("sku", 64));
        OE_TAKE(name, body.string("name", commands::limits::name_bytes_max));
        OE_TAKE(price, body.integer("base_price", 0, 10'000'000'000));
        OE_TAKE(buffer, body.optional_integer("buffer_qty", 0, commands::limits::stock_qty_max));
        const std::int64_t buffer_qty = buffer.value_or(0);
        const auth::ActingFor who{{}, p.subject, {}};
        return idempotent(
            idem, commands::RegisterProduct{sku, name, price, buffer_qty},
            metadata_of(who, idem, request), answer_with(201, [=](const model::CommerceState&) {
                return fmt::format(R"({{"sku":{},"name":{},"base_price":{},"buffer_qty":{}}})",
                                   text(sku), text(name), price, buffer_qty);
            }));
    }

    /// A product's base price (ProductPriceChanged): orders placed before keep what they
    /// recorded; the price lists of every tier are repriced. The same price: 200, nothing
    /// appended.
    Step<Response> update_product(const auth::Principal& p, std::string_view sku,
                                  const Request& request) {
        auto front =
            admin_front(p, request, auth::Permission::manage_master_data, {"sku", "base_price"});
        if (!front.ok()) {
            return front.error();
        }
        const auto& [idem, body] = front.value();
        OE_TAKE(same_sku, body.optional_string("sku", 64));
        if (same_sku && *same_sku != sku) {
            return fail(400, "invalid_request", "sku cannot be changed");
        }
        OE_TAKE(price, body.integer("base_price", 0, 10'000'000'000));
        const std::string product_sku(sku);
        const auth::ActingFor who{{}, p.subject, {}};
        return idempotent(
            idem, commands::ChangeProductPrice{product_sku, price}, metadata_of(who, idem, request),
            [=](const commands::Decision& decision, const model::CommerceState& s) {
                if (!decision.ok()) {
                    if (decision.error().reason == commands::Rejected::unknown_sku) {
                        return error_response(404, "not_found", "no such product");
                    }
                    return rejection_response(decision.error());
                }
                // The state is as before this change; the answer shows it after.
                const auto* before = s.product(product_sku);
                return json_response(
                    200,
                    fmt::format(R"({{"sku":{},"name":{},"base_price":{},"buffer_qty":{}}})",
                                text(product_sku), text(before->name), price, before->buffer_qty));
            });
    }

    Step<Response> register_warehouse(const auth::Principal& p, const Request& request) {
        auto front = admin_front(p, request, auth::Permission::manage_master_data,
                                 {"warehouse_id", "sla_hours"});
        if (!front.ok()) {
            return front.error();
        }
        const auto& [idem, body] = front.value();
        OE_TAKE(id, body.string("warehouse_id", 64));
        OE_TAKE(sla, body.integer_map("sla_hours", 0, commands::limits::sla_hours_max, 1'000));
        commands::RegisterWarehouse command{id, {}};
        for (const auto& [region, hours] : sla) {
            command.sla_hours[region] = hours;
        }
        std::string sla_json = "{";
        for (const auto& [region, hours] : command.sla_hours) {
            sla_json +=
                (sla_json.size() > 1 ? "," : "") + text(region) + ":" + std::to_string(hours);
        }
        sla_json.push_back('}');
        const auth::ActingFor who{{}, p.subject, {}};
        return idempotent(idem, command, metadata_of(who, idem, request),
                          answer_with(201, [=](const model::CommerceState&) {
                              return fmt::format(R"({{"warehouse_id":{},"sla_hours":{}}})",
                                                 text(id), sla_json);
                          }));
    }

    Step<Response> change_tier(const auth::Principal& p, std::string_view tier,
                               const Request& request) {
        auto front = admin_front(p, request, auth::Permission::manage_config,
                                 {"discount_bps", "loyalty_multiplier"});
        if (!front.ok()) {
            return front.error();
        }
        const auto& [idem, body] = front.value();
        OE_TAKE(discount, body.integer("discount_bps", INT64_MIN, INT64_MAX));
        OE_TAKE(multiplier, body.string("loyalty_multiplier", 16));
        const std::string tier_name(tier);
        const auth::ActingFor who{{}, p.subject, {}};
        auto answer = idempotent(
            idem, commands::ChangeTierConfig{tier_name, discount, multiplier},
            metadata_of(who, idem, request), answer_with(200, [=](const model::CommerceState&) {
                return fmt::format(R"({{"tier":{},"discount_bps":{},"loyalty_multiplier":{}}})",
                                   text(tier_name), discount, text(multiplier));
            }));
        if (answer.ok() && answer.value().status == 200 && answer.value().headers.empty()) {
            if (const auto parsed = events::parse_tier(tier_name)) {
                // A change applies to the very next read: purge once the read model has it.
                deps.config.changed(
                    deps.store.head_position(),
                    {model::tier_discount_key(*parsed), model::tier_multiplier_key(*parsed)});
            }
        }
        return answer;
    }
#undef OE_TAKE

    /// PUT /api/admin/config/{key} {"value":…} and DELETE /api/admin/config/{key} (reset).
    Step<Response> config_write(const auth::Principal& p, std::string_view key_text,
                                const Request& request, bool reset) {
        if (auto denied = require(p, auth::Permission::manage_config)) {
            return *denied;
        }
        auto idem = idempotency_of(p, request);
        if (!idem.ok()) {
            return idem.error();
        }
        const std::string key(key_text);
        std::optional<events::ConfigValue> value;
        if (!reset) {
            auto body = JsonObject::parse(request.body);
            if (!body.ok()) {
                return fail(400, body.error().code, body.error().message);
            }
            if (auto unknown = body.value().only({"value"})) {
                return fail(400, unknown->code, unknown->message);
            }
            const auto raw = body.value().raw("value");
            if (!raw) {
                return fail(400, "invalid_request", "field 'value' is required");
            }
            // Ints are numbers, decimals two-decimal strings; the command checks which the key
            // wants and its range (422 invalid_config_value).
            auto number = body.value().optional_integer("value", INT64_MIN, INT64_MAX);
            auto text_value = body.value().optional_string("value", 32);
            if (number.ok() && number.value()) {
                value = *number.value();
            } else if (text_value.ok() && text_value.value()) {
                value = *text_value.value();
            } else {
                return fail(422, "invalid_config_value",
                            "value must be an integer or a string with two decimals");
            }
        } else if (auto bad = bodyless(request)) {
            return *bad;
        }
        const std::int64_t changed_at_us = now_us();
        const auth::ActingFor who{{}, p.subject, {}};
        const auto metadata = metadata_of(who, idem.value(), request);
        const Answer answer = [&](const commands::Decision& decision,
                                  const model::CommerceState& s) {
            if (!decision.ok()) {
                return rejection_response(decision.error());
            }
            const auto* spec = model::find_config_key(key);
            if (decision.value().empty()) {
                // Nothing changed (a tier key set to what it is): answer what is in force.
                const auto entry = deps.config.get(key);
                return json_response(200, entry ? entry_json(*entry) : "{}");
            }
            // The state is as before this change; the answer shows it after.
            std::int64_t number = spec->default_value;
            if (value) {
                number = *model::numeric_value(*spec, *value);
            }
            app::ConfigEntry entry;
            entry.key = key;
            entry.value_json = spec->type == model::ConfigType::integer
                                   ? std::to_string(number)
                                   : text(std::optional(model::format_decimal2(number)));
            entry.version = s.config_version(key) + 1;
            entry.updated_by = metadata.actor;
            entry.updated_at = format_iso8601_us(changed_at_us);
            return json_response(200, entry_json(entry));
        };
        Step<Response> response =
            reset
                ? idempotent(idem.value(), commands::ResetSystemConfig{key, changed_at_us},
                             metadata, answer)
                : idempotent(idem.value(), commands::ChangeSystemConfig{key, *value, changed_at_us},
                             metadata, answer);
        if (response.ok() && response.value().status == 200 && response.value().headers.empty()) {
            std::vector<std::string> keys{key};
            if (const auto tier = model::tier_of_key(key)) {
                keys = {model::tier_discount_key(*tier), model::tier_multiplier_key(*tier)};
            }
            deps.config.changed(deps.store.head_position(), keys);
        }
        return response;
    }

    // ---- ERP administration (SPEC §6, §7).

    Step<Response> erp_status(const auth::Principal& p) const {
        if (auto denied = require(p, auth::Permission::manage_erp)) {
            return *denied;
        }
        if (deps.erp == nullptr) {
            return fail(503, "unavailable", "the ERP worker is not running");
        }
        const auto s = deps.erp->status();
        std::string body = fmt::format(
            R"({{"worker":"{}","circuit_state":"{}","outbox_pending":{},"queue_depth":{},)"
            R"("checkpoint":{},"max_rps":"{}.{:02}","error_rate_5m":{:.4f},"delivered":{},)",
            s.leader ? "running" : "standby", s.circuit_state, s.outbox_pending, s.outbox_pending,
            s.checkpoint, s.max_rps_hundredths / 100, s.max_rps_hundredths % 100, s.error_rate,
            s.delivered);
        body += R"("last_sync":)";
        if (s.last_sync) {
            body += fmt::format(
                R"({{"at":"{}","ok":{},"stock_changed":{},"debt_changed":{},"refused":{},"error":)",
                format_iso8601_us(s.last_sync->at_us), s.last_sync->ok ? "true" : "false",
                s.last_sync->result.stock_changed ? "true" : "false",
                s.last_sync->result.debt_changed ? "true" : "false", s.last_sync->result.refused);
            if (s.last_sync->ok) {
                body += "null";
            } else {
                append_json_string(body, s.last_sync->error);
            }
            body += "}";
        } else {
            body += "null";
        }
        body += R"(,"dead_letters":[)";
        for (std::size_t i = 0; i < s.dead_letters.size(); ++i) {
            const auto& d = s.dead_letters[i];
            body += i == 0 ? "{" : ",{";
            body += fmt::format(R"("id":{},"order_id":)", d.id);
            append_json_string(body, d.order_id);
            body +=
                fmt::format(R"(,"action":"{}","attempts":{},"last_error":)", d.action, d.attempts);
            append_json_string(body, d.last_error);
            body += fmt::format(R"(,"parked_at":"{}","retry_requested":{}}})",
                                format_iso8601_us(d.parked_at_us),
                                d.retry_requested ? "true" : "false");
        }
        body += "]}";
        return json_response(200, std::move(body));
    }

    Step<Response> erp_retry(const auth::Principal& p, std::string_view id_text,
                             const Request& request) {
        auto idem = bodyless_front(p, auth::Permission::manage_erp, request);
        if (!idem.ok()) {
            return idem.error();
        }
        std::int64_t id = 0;
        const auto [ptr, ec] = std::from_chars(id_text.data(), id_text.data() + id_text.size(), id);
        if (ec != std::errc{} || ptr != id_text.data() + id_text.size() || id < 1) {
            return not_found();
        }
        const auth::ActingFor who{{}, p.subject, {}};
        return idempotent(
            idem.value(), commands::RetryErpDelivery{id}, metadata_of(who, idem.value(), request),
            [&](const commands::Decision& decision, const model::CommerceState&) {
                if (!decision.ok()) {
                    return rejection_response(decision.error());
                }
                return json_response(
                    202, fmt::format(R"({{"dead_letter_id":{},"status":"retry_requested"}})", id));
            });
    }

    Step<Response> erp_sync(const auth::Principal& p, const Request& request) {
        auto idem = bodyless_front(p, auth::Permission::manage_erp, request);
        if (!idem.ok()) {
            return idem.error();
        }
        if (deps.erp == nullptr) {
            return fail(503, "unavailable", "the ERP worker is not running");
        }
        const auth::ActingFor who{{}, p.subject, {}};
        return idempotent_action(
            idem.value(), metadata_of(who, idem.value(), request), [&]() -> Response {
                app::ErpSyncResult result;
                try {
                    result = deps.erp->sync_now(request.trace_id);
                } catch (const erp::ErpFailure& e) {
                    // Nothing was recorded: a retry with the same key runs the sync again.
                    return error_response(
                        503, "erp_unavailable",
                        fmt::format("the ERP could not be asked; the last synced stock and debt "
                                    "keep serving ({})",
                                    e.what()));
                }
                return json_response(200, fmt::format(R"({{"stock_changed":{},"debt_changed":{}}})",
                                                      result.stock_changed ? "true" : "false",
                                                      result.debt_changed ? "true" : "false"));
            });
    }

    /// Runs an action that is not a command under an Idempotency-Key: replays a stored answer,
    /// refuses a key in flight, otherwise runs it and stores a storable answer after it (the
    /// action's own effects are idempotent, so a crash between the two is harmless).
    Step<Response> idempotent_action(const Idempotency& idem, const EventMetadata& metadata,
                                     const std::function<Response()>& action) {
        {
            std::lock_guard lock(in_flight_mutex);
            if (!in_flight.insert(idem.stream_id).second) {
                return fail(409, "idempotency_key_in_flight",
                            "a request with this Idempotency-Key is still being processed");
            }
        }
        InFlight guard{*this, idem.stream_id};
        if (auto stored = replay(idem)) {
            return std::move(*stored);
        }
        auto response = action();
        if (storable(response.status)) {
            auto stored = deps.store.append({record(idem, response, metadata)});
            if (stored.ok()) {
                // After whatever the action appended (an ERP sync's stock and debt events).
                note_written(idem.writer, stored.value().last_position);
            } else {
                if (auto replayed = replay(idem)) {
                    return std::move(*replayed);  // Another instance answered this key first.
                }
            }
        }
        return response;
    }

    // ---- Finance: audit and point-in-time replay (SPEC §6, issue 6).

    static Failure finance_failure(const app::FinanceError& e) {
        return fail(e.http_status, e.code, e.message);
    }

    Step<Response> finance_audit(const auth::Principal& p, std::string_view order_id) const {
        if (auto denied = require(p, auth::Permission::audit_orders)) {
            return *denied;
        }
        auto report = app::audit_order(deps.store, order_id);
        if (!report.ok()) {
            return finance_failure(report.error());
        }
        return json_response(200, app::to_json(report.value()));
    }

    Step<Response> finance_replay(const auth::Principal& p, const Request& request) const {
        if (auto denied = require(p, auth::Permission::replay)) {
            return *denied;
        }
        std::optional<std::string> as_of_text;
        std::string model_text = "credit";
        std::optional<std::string> format_text;
        for (const auto& [key, value] : query_of(request.target)) {
            if (key == "as_of") {
                as_of_text = value;
            } else if (key == "model") {
                model_text = value;
            } else if (key == "format") {
                format_text = value;
            } else {
                return fail(400, "invalid_request",
                            fmt::format("unknown parameter '{}' (as_of, model, format)",
                                        key.substr(0, 64)));
            }
        }
        if (!as_of_text) {
            return fail(400, "invalid_request",
                        "as_of is required: an ISO 8601 UTC instant or a global position");
        }
        auto as_of = app::parse_as_of(*as_of_text);
        if (!as_of.ok()) {
            return finance_failure(as_of.error());
        }
        auto model = app::parse_replay_model(model_text);
        if (!model.ok()) {
            return finance_failure(model.error());
        }
        auto format = app::ReplayFormat::json;
        const auto accept = request.header("Accept");
        if (accept && accept->find("text/csv") != std::string_view::npos) {
            format = app::ReplayFormat::csv;
        }
        if (format_text) {
            auto parsed = app::parse_replay_format(*format_text);
            if (!parsed.ok()) {
                return finance_failure(parsed.error());
            }
            format = parsed.value();
        }
        auto table = app::replay(deps.store, as_of.value(), model.value(), now_us());
        if (!table.ok()) {
            return finance_failure(table.error());
        }
        if (format == app::ReplayFormat::json) {
            return json_response(200, app::to_json(table.value()));
        }
        Response r;
        r.status = 200;
        r.content_type = "text/csv; charset=utf-8";
        r.body = app::to_csv(table.value());
        r.headers.emplace_back(
            "Content-Disposition",
            fmt::format("attachment; filename=\"{}-at-{}.csv\"", app::to_string(model.value()),
                        table.value().as_of_position));
        return r;
    }

    // ---- Projections and their rebuild (SPEC §6, issue 6).

    Step<Response> projections_status(const auth::Principal& p) const {
        if (auto denied = require(p, auth::Permission::manage_projections)) {
            return *denied;
        }
        if (deps.projections == nullptr) {
            return fail(503, "unavailable", "the projector is not running");
        }
        const auto head = deps.store.head_position();
        const auto checkpoints = deps.projections->checkpoints();
        std::string body = fmt::format(R"({{"head":{},"projections":[)", head);
        bool first = true;
        for (const auto& name : projections::projection_names()) {
            const auto found = checkpoints.find(name);
            const auto position = found == checkpoints.end() ? 0 : found->second;
            body += fmt::format(R"({}{{"name":"{}","checkpoint":{},"lag_events":{}}})",
                                first ? "" : ",", name, position,
                                std::max<std::int64_t>(0, head - position));
            first = false;
        }
        body += R"(],"rebuild":)";
        const auto latest = deps.rebuilds != nullptr ? deps.rebuilds->latest() : std::nullopt;
        body += latest ? projections::to_json(*latest) : std::string("null");
        body += "}";
        return json_response(200, std::move(body));
    }

    Step<Response> rebuild_projection(const auth::Principal& p, std::string_view name,
                                      const Request& request) {
        auto idem = bodyless_front(p, auth::Permission::manage_projections, request);
        if (!idem.ok()) {
            return idem.error();
        }
        const auto known = projections::projection_names();
        std::vector<std::string> names;
        if (name != "all") {
            if (std::find(known.begin(), known.end(), name) == known.end()) {
                return fail(404, "not_found",
                            fmt::format("no projection '{}' (known: {}, or all)",
                                        name.substr(0, 64), fmt::join(known, ", ")));
            }
            names.emplace_back(name);
        }
        if (deps.rebuilds == nullptr) {
            return fail(503, "unavailable", "rebuilds are not available in this process");
        }
        const auth::ActingFor who{{}, p.subject, {}};
        return idempotent_action(
            idem.value(), metadata_of(who, idem.value(), request), [&]() -> Response {
                projections::RebuildStatus running;
                const auto started = deps.rebuilds->start(names, &running);
                if (!started) {
                    std::string body = R"({"error":{"code":"rebuild_running","message":)";
                    append_json_string(body, running.error.empty()
                                                 ? "a rebuild is running; wait for it to finish"
                                                 : running.error);
                    body += "},\"job\":" + projections::to_json(running) + "}";
                    return json_response(409, std::move(body));
                }
                log(LogLevel::info, "rebuild started",
                    {{"trace_id", request.trace_id}, {"job_id", started->job_id}});
                return json_response(202, projections::to_json(*started));
            });
    }

    Step<Response> route(const Request& request) {
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
            return order(p, parts[2], request);
        }
        const bool post = request.method == "POST";
        if (post && parts.size() == 2 && parts[1] == "orders") {
            auto placed = place_order(p, request);
            count_order_outcome(placed.ok() ? placed.value() : placed.error().response);
            return placed;
        }
        if (post && parts.size() == 4 && parts[1] == "orders" && parts[3] == "cancel") {
            return cancel_order(p, parts[2], request);
        }
        if (post && parts.size() == 5 && parts[1] == "admin" && parts[2] == "orders" &&
            parts[4] == "release-credit-hold") {
            return release_credit_hold(p, parts[3], request);
        }
        if (get && parts.size() == 2 && parts[1] == "events") {
            return event_feed(p, request);
        }
        if (get && parts.size() == 5 && parts[1] == "finance" && parts[2] == "orders" &&
            parts[4] == "audit") {
            return finance_audit(p, parts[3]);
        }
        if (get && parts.size() == 3 && parts[1] == "finance" && parts[2] == "replay") {
            return finance_replay(p, request);
        }
        if (parts.size() >= 3 && parts[1] == "admin" && parts[2] == "projections") {
            if (get && parts.size() == 3) {
                return projections_status(p);
            }
            if (post && parts.size() == 5 && parts[4] == "rebuild") {
                return rebuild_projection(p, parts[3], request);
            }
            return not_found();
        }
        if (parts.size() >= 3 && parts[1] == "admin" && parts[2] == "erp") {
            if (get && parts.size() == 3) {
                return erp_status(p);
            }
            if (post && parts.size() == 4 && parts[3] == "sync") {
                return erp_sync(p, request);
            }
            if (post && parts.size() == 6 && parts[3] == "dead-letters" && parts[5] == "retry") {
                return erp_retry(p, parts[4], request);
            }
            return not_found();
        }
        if (parts.size() >= 3 && parts[1] == "admin") {
            if (post && parts.size() == 3 && parts[2] == "partners") {
                return register_partner(p, request);
            }
            if (request.method == "PATCH" && parts.size() == 4 && parts[2] == "partners") {
                return update_partner(p, parts[3], request);
            }
            if (post && parts.size() == 3 && parts[2] == "products") {
                return register_product(p, request);
            }
            if (request.method == "PATCH" && parts.size() == 4 && parts[2] == "products") {
                return update_product(p, parts[3], request);
            }
            if (post && parts.size() == 3 && parts[2] == "warehouses") {
                return register_warehouse(p, request);
            }
            if (request.method == "PUT" && parts.size() == 4 && parts[2] == "tiers") {
                return change_tier(p, parts[3], request);
            }
            if ((request.method == "PUT" || request.method == "DELETE") && parts.size() == 4 &&
                parts[2] == "config") {
                return config_write(p, parts[3], request, request.method == "DELETE");
            }
        }
        if (get && parts.size() >= 3 && parts.size() <= 5 && parts[1] == "admin" &&
            parts[2] == "config") {
            if (parts.size() == 3) {
                return config_read(p, std::nullopt);
            }
            if (parts.size() == 4) {
                return config_read(p, parts[3]);
            }
            if (parts[4] == "history") {
                return config_history(p, parts[3]);
            }
        }
        return not_found();
    }
};

Api::Api(ApiDependencies dependencies) : impl_(std::make_unique<Impl>(std::move(dependencies))) {}

Api::~Api() = default;

Response Api::handle(const Request& request) {
    try {
        auto result = impl_->route(request);
        return result.ok() ? std::move(result).value() : result.error().response;
    } catch (const StoreError& e) {
        log(LogLevel::error, "store error",
            {{"path", std::string(request.path())}, {"error", e.what()}});
        return error_response(503, "unavailable", "the store is unavailable; retry");
    } catch (const std::exception& e) {
        // A bug or data no reader expects (a read-model row in no known form, say): logged with
        // what it was, so the 500 can be traced.
        log(LogLevel::error, "unexpected error",
            {{"path", std::string(request.path())}, {"error", e.what()}});
        return error_response(500, "internal", "internal error");
    }
}

}  // namespace oe::http
