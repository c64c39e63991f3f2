#include <oe/cache_redis/redis_config_cache.hpp>

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <charconv>
#include <initializer_list>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace oe::redis {

namespace {

using SteadyClock = std::chrono::steady_clock;

// Redis error texts are short; a broken or hostile server could send megabytes.
constexpr std::size_t server_message_bytes_max = 200;

// SET key value EX seconds is the longest command sent.
constexpr std::size_t command_args_max = 5;

constexpr std::string_view scheme = "redis://";

[[noreturn]] void bad_url(std::string_view why) {
    throw std::invalid_argument(
        fmt::format("REDIS_URL must look like redis://[:password@]host[:port][/db]: {}", why));
}

int hex_digit(char c) {
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
}

std::string percent_decode(std::string_view text, std::string_view what) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out.push_back(text[i]);
            continue;
        }
        const int high = i + 2 < text.size() ? hex_digit(text[i + 1]) : -1;
        const int low = i + 2 < text.size() ? hex_digit(text[i + 2]) : -1;
        if (high < 0 || low < 0) {
            bad_url(fmt::format("the {} has a '%' that is not followed by two hex digits", what));
        }
        out.push_back(static_cast<char>(high * 16 + low));
        i += 2;
    }
    return out;
}

int parse_number(std::string_view text, int min, int max, std::string_view what) {
    int value = 0;
    const auto* const end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || text.front() == '-' || ec != std::errc{} || ptr != end || value < min ||
        value > max) {
        bad_url(fmt::format("the {} must be a whole number from {} to {}", what, min, max));
    }
    return value;
}

bool is_host_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '-' || c == '_';
}

void parse_credentials(std::string_view userinfo, RedisEndpoint& endpoint) {
    const auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
        bad_url("credentials must be ':password@' or 'user:password@'");
    }
    endpoint.username = percent_decode(userinfo.substr(0, colon), "user name");
    endpoint.password = percent_decode(userinfo.substr(colon + 1), "password");
    if (endpoint.password.empty()) {
        bad_url("the password before '@' is empty");
    }
}

void parse_host_port(std::string_view hostport, RedisEndpoint& endpoint) {
    std::string_view after_host;  // Empty or ":port".
    if (!hostport.empty() && hostport.front() == '[') {
        const auto close = hostport.find(']');
        if (close == std::string_view::npos) {
            bad_url("an IPv6 host has '[' but no ']'");
        }
        endpoint.host = hostport.substr(1, close - 1);
        after_host = hostport.substr(close + 1);
        const bool ipv6_chars = std::all_of(endpoint.host.begin(), endpoint.host.end(), [](char c) {
            return hex_digit(c) >= 0 || c == ':' || c == '.';
        });
        if (endpoint.host.find(':') == std::string::npos || !ipv6_chars) {
            bad_url("the text in brackets is not an IPv6 address");
        }
    } else {
        const auto colon = std::min(hostport.find(':'), hostport.size());
        endpoint.host = hostport.substr(0, colon);
        after_host = hostport.substr(colon);
        if (after_host.find(':', 1) != std::string_view::npos) {
            bad_url("an IPv6 host must be written in brackets, e.g. redis://[::1]:6379");
        }
        if (endpoint.host.empty()) {
            bad_url("the host is missing");
        }
        if (!std::all_of(endpoint.host.begin(), endpoint.host.end(), is_host_char)) {
            bad_url("the host may contain only letters, digits, '.', '-' and '_'");
        }
    }
    if (after_host.empty()) {
        return;
    }
    if (after_host.front() != ':') {
        bad_url("only ':port' may follow the host");
    }
    endpoint.port = parse_number(after_host.substr(1), 1, 65535, "port");
}

timeval to_timeval(std::chrono::milliseconds duration) {
    // A zero SO_RCVTIMEO means "wait forever"; the shortest real timeout is 1 ms.
    const auto ms = std::max<std::chrono::milliseconds::rep>(duration.count(), 1);
    timeval tv{};
    tv.tv_sec = static_cast<decltype(tv.tv_sec)>(ms / 1000);
    tv.tv_usec = static_cast<decltype(tv.tv_usec)>((ms % 1000) * 1000);
    return tv;
}

