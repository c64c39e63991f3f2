#include <oe/erp/fake_erp.hpp>

#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <oe/erp/wire.hpp>
#include <oe/kernel/json_text.hpp>
#include <oe/kernel/log.hpp>
#include <oe/kernel/thread_name.hpp>
#include <oe/kernel/time.hpp>

namespace oe::erp {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace json = boost::json;
using tcp = net::ip::tcp;

constexpr std::size_t request_bytes_max = 4 * 1024 * 1024;
constexpr std::size_t connections_max = 256;

struct Reply {
    unsigned status = 200;
    std::string body;
    std::string content_type = "application/json";
    bool reset = false;
};

Reply json_reply(unsigned status, const json::value& value) {
    return Reply{status, json::serialize(value), "application/json", false};
}

Reply sim_error(unsigned status, std::string_view message) {
    return json_reply(
        status,
        {{"error",
          {{"code", status == 404 ? "not_found" : "invalid_request"}, {"message", message}}}});
}

Reply erp_error(unsigned status, std::string_view message) {
    return json_reply(status, {{"result", "ERROR"}, {"message", message}});
}

std::vector<std::string_view> split_path(std::string_view path) {
    std::vector<std::string_view> parts;
    while (!path.empty()) {
        if (path.front() == '/') {
            path.remove_prefix(1);
            continue;
        }
        const auto end = path.find('/');
        parts.push_back(path.substr(0, end));
        path.remove_prefix(end == std::string_view::npos ? path.size() : end);
    }
    return parts;
}

std::optional<json::value> parse(std::string_view body) {
    json::parse_options options;
    options.max_depth = 16;
    boost::system::error_code ec;
    auto value = json::parse(body, ec, {}, options);
    if (ec) {
        return std::nullopt;
    }
    return value;
}

std::optional<std::int64_t> as_integer(const json::value* value) {
    if (value == nullptr || !value->is_int64()) {
        return std::nullopt;
    }
    return value->get_int64();
}

std::optional<double> as_number(const json::value* value) {
    if (value == nullptr) {
        return std::nullopt;
    }
    if (value->is_double()) {
        return value->get_double();
    }
    if (value->is_int64()) {
        return static_cast<double>(value->get_int64());
    }
    return std::nullopt;
}

std::string trace_id_of(const http::request<http::string_body>& request) {
    const auto header = request["traceparent"];
    if (header.size() >= 55) {
        return std::string(header.substr(3, 32));
    }
    return {};
}

}  // namespace

struct FakeErp::Impl {
    struct SalesOrderRecord {
        std::string erp_ref;
        std::string order_id;
        std::string partner_id;
        std::string warehouse_id;
        json::array lines;  // [{"sku","qty","unit_price"}]
        std::int64_t total = 0;
        std::string status;  // "open", "cancelled", "rejected"
        std::int64_t create_calls = 0;
        std::int64_t created_at_us = 0;
    };

    FakeErpOptions options;
    net::io_context io;
    tcp::acceptor acceptor{io};
    std::thread accept_thread;

    std::mutex mutex;  // Everything below, and the stop flag.
    std::condition_variable stopped_cv;
    bool stopping = false;
    FakeErpMode mode;
    std::mt19937_64 random;
    std::map<std::pair<std::string, std::string>, std::int64_t> stock;
    std::map<std::string, std::int64_t> debt;
    std::map<std::string, SalesOrderRecord> orders;  // By our order id.
    std::int64_t next_so = 1;

    std::mutex connections_mutex;
    std::condition_variable connections_cv;
    std::set<int> sockets;  // Native handles of open connections.
    std::size_t active = 0;

    explicit Impl(FakeErpOptions o) : options(std::move(o)), mode(options.mode) {
        random.seed(options.random_seed != 0 ? options.random_seed
                                             : static_cast<std::uint64_t>(now_us()));
        if (!options.seed_json.empty()) {
            load_seed(options.seed_json);
        }
    }

    void load_seed(const std::string& text) {
        const auto value = parse(text);
        if (!value || !value->is_object()) {
            throw std::invalid_argument("the seed is not a JSON object");
        }
        const auto& seed = value->get_object();
        for (const auto& [key, item] : seed) {
            if (key != "stock" && key != "debt") {
                throw std::invalid_argument(
                    fmt::format("the seed has an unknown field '{}'", std::string_view(key)));
            }
        }
        if (const auto* rows = seed.if_contains("stock")) {
            if (auto error = put_stock(*rows)) {
                throw std::invalid_argument("seed stock: " + *error);
            }
        }
        if (const auto* debts = seed.if_contains("debt")) {
            if (!debts->is_object()) {
                throw std::invalid_argument("seed debt must be an object {\"P-1\": N}");
            }
            for (const auto& [partner, amount] : debts->get_object()) {
                const auto n = as_integer(&amount);
                if (!n) {
                    throw std::invalid_argument("seed debt amounts must be integers");
                }
                debt[std::string(partner)] = *n;
            }
        }
    }

