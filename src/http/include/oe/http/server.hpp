#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace oe::http {

/// A request as the application sees it: protocol details (parsing, limits, keep-alive,
/// timeouts) stay in the session. No Beast types cross this header.
struct Request {
    std::string method;
    std::string target;  // Path and query, as sent.
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::string trace_id;  // W3C trace id of this request (set by the telemetry layer).

    /// The first header with this name (case-insensitive), if any.
    [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const;
    /// The path without the query string.
    [[nodiscard]] std::string_view path() const;
};

struct Response {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
};

/// Turns a request into a response. Runs on a server thread; may block on the database.
/// An exception escaping it becomes a 500 with the JSON error body.
using Handler = std::function<Response(const Request&)>;

struct ServerOptions {
    std::string address = "0.0.0.0";
    std::uint16_t port = 8080;  // 0 picks a free port.
    std::size_t threads = 0;    // I/O threads (accept, read, write). 0: one per core, at least 2.
    // Threads that run the handler. Handlers block (a PlaceOrder waits for its group commit,
    // a read-model query for the database), so there are more of these than cores: that many
    // requests can wait at once, and a commit batches that many decisions. 0: 8 per core,
    // at least 16.
    std::size_t handler_threads = 0;
    std::size_t body_bytes_max = 1024 * 1024;          // Larger bodies get 413.
    std::size_t header_bytes_max = 16 * 1024;          // Larger headers get 431.
    std::size_t connections_max = 1024;                // Further connections are refused.
    std::chrono::milliseconds header_timeout{10'000};  // To read a request's headers.
    std::chrono::milliseconds idle_timeout{60'000};    // Keep-alive between requests.
    std::chrono::milliseconds drain_timeout{10'000};   // In-flight requests at shutdown.
};

/// An HTTP/1.1 server on Boost.Beast: fixed thread pools (I/O sized to the cores, handlers
/// sized for blocking work), keep-alive, explicit limits, and a graceful stop (close the
/// listener, finish requests whose headers were read, answer later requests on open
/// connections with 503 and Connection: close).
class Server {
  public:
    Server(ServerOptions options, Handler handler);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// Binds and starts accepting on the pool; returns once the port is open.
    void start();
    /// The bound port (after start()).
    [[nodiscard]] std::uint16_t port() const;
    /// Blocks until SIGINT or SIGTERM, then stops gracefully. Returns once drained.
    void run_until_signal();
    /// Stops gracefully from any thread; returns once drained or drain_timeout passed.
    void stop();

    /// Opaque: Beast and Asio stay in server.cpp.
    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace oe::http