struct ContextDeleter {
    void operator()(redisContext* context) const noexcept { redisFree(context); }
};
using ContextPtr = std::unique_ptr<redisContext, ContextDeleter>;

struct ReplyDeleter {
    void operator()(redisReply* reply) const noexcept { freeReplyObject(reply); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

// hiredis writes with write(2), which raises SIGPIPE when Redis has closed the connection, and
// the default action of SIGPIPE ends the process. Like libpq, block it in this thread for the
// call and swallow one that the call raised, leaving the process's signal handling alone.
class SigpipeGuard {
  public:
    SigpipeGuard() {
        sigemptyset(&pipe_);
        sigaddset(&pipe_, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_, &previous_);
        sigset_t pending;
        sigemptyset(&pending);
        sigpending(&pending);
        was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    }
    SigpipeGuard(const SigpipeGuard&) = delete;
    SigpipeGuard& operator=(const SigpipeGuard&) = delete;
    ~SigpipeGuard() {
        if (!was_pending_) {
            sigset_t pending;
            sigemptyset(&pending);
            sigpending(&pending);
            if (sigismember(&pending, SIGPIPE) == 1) {
                const timespec no_wait{};
                sigtimedwait(&pipe_, nullptr, &no_wait);
            }
        }
        pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
    }

  private:
    sigset_t pipe_{};
    sigset_t previous_{};
    bool was_pending_ = false;
};

std::string_view reply_text(const redisReply& reply) {
    if (reply.str == nullptr) {
        return {};
    }
    return {reply.str, reply.len};
}

std::string_view reply_type_name(int type) {
    switch (type) {
        case REDIS_REPLY_STRING:
            return "bulk string";
        case REDIS_REPLY_ARRAY:
            return "array";
        case REDIS_REPLY_INTEGER:
            return "integer";
        case REDIS_REPLY_NIL:
            return "nil";
        case REDIS_REPLY_STATUS:
            return "status";
        case REDIS_REPLY_ERROR:
            return "error";
        default:
            return "unknown reply type";
    }
}

// What a reply was, for a message: the server's own text (bounded) for errors and statuses.
std::string describe(const redisReply& reply) {
    if (reply.type == REDIS_REPLY_ERROR || reply.type == REDIS_REPLY_STATUS) {
        const auto text = reply_text(reply).substr(0, server_message_bytes_max);
        return fmt::format("{} '{}'", reply_type_name(reply.type), text);
    }
    return std::string(reply_type_name(reply.type));
}

bool is_ok_status(const redisReply& reply) {
    return reply.type == REDIS_REPLY_STATUS && reply_text(reply) == "OK";
}

// One command on a connected context. On an I/O or protocol failure hiredis leaves the context
// unusable; the caller must drop it.
ReplyPtr run(redisContext& context, std::initializer_list<std::string_view> args,
             std::string_view where) {
    std::array<const char*, command_args_max> argv{};
    std::array<std::size_t, command_args_max> lengths{};
    std::size_t argc = 0;
    for (const auto arg : args) {
        argv.at(argc) = arg.data();
        lengths.at(argc) = arg.size();
        ++argc;
    }
    void* raw = nullptr;
    {
        const SigpipeGuard guard;
        raw = redisCommandArgv(&context, static_cast<int>(argc), argv.data(), lengths.data());
    }
    if (raw == nullptr) {
        const std::string_view why = context.err != 0 ? context.errstr : "no reply";
        throw CacheError(fmt::format("redis {}: {} failed: {}", where, *args.begin(), why));
    }
    return ReplyPtr(static_cast<redisReply*>(raw));
}

struct Connection {
    std::mutex mutex;
    ContextPtr context;  // Null while disconnected.
    std::optional<SteadyClock::time_point> last_connect_attempt;
};

}  // namespace

std::string RedisEndpoint::display() const {
    const bool ipv6 = host.find(':') != std::string::npos;
    return ipv6 ? fmt::format("[{}]:{}/{}", host, port, db)
                : fmt::format("{}:{}/{}", host, port, db);
}

RedisEndpoint parse_redis_url(std::string_view url) {
    if (url.starts_with("rediss://")) {
        bad_url("TLS (rediss://) is not supported by hiredis 0.14");
    }
    if (!url.starts_with(scheme)) {
        bad_url("it does not start with redis://");
    }
    auto rest = url.substr(scheme.size());
    if (rest.find_first_of("?#") != std::string_view::npos) {
        bad_url("query parameters and fragments are not supported");
    }
    const auto slash = rest.find('/');
    const auto authority = rest.substr(0, slash);
    const auto path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);