    /// PUT /_sim/stock: replaces the rows given. Returns an error message or nothing.
    std::optional<std::string> put_stock(const json::value& rows) {
        if (!rows.is_array()) {
            return "the body must be an array of {\"sku\",\"warehouse_id\",\"on_hand\"}";
        }
        std::vector<std::pair<std::pair<std::string, std::string>, std::int64_t>> parsed;
        for (const auto& row : rows.get_array()) {
            const auto* object = row.if_object();
            const auto* sku = object ? object->if_contains("sku") : nullptr;
            const auto* warehouse = object ? object->if_contains("warehouse_id") : nullptr;
            const auto on_hand = object ? as_integer(object->if_contains("on_hand")) : std::nullopt;
            if (sku == nullptr || !sku->is_string() || warehouse == nullptr ||
                !warehouse->is_string() || !on_hand || object->size() != 3) {
                return "each row must be exactly {\"sku\":text,\"warehouse_id\":text,"
                       "\"on_hand\":integer}";
            }
            parsed.push_back(
                {{std::string(sku->get_string()), std::string(warehouse->get_string())}, *on_hand});
        }
        for (auto& [key, value] : parsed) {
            stock[key] = value;
        }
        return std::nullopt;
    }

    // ---- The /_sim control surface.

    Reply sim(const http::request<http::string_body>& request,
              const std::vector<std::string_view>& parts) {
        const auto method = request.method();
        std::lock_guard lock(mutex);
        if (parts.size() == 2 && parts[1] == "stock") {
            if (method == http::verb::put) {
                const auto body = parse(request.body());
                if (!body) {
                    return sim_error(400, "the body is not JSON");
                }
                if (auto error = put_stock(*body)) {
                    return sim_error(400, *error);
                }
                return json_reply(200, {{"rows", body->get_array().size()}});
            }
            if (method == http::verb::get) {
                return json_reply(200, stock_rows("sku", "warehouse_id"));
            }
        }
        if (parts.size() == 3 && parts[1] == "debt" && method == http::verb::put) {
            const auto body = parse(request.body());
            const auto* object = body ? body->if_object() : nullptr;
            const auto amount =
                object ? as_integer(object->if_contains("outstanding")) : std::nullopt;
            if (!amount || object->size() != 1) {
                return sim_error(400, "the body must be {\"outstanding\": integer}");
            }
            debt[std::string(parts[2])] = *amount;
            return json_reply(200, {{"partner_id", parts[2]}, {"outstanding", *amount}});
        }
        if (parts.size() == 2 && parts[1] == "debt" && method == http::verb::get) {
            json::object all;
            for (const auto& [partner, amount] : debt) {
                all[partner] = amount;
            }
            return json_reply(200, all);
        }
        if (parts.size() == 2 && parts[1] == "sales-orders" && method == http::verb::get) {
            json::array all;
            std::vector<const SalesOrderRecord*> sorted;
            for (const auto& [id, order] : orders) {
                sorted.push_back(&order);
            }
            std::sort(sorted.begin(), sorted.end(),
                      [](auto* a, auto* b) { return a->erp_ref < b->erp_ref; });
            for (const auto* order : sorted) {
                all.push_back({{"erp_ref", order->erp_ref},
                               {"order_id", order->order_id},
                               {"partner_id", order->partner_id},
                               {"warehouse_id", order->warehouse_id},
                               {"status", order->status},
                               {"lines", order->lines},
                               {"total", order->total},
                               {"create_calls", order->create_calls},
                               {"created_at", format_iso8601_us(order->created_at_us)}});
            }
            return json_reply(200, all);
        }
        if (parts.size() == 2 && parts[1] == "mode") {
            if (method == http::verb::put) {
                return put_mode(request.body());
            }
            if (method == http::verb::get) {
                return mode_reply();
            }
        }
        return sim_error(404, "no such /_sim route");
    }

