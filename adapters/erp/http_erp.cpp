#include <oe/erp/http_erp.hpp>

#include <atomic>
#include <mutex>
#include <vector>

#include <fmt/format.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <oe/erp/wire.hpp>

namespace oe::erp {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr std::size_t response_bytes_max = 8 * 1024 * 1024;

[[noreturn]] void fail(ErpFailure::Kind kind, const std::string& what) {
    throw ErpFailure(kind, what);
}

/// One keep-alive connection and the io_context its calls run on (one call at a time).
struct Connection {
    net::io_context io;
    beast::tcp_stream stream{io};
    beast::flat_buffer buffer;
    bool open = false;
};

/// A reused connection turned out closed before it carried anything: try a new one.
struct StaleConnection {};

struct Answer {
    unsigned status = 0;
    std::string body;
};

class HttpErp final : public ErpPort {
  public:
    HttpErp(ErpEndpoint endpoint, std::chrono::milliseconds timeout)
        : endpoint_(std::move(endpoint)), timeout_(timeout) {}

    StockReport pull_stock(const std::string& trace_id) override {
        return wire::read_stock(ok_body(call(http::verb::get, wire::stock_path, {}, trace_id)));
    }

    DebtReport pull_debt(const std::string& trace_id) override {
        return wire::read_receivables(
            ok_body(call(http::verb::get, wire::receivables_path, {}, trace_id)));
    }

    SalesOrderAnswer create_sales_order(const SalesOrder& order,
                                        const std::string& trace_id) override {
        return wire::read_sales_order_answer(
            ok_body(call(http::verb::post, wire::sales_orders_path,
                         wire::sales_order_request(order), trace_id)));
    }

    void cancel_sales_order(const std::string& order_id, const std::string& trace_id) override {
        const std::string target = fmt::format("{}/{}/cancel", wire::sales_orders_path, order_id);
        wire::read_cancel_answer(ok_body(call(http::verb::post, target, "{}", trace_id)));
    }

  private:
    static std::string ok_body(Answer answer) {
        if (answer.status == 502 || answer.status == 503 || answer.status == 504) {
            fail(ErpFailure::Kind::unavailable, fmt::format("ERP answered {}", answer.status));
        }
        if (answer.status != 200) {
            fail(ErpFailure::Kind::failed,
                 fmt::format("ERP answered {}: {}", answer.status, answer.body.substr(0, 120)));
        }
        return std::move(answer.body);
    }

    std::unique_ptr<Connection> take() {
        std::lock_guard lock(mutex_);
        if (idle_.empty()) {
            return std::make_unique<Connection>();
        }
        auto conn = std::move(idle_.back());
        idle_.pop_back();
        return conn;
    }

    void give_back(std::unique_ptr<Connection> conn) {
        std::lock_guard lock(mutex_);
        if (idle_.size() < 4) {
            idle_.push_back(std::move(conn));
        }
    }

    /// Runs one asynchronous operation to completion under the call's deadline.
    template <typename Start>
    static beast::error_code run(Connection& conn, Start&& start) {
        beast::error_code result;
        start([&result](beast::error_code ec, auto&&...) { result = ec; });
        conn.io.restart();
        conn.io.run();
        return result;
    }

    void connect(Connection& conn) {
        tcp::resolver resolver(conn.io);
        beast::error_code ec;
        const auto endpoints = resolver.resolve(endpoint_.host, std::to_string(endpoint_.port), ec);
        if (ec) {
            fail(ErpFailure::Kind::unavailable,
                 fmt::format("cannot resolve ERP host {}: {}", endpoint_.host, ec.message()));
        }
        conn.stream.expires_after(timeout_);
        ec = run(conn, [&](auto handler) { conn.stream.async_connect(endpoints, handler); });
        if (ec) {
            fail(ErpFailure::Kind::unavailable,
                 fmt::format("cannot connect to the ERP at {}:{}: {}", endpoint_.host,
                             endpoint_.port,
                             ec == beast::error::timeout ? "timed out" : ec.message()));
        }
        conn.open = true;
        conn.buffer.clear();
    }

    Answer call(http::verb verb, std::string_view path, std::string body,
                const std::string& trace_id) {
        auto conn = take();
        try {
            auto answer = exchange(*conn, verb, path, body, trace_id);
            give_back(std::move(conn));
            return answer;
        } catch (const StaleConnection&) {
        }
        // A kept-alive connection the ERP had closed while idle: once more on a new one.
        auto fresh = std::make_unique<Connection>();
        auto answer = exchange(*fresh, verb, path, body, trace_id);
        give_back(std::move(fresh));
        return answer;
    }

