#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <oe/kernel/config_cache.hpp>

namespace oe::redis {

/// Where REDIS_URL points.
struct RedisEndpoint {
    std::string host;      // A name, an IPv4 address, or an IPv6 address without brackets.
    int port = 6379;       // 6379 when the URL names none.
    int db = 0;            // The logical database (SELECT); 0 when the URL names none.
    std::string username;  // Empty: AUTH with the password alone (before Redis 6 ACLs).
    std::string password;  // Empty: no AUTH.

    /// "host:port/db" for messages; never the credentials.
    [[nodiscard]] std::string display() const;
};

/// Parses `redis://[[username]:password@]host[:port][/db]` (user and password percent-decoded,
/// an IPv6 host in brackets). Throws std::invalid_argument with a one-line reason that never
/// repeats the password.
[[nodiscard]] RedisEndpoint parse_redis_url(std::string_view url);

struct RedisCacheOptions {
    std::chrono::milliseconds connect_timeout{100};  // TCP connect, AUTH and SELECT each.
    std::chrono::milliseconds command_timeout{100};  // Each socket read or write of a command.
    // A connection tries to reconnect at most this often, and after a failed connect no
    // connection tries until it passes, so a dead Redis costs a mutex and a clock read per call.
    std::chrono::milliseconds reconnect_interval{1000};
    std::size_t connections_max = 4;          // Calls beyond this many at once wait for one.
    std::size_t value_bytes_max = 1U << 20U;  // A larger cached value is CacheBadValue.
};

/// The config cache in Redis (SPEC §5), shared by every instance. Keys are stored as
/// `oe:config:<key>`. Connects lazily, so the process starts while Redis is down; every failure
/// is a CacheError, which ReadThroughConfig turns into a read from the database. Thread-safe.
class RedisConfigCache final : public ConfigCache {
  public:
    /// Prefix of every key this cache writes.
    static constexpr std::string_view key_prefix = "oe:config:";

    /// Throws std::invalid_argument when `url` is malformed (see parse_redis_url); does not
    /// connect.
    explicit RedisConfigCache(std::string_view url, RedisCacheOptions options = {});
    ~RedisConfigCache() override;

    /// GET; nullopt when Redis holds no value for the key.
    [[nodiscard]] std::optional<std::string> get(std::string_view key) override;
    /// SET key value EX ttl.
    void put(std::string_view key, std::string_view value, std::chrono::seconds ttl) override;
    /// DEL key.
    void purge(std::string_view key) override;
    [[nodiscard]] std::string_view name() const override { return "redis"; }

    /// Where this cache connects, without credentials.
    [[nodiscard]] const RedisEndpoint& endpoint() const noexcept;

  private:
    struct Pool;
    std::unique_ptr<Pool> pool_;
};

}  // namespace oe::redis