    /// The mode as JSON, rates written the way they were given ("0.3", not Boost.JSON's
    /// "3E-1").
    Reply mode_reply() const {
        std::string fault = "null";
        if (!mode.fault.empty()) {
            fault.clear();
            append_json_string(fault, mode.fault);
        }
        return Reply{200,
                     fmt::format(R"({{"fail_rate":{},"latency_ms":{},"down":{},"reject_rate":{},)"
                                 R"("fault":{},"hang_ms":{}}})",
                                 mode.fail_rate, mode.latency_ms, mode.down, mode.reject_rate,
                                 fault, mode.hang_ms),
                     "application/json", false};
    }

    Reply put_mode(std::string_view text) {
        const auto body = parse(text);
        if (!body || !body->is_object()) {
            return sim_error(400, "the body must be a JSON object");
        }
        FakeErpMode next;  // PUT replaces: a field left out takes its default.
        for (const auto& [key, value] : body->get_object()) {
            if (key == "fail_rate" || key == "reject_rate") {
                const auto rate = as_number(&value);
                if (!rate || *rate < 0 || *rate > 1) {
                    return sim_error(
                        400, fmt::format("{} must be a number 0..1", std::string_view(key)));
                }
                (key == "fail_rate" ? next.fail_rate : next.reject_rate) = *rate;
            } else if (key == "latency_ms" || key == "hang_ms") {
                const auto ms = as_integer(&value);
                if (!ms || *ms < 0 || *ms > 600'000) {
                    return sim_error(
                        400, fmt::format("{} must be an integer 0..600000", std::string_view(key)));
                }
                (key == "latency_ms" ? next.latency_ms : next.hang_ms) = *ms;
            } else if (key == "down") {
                if (!value.is_bool()) {
                    return sim_error(400, "down must be true or false");
                }
                next.down = value.get_bool();
            } else if (key == "fault") {
                static const std::set<std::string_view> faults = {"garbage", "partial_json",
                                                                  "error_body", "hang", "reset"};
                if (value.is_null()) {
                    next.fault.clear();
                } else if (value.is_string() && faults.count(value.get_string()) == 1) {
                    next.fault = std::string(value.get_string());
                } else {
                    return sim_error(400,
                                     "fault must be null or one of garbage, partial_json, "
                                     "error_body, hang, reset");
                }
            } else {
                return sim_error(400, fmt::format("unknown field '{}'", std::string_view(key)));
            }
        }
        mode = next;
        return mode_reply();
    }

    json::array stock_rows(std::string_view sku_key, std::string_view warehouse_key) const {
        json::array rows;
        for (const auto& [key, on_hand] : stock) {
            rows.push_back(
                {{sku_key, key.first}, {warehouse_key, key.second}, {"on_hand", on_hand}});
        }
        return rows;
    }

    // ---- The ERP itself.