    RedisEndpoint endpoint;
    const auto at = authority.rfind('@');
    if (at != std::string_view::npos) {
        parse_credentials(authority.substr(0, at), endpoint);
    }
    parse_host_port(at == std::string_view::npos ? authority : authority.substr(at + 1), endpoint);
    if (!path.empty()) {
        endpoint.db = parse_number(path, 0, 1'000'000, "database number after '/'");
    }
    return endpoint;
}

struct RedisConfigCache::Pool {
    RedisEndpoint endpoint;
    RedisCacheOptions options;
    std::string where;
    std::vector<std::unique_ptr<Connection>> connections;
    std::atomic<std::size_t> next{0};

    // After a failed connect no connection tries again before this instant (steady clock
    // ticks), so a dead Redis costs one connect attempt per interval, not one per connection.
    std::atomic<SteadyClock::rep> down_until{0};
    std::mutex last_error_mutex;
    std::string last_error;

    [[nodiscard]] ReplyPtr command(std::initializer_list<std::string_view> args);

  private:
    std::unique_lock<std::mutex> acquire(Connection*& connection);
    void ensure_connected(Connection& connection);
    [[nodiscard]] ContextPtr connect() const;
    void remember_failure(const std::string& error);
    [[nodiscard]] std::string fast_failure(std::string_view why);
};

std::unique_lock<std::mutex> RedisConfigCache::Pool::acquire(Connection*& connection) {
    const std::size_t count = connections.size();
    const std::size_t start = next.fetch_add(1, std::memory_order_relaxed) % count;
    for (std::size_t i = 0; i < count; ++i) {
        Connection& candidate = *connections[(start + i) % count];
        std::unique_lock lock(candidate.mutex, std::try_to_lock);
        if (lock.owns_lock()) {
            connection = &candidate;
            return lock;
        }
    }
    connection = connections[start].get();
    return std::unique_lock(connection->mutex);
}

ReplyPtr RedisConfigCache::Pool::command(std::initializer_list<std::string_view> args) {
    Connection* connection = nullptr;
    const auto lock = acquire(connection);
    ensure_connected(*connection);
    try {
        return run(*connection->context, args, where);
    } catch (const CacheError&) {
        connection->context.reset();
        throw;
    }
}

void RedisConfigCache::Pool::ensure_connected(Connection& connection) {
    if (connection.context) {
        return;
    }
    const auto now = SteadyClock::now();
    if (now.time_since_epoch().count() < down_until.load()) {
        throw CacheError(fast_failure("the last connect failed"));
    }
    if (connection.last_connect_attempt &&
        now - *connection.last_connect_attempt < options.reconnect_interval) {
        throw CacheError(fast_failure("this connection failed since its last connect"));
    }
    connection.last_connect_attempt = now;
    try {
        connection.context = connect();
    } catch (const CacheError& e) {
        down_until.store((now + options.reconnect_interval).time_since_epoch().count());
        remember_failure(e.what());
        throw;
    }
}

