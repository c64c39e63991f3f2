#include <oe/http/server.hpp>

#include <oe/http/api.hpp>
#include <oe/kernel/thread_name.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/version.hpp>

namespace oe::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = boost::asio::ip::tcp;

namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

std::string error_body(std::string_view code, std::string_view message) {
    return std::string(R"({"error":{"code":")") + std::string(code) + R"(","message":")" +
           std::string(message) + "\"}}";
}

}  // namespace

std::optional<std::string_view> Request::header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
        if (iequals(key, name)) {
            return std::string_view(value);
        }
    }
    return std::nullopt;
}

std::string_view Request::path() const {
    const std::string_view whole(target);
    return whole.substr(0, whole.find('?'));
}

class Session;

struct Server::Impl {
    // Order matters: sessions still queued in ioc are destroyed with it and touch the
    // counters, so those are declared (and outlive it) first.
    ServerOptions options;
    Handler handler;
    std::atomic<bool> draining{false};
    std::atomic<std::size_t> connections{0};
    std::mutex mutex;
    std::condition_variable drained;
    std::size_t in_flight = 0;
    bool stopped = false;
    net::io_context ioc;
    tcp::acceptor acceptor{ioc};
    std::vector<std::thread> threads;
    // Declared after ioc, so destroyed before it: a handler still queued here holds its
    // session, which the io_context's sockets must outlive.
    net::thread_pool handlers;

    Impl(ServerOptions o, Handler h)
        : options(std::move(o)),
          handler(std::move(h)),
          ioc(static_cast<int>(options.threads)),
          handlers(options.handler_threads) {}

    void do_accept();
    void request_started() {
        std::lock_guard lock(mutex);
        ++in_flight;
    }
    void request_finished() {
        std::lock_guard lock(mutex);
        --in_flight;
        drained.notify_all();
    }
};

/// One connection: read a request, hand it to the application, write the answer, repeat while
/// keep-alive holds (the Beast advanced-server session shape).
class Session : public std::enable_shared_from_this<Session> {
  public:
    Session(tcp::socket&& socket, Server::Impl& server)
        : stream_(std::move(socket)), server_(server) {}

    ~Session() { server_.connections.fetch_sub(1); }

    void run() {
        net::dispatch(stream_.get_executor(),
                      beast::bind_front_handler(&Session::do_read, shared_from_this()));
    }

  private:
    void do_read() {
        parser_.emplace();
        parser_->header_limit(static_cast<std::uint32_t>(server_.options.header_bytes_max));
        parser_->body_limit(server_.options.body_bytes_max);
        // One deadline covers headers and body, so a client that trickles bytes (or never
        // finishes its headers) is cut off; an idle keep-alive connection ends the same way.
        stream_.expires_after(first_request_ ? server_.options.header_timeout
                                             : std::max(server_.options.header_timeout,
                                                        server_.options.idle_timeout));
        bhttp::async_read_header(
            stream_, buffer_, *parser_,
            beast::bind_front_handler(&Session::on_header, shared_from_this()));
    }

    /// The headers are in. From here on the request counts as in flight: a graceful stop
    /// waits for it. Headers that arrive once the stop has begun get 503 and Connection: close.
    void on_header(beast::error_code ec, std::size_t) {
        first_request_ = false;
        if (ec) {
            return on_read_error(ec);
        }
        if (server_.draining.load()) {
            return reply_error(503, "shutting_down", "the server is shutting down");
        }
        server_.request_started();
        counted_ = true;
        if (parser_->is_done()) {
            return handle();
        }
        bhttp::async_read(stream_, buffer_, *parser_,
                          beast::bind_front_handler(&Session::on_read, shared_from_this()));
    }

    void on_read(beast::error_code ec, std::size_t) {
        if (ec) {
            return on_read_error(ec);
        }
        handle();
    }