    /// Sleeps up to `ms`, waking early when the server stops.
    void pause(std::int64_t ms) {
        std::unique_lock lock(mutex);
        stopped_cv.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stopping; });
    }

    Reply erp(const http::request<http::string_body>& request,
              const std::vector<std::string_view>& parts) {
        FakeErpMode now;
        bool fails = false;
        {
            std::lock_guard lock(mutex);
            now = mode;
            fails = std::uniform_real_distribution<double>(0, 1)(random) < mode.fail_rate;
        }
        if (now.latency_ms > 0) {
            pause(now.latency_ms);
        }
        if (now.down) {
            return erp_error(503, "service unavailable");
        }
        if (now.fault == "hang") {
            pause(now.hang_ms);
        } else if (now.fault == "reset") {
            return Reply{0, {}, {}, true};
        } else if (now.fault == "garbage") {
            return Reply{200, "<html><body>Gateway Timeout at ERP-BRIDGE-02</body></html>",
                         "text/html", false};
        } else if (now.fault == "partial_json") {
            return Reply{200, R"({"result":"OK","so_number":"SO-0)", "application/json", false};
        } else if (now.fault == "error_body") {
            return erp_error(200, "ORA-00060: deadlock detected while waiting for resource");
        }
        if (fails) {
            return erp_error(500, "internal error");
        }
        const auto method = request.method();
        // parts: erp v1 <resource> ...
        if (parts.size() == 3 && parts[2] == "stock" && method == http::verb::get) {
            std::lock_guard lock(mutex);
            return json_reply(200, {{"result", "OK"},
                                    {"as_of", format_iso8601_us(now_us())},
                                    {"rows", stock_rows("item", "warehouse")}});
        }
        if (parts.size() == 3 && parts[2] == "receivables" && method == http::verb::get) {
            std::lock_guard lock(mutex);
            json::array rows;
            for (const auto& [partner, amount] : debt) {
                rows.push_back({{"customer", partner}, {"outstanding", amount}});
            }
            return json_reply(
                200, {{"result", "OK"}, {"as_of", format_iso8601_us(now_us())}, {"rows", rows}});
        }
        if (parts.size() == 3 && parts[2] == "sales-orders" && method == http::verb::post) {
            return create(request.body());
        }
        if (parts.size() == 5 && parts[2] == "sales-orders" && parts[4] == "cancel" &&
            method == http::verb::post) {
            return cancel(std::string(parts[3]));
        }
        return erp_error(404, "no such ERP resource");
    }

    Reply create(std::string_view text) {
        const auto body = parse(text);
        const auto* object = body ? body->if_object() : nullptr;
        const auto* ref = object ? object->if_contains("order_ref") : nullptr;
        const auto* customer = object ? object->if_contains("customer") : nullptr;
        const auto* warehouse = object ? object->if_contains("warehouse") : nullptr;
        const auto* lines = object ? object->if_contains("lines") : nullptr;
        const auto total = object ? as_integer(object->if_contains("total")) : std::nullopt;
        if (ref == nullptr || !ref->is_string() || ref->get_string().empty() ||
            customer == nullptr || !customer->is_string() || warehouse == nullptr ||
            !warehouse->is_string() || lines == nullptr || !lines->is_array() || !total) {
            return erp_error(400, "malformed sales order");
        }
        SalesOrderRecord record;
        record.order_id = std::string(ref->get_string());
        record.partner_id = std::string(customer->get_string());
        record.warehouse_id = std::string(warehouse->get_string());
        record.total = *total;
        for (const auto& line : lines->get_array()) {
            const auto* l = line.if_object();
            const auto* item = l ? l->if_contains("item") : nullptr;
            const auto qty = l ? as_integer(l->if_contains("qty")) : std::nullopt;
            const auto price = l ? as_integer(l->if_contains("unit_price")) : std::nullopt;
            if (item == nullptr || !item->is_string() || !qty || *qty <= 0 || !price) {
                return erp_error(400, "malformed sales order line");
            }
            record.lines.push_back(
                {{"sku", item->get_string()}, {"qty", *qty}, {"unit_price", *price}});
        }
        std::lock_guard lock(mutex);
        const auto existing = orders.find(record.order_id);
        if (existing != orders.end()) {
            // Idempotent by our order id: the same answer, nothing created.
            auto& order = existing->second;
            ++order.create_calls;
            if (order.status == "rejected") {
                return json_reply(200, {{"result", "REJECTED"}, {"reason", "credit block at ERP"}});
            }
            return json_reply(
                200, {{"result", "OK"}, {"so_number", order.erp_ref}, {"duplicate", true}});
        }
        record.erp_ref = fmt::format("SO-{:06}", next_so++);
        record.create_calls = 1;
        record.created_at_us = now_us();
        if (std::uniform_real_distribution<double>(0, 1)(random) < mode.reject_rate) {
            record.status = "rejected";
            orders.emplace(record.order_id, record);
            return json_reply(200, {{"result", "REJECTED"}, {"reason", "credit block at ERP"}});
        }
        record.status = "open";
        book(record, -1);
        const auto so = record.erp_ref;
        orders.emplace(record.order_id, std::move(record));
        return json_reply(200, {{"result", "OK"}, {"so_number", so}, {"duplicate", false}});
    }

    /// Takes an order's quantities off stock and adds its total to debt (sign -1), or puts
    /// them back (+1).
    void book(const SalesOrderRecord& order, int sign) {
        for (const auto& line : order.lines) {
            const auto& l = line.get_object();
            const auto found =
                stock.find({std::string(l.at("sku").get_string()), order.warehouse_id});
            if (found != stock.end()) {
                found->second =
                    std::max<std::int64_t>(0, found->second + sign * l.at("qty").get_int64());
            }
        }
        debt[order.partner_id] -= sign * order.total;
    }

    Reply cancel(const std::string& order_id) {
        std::lock_guard lock(mutex);
        const auto found = orders.find(order_id);
        if (found == orders.end()) {
            return json_reply(200, {{"result", "NOT_FOUND"}});
        }
        auto& order = found->second;
        if (order.status == "open") {
            order.status = "cancelled";
            book(order, +1);
        }
        return json_reply(200, {{"result", "OK"}, {"so_number", order.erp_ref}});
    }

    Reply handle(const http::request<http::string_body>& request) {
        const std::string_view target(request.target().data(), request.target().size());
        const auto path = target.substr(0, target.find('?'));
        const auto parts = split_path(path);
        if (!parts.empty() && parts[0] == "_sim") {
            return sim(request, parts);
        }
        if (parts.size() >= 3 && parts[0] == "erp" && parts[1] == "v1") {
            auto reply = erp(request, parts);
            log(LogLevel::info, "fake erp call",
                {{"trace_id", trace_id_of(request)},
                 {"method", std::string(request.method_string())},
                 {"path", std::string(path)},
                 {"status", reply.reset ? std::string("reset") : std::to_string(reply.status)}});
            return reply;
        }
        return erp_error(404, "no such resource");
    }

    // ---- Connections: one thread each (a simulator, not a production server).

    void serve(tcp::socket socket) {
        const int native = socket.native_handle();
        beast::flat_buffer buffer;
        for (;;) {
            http::request_parser<http::string_body> parser;
            parser.body_limit(request_bytes_max);
            beast::error_code ec;
            http::read(socket, buffer, parser, ec);
            if (ec) {
                break;
            }
            auto request = parser.release();
            Reply reply;
            try {
                reply = handle(request);
            } catch (const std::exception& e) {
                reply = erp_error(500, e.what());
            }
            if (reply.reset) {
                socket.set_option(net::socket_base::linger(true, 0), ec);
                break;
            }
            http::response<http::string_body> response{static_cast<http::status>(reply.status),
                                                       request.version()};
            response.set(http::field::server, "alfa-erp-simulator");
            response.set(http::field::content_type, reply.content_type);
            response.keep_alive(request.keep_alive());
            response.body() = std::move(reply.body);
            response.prepare_payload();
            http::write(socket, response, ec);
            if (ec || !response.keep_alive()) {
                break;
            }
        }
        beast::error_code ignored;
        socket.close(ignored);
        std::lock_guard lock(connections_mutex);
        sockets.erase(native);
        --active;
        connections_cv.notify_all();
    }

    void accept_loop() {
        for (;;) {
            tcp::socket socket(io);
            beast::error_code ec;
            acceptor.accept(socket, ec);
            {
                std::lock_guard lock(mutex);
                if (stopping) {
                    return;
                }
            }
            if (ec) {
                continue;
            }
            std::lock_guard lock(connections_mutex);
            if (active >= connections_max) {
                continue;  // The socket closes as it goes out of scope.
            }
            ++active;
            sockets.insert(socket.native_handle());
            std::thread(&Impl::serve, this, std::move(socket)).detach();
        }
    }
};