ContextPtr RedisConfigCache::Pool::connect() const {
    const timeval connect_tv = to_timeval(options.connect_timeout);
    ContextPtr context(redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port, connect_tv));
    if (!context) {
        throw CacheError(fmt::format("redis {}: connect: out of memory", where));
    }
    if (context->err != 0) {
        throw CacheError(fmt::format("redis {}: connect: {}", where, context->errstr));
    }
    // Until the command timeout is set below, the connect timeout also bounds AUTH and SELECT.
    if (redisSetTimeout(context.get(), connect_tv) != REDIS_OK) {
        throw CacheError(fmt::format("redis {}: setting the socket timeout failed", where));
    }
    // Best effort: keepalive only finds a silently dead peer sooner.
    redisEnableKeepAlive(context.get());
    if (!endpoint.password.empty()) {
        const auto reply =
            endpoint.username.empty()
                ? run(*context, {"AUTH", endpoint.password}, where)
                : run(*context, {"AUTH", endpoint.username, endpoint.password}, where);
        if (!is_ok_status(*reply)) {
            throw CacheError(fmt::format("redis {}: AUTH answered {}", where, describe(*reply)));
        }
    }
    if (endpoint.db != 0) {
        const auto db = std::to_string(endpoint.db);
        const auto reply = run(*context, {"SELECT", db}, where);
        if (!is_ok_status(*reply)) {
            throw CacheError(fmt::format("redis {}: SELECT answered {}", where, describe(*reply)));
        }
    }
    if (redisSetTimeout(context.get(), to_timeval(options.command_timeout)) != REDIS_OK) {
        throw CacheError(fmt::format("redis {}: setting the socket timeout failed", where));
    }
    return context;
}

void RedisConfigCache::Pool::remember_failure(const std::string& error) {
    std::lock_guard lock(last_error_mutex);
    last_error = error;
}

std::string RedisConfigCache::Pool::fast_failure(std::string_view why) {
    std::lock_guard lock(last_error_mutex);
    return fmt::format("redis {}: not reconnecting within {} ms because {} (last error: {})", where,
                       options.reconnect_interval.count(), why,
                       last_error.empty() ? "an I/O failure" : last_error);
}

RedisConfigCache::RedisConfigCache(std::string_view url, RedisCacheOptions options)
    : pool_(std::make_unique<Pool>()) {
    pool_->endpoint = parse_redis_url(url);
    pool_->options = options;
    pool_->where = pool_->endpoint.display();
    const std::size_t count = std::max<std::size_t>(options.connections_max, 1);
    pool_->connections.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        pool_->connections.push_back(std::make_unique<Connection>());
    }
}

RedisConfigCache::~RedisConfigCache() = default;

const RedisEndpoint& RedisConfigCache::endpoint() const noexcept {
    return pool_->endpoint;
}

std::optional<std::string> RedisConfigCache::get(std::string_view key) {
    const std::string full_key = fmt::format("{}{}", key_prefix, key);
    const auto reply = pool_->command({"GET", full_key});
    switch (reply->type) {
        case REDIS_REPLY_NIL:
            return std::nullopt;
        case REDIS_REPLY_STRING:
            if (reply->len > pool_->options.value_bytes_max) {
                throw CacheBadValue(fmt::format("redis {}: GET {}: a value of {} bytes exceeds {}",
                                                pool_->where, full_key, reply->len,
                                                pool_->options.value_bytes_max));
            }
            return std::string(reply_text(*reply));
        case REDIS_REPLY_ERROR:
            // WRONGTYPE: the key holds a list, a hash, ...; the server works, the key is bad.
            if (reply_text(*reply).starts_with("WRONGTYPE")) {
                throw CacheBadValue(fmt::format("redis {}: GET {} answered {}", pool_->where,
                                                full_key, describe(*reply)));
            }
            break;
        default:
            break;
    }
    throw CacheError(
        fmt::format("redis {}: GET {} answered {}", pool_->where, full_key, describe(*reply)));
}

void RedisConfigCache::put(std::string_view key, std::string_view value, std::chrono::seconds ttl) {
    if (ttl.count() <= 0) {
        throw std::invalid_argument("config cache TTL must be at least 1 s");
    }
    const std::string full_key = fmt::format("{}{}", key_prefix, key);
    const std::string seconds = std::to_string(ttl.count());
    const auto reply = pool_->command({"SET", full_key, value, "EX", seconds});
    if (!is_ok_status(*reply)) {
        throw CacheError(
            fmt::format("redis {}: SET {} answered {}", pool_->where, full_key, describe(*reply)));
    }
}

void RedisConfigCache::purge(std::string_view key) {
    const std::string full_key = fmt::format("{}{}", key_prefix, key);
    const auto reply = pool_->command({"DEL", full_key});
    if (reply->type != REDIS_REPLY_INTEGER) {
        throw CacheError(
            fmt::format("redis {}: DEL {} answered {}", pool_->where, full_key, describe(*reply)));
    }
}

}  // namespace oe::redis