    void on_read_error(beast::error_code ec) {
        if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout ||
            ec == net::error::operation_aborted || ec == net::error::connection_reset ||
            ec == net::error::eof) {
            return close();
        }
        if (ec == bhttp::error::body_limit) {
            return reply_error(413, "payload_too_large", "request body exceeds 1 MiB");
        }
        if (ec == bhttp::error::header_limit) {
            return reply_error(431, "header_too_large", "request headers are too large");
        }
        reply_error(400, "invalid_request", "malformed HTTP request");
    }

    void handle() {
        auto request = parser_->release();
        Request app_request;
        app_request.method = std::string(request.method_string());
        app_request.target = std::string(request.target());
        for (const auto& field : request) {
            app_request.headers.emplace_back(std::string(field.name_string()),
                                             std::string(field.value()));
        }
        app_request.body = std::move(request.body());
        // The handler may block on the database; it runs on the handler pool so the I/O
        // threads keep reading and writing other connections meanwhile. The work guard keeps
        // the I/O threads running until the answer is back on this connection's strand
        // (during a graceful stop they could otherwise run out of work and return first).
        net::post(server_.handlers,
                  [self = shared_from_this(), app_request = std::move(app_request),
                   io_work = net::make_work_guard(stream_.get_executor()),
                   keep_alive = request.keep_alive(), version = request.version()] {
                      self->respond(app_request, keep_alive, version);
                  });
    }

    /// On the handler pool: runs the application's handler, then writes its answer on the
    /// connection's strand.
    void respond(const Request& app_request, bool keep_alive, unsigned version) {
        thread_local const bool named = [] {
            name_this_thread("oe-http-handler");
            return true;
        }();
        (void)named;
        Response app_response;
        try {
            app_response = server_.handler(app_request);
        } catch (...) {
            app_response.status = 500;
            app_response.body = error_body("internal", "internal error");
        }
        net::post(
            stream_.get_executor(),
            [self = shared_from_this(), app_response = std::move(app_response), keep_alive,
             version]() mutable { self->write(std::move(app_response), keep_alive, version); });
    }

    void reply_error(int status, std::string_view code, std::string_view message) {
        Response response;
        response.status = status;
        response.body = error_body(code, message);
        write(std::move(response), false, 11);
    }

    void write(Response app_response, bool keep_alive, unsigned version) {
        keep_alive = keep_alive && !server_.draining.load();
        response_.emplace(static_cast<bhttp::status>(app_response.status), version);
        response_->set(bhttp::field::server, "orderengine");
        response_->set(bhttp::field::content_type, app_response.content_type);
        bool traced = false;
        for (auto& [name, value] : app_response.headers) {
            traced = traced || beast::iequals(name, "traceparent");
            response_->insert(name, value);
        }
        if (!traced) {
            // Answers the session makes itself (413, 431, malformed HTTP, shutting down, 500)
            // start a trace of their own: every response carries a traceparent (SPEC §6).
            response_->set("traceparent", trace_context(std::nullopt).second);
        }
        response_->body() = std::move(app_response.body);
        response_->keep_alive(keep_alive);
        response_->prepare_payload();
        stream_.expires_after(server_.options.header_timeout);
        bhttp::async_write(
            stream_, *response_,
            beast::bind_front_handler(&Session::on_write, shared_from_this(), keep_alive));
    }

    void on_write(bool keep_alive, beast::error_code ec, std::size_t) {
        response_.reset();
        if (counted_) {
            counted_ = false;
            server_.request_finished();
        }
        if (ec || !keep_alive) {
            return close();
        }
        do_read();
    }

    void close() {
        if (counted_) {
            // A counted request that ends without a response (its body never came) must not
            // hold up a graceful stop.
            counted_ = false;
            server_.request_finished();
        }
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
        stream_.close();
    }

    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    Server::Impl& server_;
    std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
    std::optional<bhttp::response<bhttp::string_body>> response_;
    bool first_request_ = true;
    bool counted_ = false;
};

void Server::Impl::do_accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
        if (ec) {
            if (ec == net::error::operation_aborted || !acceptor.is_open()) {
                return;
            }
            // Out of file descriptors or similar: back off instead of spinning on accept.
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        } else if (connections.fetch_add(1) >= options.connections_max) {
            connections.fetch_sub(1);
            beast::error_code ignored;
            socket.close(ignored);
        } else {
            std::make_shared<Session>(std::move(socket), *this)->run();
        }
        do_accept();
    });
}

Server::Server(ServerOptions options, Handler handler) {
    const std::size_t cores = std::max(1U, std::thread::hardware_concurrency());
    if (options.threads == 0) {
        options.threads = std::max<std::size_t>(2, cores);
    }
    if (options.handler_threads == 0) {
        options.handler_threads = std::max<std::size_t>(16, 8 * cores);
    }
    impl_ = std::make_unique<Impl>(std::move(options), std::move(handler));
}

Server::~Server() {
    stop();
}

void Server::start() {
    auto& impl = *impl_;
    const tcp::endpoint endpoint{net::ip::make_address(impl.options.address), impl.options.port};
    impl.acceptor.open(endpoint.protocol());
    impl.acceptor.set_option(net::socket_base::reuse_address(true));
    impl.acceptor.bind(endpoint);
    impl.acceptor.listen(net::socket_base::max_listen_connections);
    impl.do_accept();
    for (std::size_t i = 0; i < impl.options.threads; ++i) {
        impl.threads.emplace_back([&impl] {
            name_this_thread("oe-http-io");
            impl.ioc.run();
        });
    }
}

std::uint16_t Server::port() const {
    return impl_->acceptor.local_endpoint().port();
}

void Server::run_until_signal() {
    net::io_context signals_ioc;
    net::signal_set signals(signals_ioc, SIGINT, SIGTERM);
    signals.async_wait([](beast::error_code, int) {});
    signals_ioc.run();
    stop();
}

void Server::stop() {
    auto& impl = *impl_;
    {
        std::lock_guard lock(impl.mutex);
        if (impl.stopped) {
            return;
        }
        impl.stopped = true;
    }
    impl.draining.store(true);
    net::post(impl.acceptor.get_executor(), [&impl] {
        beast::error_code ignored;
        impl.acceptor.close(ignored);
    });
    {
        std::unique_lock lock(impl.mutex);
        impl.drained.wait_for(lock, impl.options.drain_timeout,
                              [&impl] { return impl.in_flight == 0; });
    }
    impl.ioc.stop();
    for (auto& thread : impl.threads) {
        if (thread.joinable()) {
            thread.join();
        }
    }
    // A handler still running past the drain deadline finishes; its answer is never written.
    impl.handlers.join();
}

}  // namespace oe::http