FakeErp::FakeErp(FakeErpOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

FakeErp::~FakeErp() {
    stop();
}

void FakeErp::start() {
    const auto address = net::ip::make_address(impl_->options.address);
    const tcp::endpoint endpoint(address, impl_->options.port);
    impl_->acceptor.open(endpoint.protocol());
    impl_->acceptor.set_option(net::socket_base::reuse_address(true));
    beast::error_code ec;
    impl_->acceptor.bind(endpoint, ec);
    if (ec) {
        throw std::runtime_error(fmt::format("cannot listen on {}:{}: {}", impl_->options.address,
                                             impl_->options.port, ec.message()));
    }
    impl_->acceptor.listen(net::socket_base::max_listen_connections);
    impl_->accept_thread = std::thread([this] {
        name_this_thread("oe-fake-erp");
        impl_->accept_loop();
    });
}

std::uint16_t FakeErp::port() const {
    return impl_->acceptor.local_endpoint().port();
}

void FakeErp::stop() {
    {
        std::lock_guard lock(impl_->mutex);
        if (impl_->stopping) {
            return;
        }
        impl_->stopping = true;
    }
    impl_->stopped_cv.notify_all();
    if (impl_->acceptor.is_open()) {
        ::shutdown(impl_->acceptor.native_handle(), SHUT_RDWR);  // Wakes the blocked accept.
    }
    if (impl_->accept_thread.joinable()) {
        impl_->accept_thread.join();
    }
    std::unique_lock lock(impl_->connections_mutex);
    for (const int handle : impl_->sockets) {
        ::shutdown(handle, SHUT_RDWR);
    }
    impl_->connections_cv.wait(lock, [&] { return impl_->active == 0; });
    beast::error_code ignored;
    impl_->acceptor.close(ignored);
}

void FakeErp::set_stock(const std::string& sku, const std::string& warehouse_id,
                        std::int64_t on_hand) {
    std::lock_guard lock(impl_->mutex);
    impl_->stock[{sku, warehouse_id}] = on_hand;
}

void FakeErp::set_debt(const std::string& partner_id, std::int64_t outstanding) {
    std::lock_guard lock(impl_->mutex);
    impl_->debt[partner_id] = outstanding;
}

}  // namespace oe::erp