    Answer exchange(Connection& conn, http::verb verb, std::string_view path,
                    const std::string& body, const std::string& trace_id) {
        const bool reused = conn.open;
        if (!conn.open) {
            connect(conn);
        }
        http::request<http::string_body> request{verb, endpoint_.base_path + std::string(path), 11};
        request.set(http::field::host, endpoint_.host);
        request.set(http::field::user_agent, "orderengine-erp-acl");
        request.set(http::field::accept, "application/json");
        if (trace_id.size() == 32) {
            request.set("traceparent", fmt::format("00-{}-{:016x}-01", trace_id, span_++ + 1));
        }
        request.keep_alive(true);
        if (!body.empty()) {
            request.set(http::field::content_type, "application/json");
            request.body() = body;
        }
        request.prepare_payload();

        conn.stream.expires_after(timeout_);
        auto ec =
            run(conn, [&](auto handler) { http::async_write(conn.stream, request, handler); });
        if (ec && reused && ec != beast::error::timeout) {
            close(conn);
            throw StaleConnection{};
        }
        if (ec) {
            close(conn);
            fail(ec == beast::error::timeout ? ErpFailure::Kind::unavailable
                                             : ErpFailure::Kind::failed,
                 fmt::format("sending to the ERP failed: {}", ec.message()));
        }
        http::response_parser<http::string_body> parser;
        parser.body_limit(response_bytes_max);
        ec = run(conn, [&](auto handler) {
            http::async_read(conn.stream, conn.buffer, parser, handler);
        });
        if (ec && reused && !parser.got_some() &&
            (ec == http::error::end_of_stream || ec == net::error::connection_reset)) {
            close(conn);
            throw StaleConnection{};
        }
        if (ec) {
            close(conn);
            if (ec == beast::error::timeout) {
                fail(ErpFailure::Kind::unavailable,
                     fmt::format("the ERP did not answer within {} ms", timeout_.count()));
            }
            fail(ErpFailure::Kind::failed,
                 fmt::format("reading the ERP's answer failed: {}", ec.message()));
        }
        auto response = parser.release();
        if (!response.keep_alive()) {
            close(conn);
        }
        return Answer{response.result_int(), std::move(response.body())};
    }

    static void close(Connection& conn) {
        beast::error_code ignored;
        conn.stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
        conn.stream.close();
        conn.open = false;
        conn.buffer.clear();
    }

    ErpEndpoint endpoint_;
    std::chrono::milliseconds timeout_;
    std::mutex mutex_;
    std::vector<std::unique_ptr<Connection>> idle_;
    std::atomic<std::uint64_t> span_{0};
};

}  // namespace

std::optional<ErpEndpoint> parse_erp_url(const std::string& url) {
    constexpr std::string_view scheme = "http://";
    if (url.rfind(scheme, 0) != 0) {
        return std::nullopt;
    }
    std::string rest = url.substr(scheme.size());
    ErpEndpoint endpoint;
    const auto slash = rest.find('/');
    if (slash != std::string::npos) {
        endpoint.base_path = rest.substr(slash);
        rest.resize(slash);
        while (!endpoint.base_path.empty() && endpoint.base_path.back() == '/') {
            endpoint.base_path.pop_back();
        }
    }
    const auto colon = rest.rfind(':');
    if (colon != std::string::npos) {
        const std::string port = rest.substr(colon + 1);
        if (port.empty() || port.size() > 5 ||
            port.find_first_not_of("0123456789") != std::string::npos) {
            return std::nullopt;
        }
        const int value = std::stoi(port);
        if (value < 1 || value > 65535) {
            return std::nullopt;
        }
        endpoint.port = static_cast<std::uint16_t>(value);
        rest.resize(colon);
    }
    if (rest.empty() || rest.find_first_of("@ ?#") != std::string::npos) {
        return std::nullopt;
    }
    endpoint.host = rest;
    return endpoint;
}

std::unique_ptr<ErpPort> make_http_erp(ErpEndpoint endpoint, std::chrono::milliseconds timeout) {
    return std::make_unique<HttpErp>(std::move(endpoint), timeout);
}

}  // namespace oe::erp
