#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <oe/cache_redis/redis_config_cache.hpp>
#include <oe/kernel/config_cache.hpp>

using namespace oe;
using namespace std::chrono_literals;
using oe::redis::RedisCacheOptions;
using oe::redis::RedisConfigCache;

namespace {

// The Redis that scripts/with-test-services started.
std::string redis_url() {
    const char* url = std::getenv("OE_TEST_REDIS_URL");
    if (url == nullptr || *url == '\0') {
        FAIL(
            "OE_TEST_REDIS_URL is not set; run this test under scripts/with-test-services, e.g. "
            "scripts/with-test-services build/tests/config_cache_redis_test");
    }
    return url;
}

// Keys unique to this run, so runs sharing one Redis never see each other's values.
std::string unique_key(std::string_view name) {
    static std::atomic<int> counter{0};
    return fmt::format("test.{}.{}.{}", ::getpid(), counter++, name);
}

// A raw hiredis connection for looking behind the cache's back.
class RawRedis {
  public:
    explicit RawRedis(int db = 0) {
        const auto endpoint = redis::parse_redis_url(redis_url());
        context_.reset(redisConnect(endpoint.host.c_str(), endpoint.port));
        REQUIRE(context_ != nullptr);
        REQUIRE_MESSAGE(context_->err == 0, context_->errstr);
        if (db != 0) {
            REQUIRE(command({"SELECT", std::to_string(db)}) == "OK");
        }
    }

    /// The reply as text: strings and statuses as they are, integers in decimal, nil as "(nil)",
    /// errors prefixed "(error) ".
    std::string command(std::initializer_list<std::string_view> args) {
        std::vector<const char*> argv;
        std::vector<std::size_t> lengths;
        for (const auto arg : args) {
            argv.push_back(arg.data());
            lengths.push_back(arg.size());
        }
        std::unique_ptr<redisReply, void (*)(void*)> reply(
            static_cast<redisReply*>(redisCommandArgv(context_.get(), static_cast<int>(argv.size()),
                                                      argv.data(), lengths.data())),
            freeReplyObject);
        REQUIRE(reply != nullptr);
        switch (reply->type) {
            case REDIS_REPLY_STRING:
            case REDIS_REPLY_STATUS:
                return std::string(reply->str, reply->len);
            case REDIS_REPLY_INTEGER:
                return std::to_string(reply->integer);
            case REDIS_REPLY_NIL:
                return "(nil)";
            case REDIS_REPLY_ERROR:
                return "(error) " + std::string(reply->str, reply->len);
            default:
                return "(array)";
        }
    }

    std::string full_key(std::string_view key) {
        return std::string(RedisConfigCache::key_prefix) + std::string(key);
    }

  private:
    struct Free {
        void operator()(redisContext* c) const { redisFree(c); }
    };
    std::unique_ptr<redisContext, Free> context_;
};

// A TCP socket bound to 127.0.0.1 on a port the kernel picked; connecting to it is refused
// until listen() is called.
class LocalSocket {
  public:
    LocalSocket() : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
        REQUIRE(fd_ >= 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        socklen_t length = sizeof address;
        REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0);
        port_ = ntohs(address.sin_port);
    }
    LocalSocket(const LocalSocket&) = delete;
    LocalSocket& operator=(const LocalSocket&) = delete;
    ~LocalSocket() { ::close(fd_); }

    /// From now on the kernel completes handshakes, whether or not anyone accepts.
    void listen() { REQUIRE(::listen(fd_, 16) == 0); }

    [[nodiscard]] int fd() const { return fd_; }
    [[nodiscard]] std::string url() const { return fmt::format("redis://127.0.0.1:{}", port_); }

  private:
    int fd_;
    int port_ = 0;
};

// A port nothing listens on: bound once by the kernel, then released.
std::string closed_port_url() {
    const LocalSocket socket;
    return socket.url();
}

// Pretends to be Redis for one connection on `socket`: answers each request with the next
// canned reply, then hangs up.
class FakeRedis {
  public:
    explicit FakeRedis(std::vector<std::string> replies,
                       std::unique_ptr<LocalSocket> socket = std::make_unique<LocalSocket>())
        : socket_(std::move(socket)) {
        socket_->listen();
        thread_ = std::thread([this, replies = std::move(replies)] {
            const int client = ::accept(socket_->fd(), nullptr, nullptr);
            if (client < 0) {
                return;
            }
            std::vector<char> buffer(1U << 16U);
            for (const auto& reply : replies) {
                if (::read(client, buffer.data(), buffer.size()) <= 0) {
                    break;
                }
                if (!reply.empty()) {
                    (void)!::write(client, reply.data(), reply.size());
                }
            }
            ::shutdown(client, SHUT_RDWR);
            ::close(client);
        });
    }
    FakeRedis(const FakeRedis&) = delete;
    FakeRedis& operator=(const FakeRedis&) = delete;
    ~FakeRedis() {
        ::shutdown(socket_->fd(), SHUT_RDWR);  // Wakes an accept that never got a client.
        thread_.join();
    }

    [[nodiscard]] std::string url() const { return socket_->url(); }

  private:
    std::unique_ptr<LocalSocket> socket_;
    std::thread thread_;
};

bool is_number(std::string_view, std::string_view value) {
    return !value.empty() && value.find_first_not_of("0123456789") == std::string_view::npos;
}

// The database behind ReadThroughConfig.
struct FakeDatabase {
    std::map<std::string, std::string> rows;
    std::atomic<int> reads{0};

    ReadThroughConfig::Loader loader() {
        return [this](std::string_view key) -> std::optional<std::string> {
            ++reads;
            const auto it = rows.find(std::string(key));
            return it == rows.end() ? std::nullopt : std::optional<std::string>(it->second);
        };
    }
};

template <class F>
std::chrono::milliseconds time_of(F&& f) {
    const auto start = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start);
}

}  // namespace

TEST_SUITE("config cache redis") {
    TEST_CASE("url: the accepted forms") {
        auto e = redis::parse_redis_url("redis://127.0.0.1:6380");
        CHECK(e.host == "127.0.0.1");
        CHECK(e.port == 6380);
        CHECK(e.db == 0);
        CHECK(e.password.empty());

        e = redis::parse_redis_url("redis://cache.internal");
        CHECK(e.host == "cache.internal");
        CHECK(e.port == 6379);

        e = redis::parse_redis_url("redis://:s3cr%40t@10.0.0.5:6379/2");
        CHECK(e.host == "10.0.0.5");
        CHECK(e.db == 2);
        CHECK(e.username.empty());
        CHECK(e.password == "s3cr@t");
        CHECK(e.display() == "10.0.0.5:6379/2");

        e = redis::parse_redis_url("redis://app:pw@[::1]:7000/");
        CHECK(e.host == "::1");
        CHECK(e.port == 7000);
        CHECK(e.db == 0);
        CHECK(e.username == "app");
        CHECK(e.password == "pw");
        CHECK(e.display() == "[::1]:7000/0");
    }

    TEST_CASE("url: malformed URLs are refused with one clear line, never echoing the password") {
        for (const char* url : {"",
                                "127.0.0.1:6379",
                                "http://127.0.0.1:6379",
                                "rediss://h:6379",
                                "redis://",
                                "redis://:6379",
                                "redis://h:",
                                "redis://h:0",
                                "redis://h:65536",
                                "redis://h:63x9",
                                "redis://h:6379/x",
                                "redis://h:6379/-1",
                                "redis://h:6379/0/1",
                                "redis://h:6379?db=1",
                                "redis://::1:6379",
                                "redis://[::1:6379",
                                "redis://[xyz]:6379",
                                "redis://h]:1",
                                "redis://h o:6379",
                                "redis://user@h:6379",
                                "redis://:@h:6379",
                                "redis://:SECRET%zz@h:6379"}) {
            const std::string text = url;
            CAPTURE(text);
            try {
                (void)redis::parse_redis_url(url);
                FAIL("accepted");
            } catch (const std::invalid_argument& e) {
                const std::string message = e.what();
                CHECK(message.starts_with("REDIS_URL must look like"));
                CHECK(message.find('\n') == std::string::npos);
                CHECK(message.find("SECRET") == std::string::npos);
            }
        }
        CHECK_THROWS_AS(RedisConfigCache("redis://h:99999"), std::invalid_argument);
    }

    TEST_CASE("redis: a put is stored namespaced with TTL 300 s; purge removes it") {
        RedisConfigCache cache(redis_url());
        RawRedis raw;
        const auto key = unique_key("order.min_threshold_idr");
        CHECK(cache.name() == "redis");
        CHECK_FALSE(cache.get(key));

        cache.put(key, "500000", 300s);
        CHECK(cache.get(key) == "500000");
        CHECK(raw.command({"GET", raw.full_key(key)}) == "500000");
        const int ttl = std::stoi(raw.command({"TTL", raw.full_key(key)}));
        CHECK(ttl > 295);
        CHECK(ttl <= 300);

        cache.purge(key);
        CHECK(raw.command({"EXISTS", raw.full_key(key)}) == "0");
        CHECK_FALSE(cache.get(key));
        cache.purge(key);  // Purging what is not there succeeds.
    }

    TEST_CASE("redis: values are binary-safe") {
        RedisConfigCache cache(redis_url());
        const auto key = unique_key("binary");
        const std::string value("a\0b\r\n$3\r\n*", 11);
        cache.put(key, value, 60s);
        CHECK(cache.get(key) == value);
        cache.purge(key);
    }

    TEST_CASE("redis: the database number in the URL is selected") {
        const auto endpoint = redis::parse_redis_url(redis_url());
        RedisConfigCache cache(fmt::format("redis://{}:{}/3", endpoint.host, endpoint.port));
        RawRedis db0;
        RawRedis db3(3);
        const auto key = unique_key("db");
        cache.put(key, "1", 60s);
        CHECK(db3.command({"GET", db3.full_key(key)}) == "1");
        CHECK(db0.command({"EXISTS", db0.full_key(key)}) == "0");
        cache.purge(key);
    }

    TEST_CASE("redis: a password Redis does not expect is a CacheError that hides it") {
        const auto endpoint = redis::parse_redis_url(redis_url());
        RedisConfigCache cache(fmt::format("redis://:hunter2@{}:{}", endpoint.host, endpoint.port));
        try {
            (void)cache.get("x");
            FAIL("AUTH was accepted by a Redis without a password");
        } catch (const CacheError& e) {
            CHECK(std::string(e.what()).find("AUTH") != std::string::npos);
            CHECK(std::string(e.what()).find("hunter2") == std::string::npos);
        }
    }

    TEST_CASE("read-through on redis: miss loads and caches for 300 s, invalidate purges") {
        RedisConfigCache cache(redis_url());
        RawRedis raw;
        FakeDatabase db;
        const auto key = unique_key("erp.max_rps");
        db.rows[key] = "2";
        ReadThroughConfig config(cache, db.loader(), is_number);

        CHECK(config.get(key) == "2");
        CHECK(raw.command({"GET", raw.full_key(key)}) == "2");
        CHECK(std::stoi(raw.command({"TTL", raw.full_key(key)})) > 295);
        CHECK(config.get(key) == "2");
        CHECK(db.reads == 1);

        db.rows[key] = "5";
        config.invalidate(key);
        CHECK(raw.command({"EXISTS", raw.full_key(key)}) == "0");
        CHECK(config.get(key) == "5");
        CHECK(config.stats() == ConfigCacheStats{.hits = 1, .misses = 2});
        cache.purge(key);
    }

    TEST_CASE("read-through on redis: garbage SET behind the cache's back is purged") {
        RedisConfigCache cache(redis_url());
        RawRedis raw;
        FakeDatabase db;
        const auto key = unique_key("stock.sync_interval_s");
        db.rows[key] = "300";
        REQUIRE(raw.command({"SET", raw.full_key(key), "\xff\xfegarbage"}) == "OK");
        ReadThroughConfig config(cache, db.loader(), is_number);

        CHECK(config.get(key) == "300");
        CHECK(config.stats() == ConfigCacheStats{.fallbacks = 1, .errors = 1});
        CHECK(raw.command({"EXISTS", raw.full_key(key)}) == "0");
        CHECK(config.get(key) == "300");  // A miss that caches the good value.
        CHECK(raw.command({"GET", raw.full_key(key)}) == "300");
        cache.purge(key);
    }

    TEST_CASE("read-through on redis: a key of the wrong type is purged too") {
        RedisConfigCache cache(redis_url());
        RawRedis raw;
        FakeDatabase db;
        const auto key = unique_key("wrongtype");
        db.rows[key] = "7";
        REQUIRE(raw.command({"RPUSH", raw.full_key(key), "a"}) == "1");
        CHECK_THROWS_AS((void)cache.get(key), CacheBadValue);

        ReadThroughConfig config(cache, db.loader(), is_number);
        CHECK(config.get(key) == "7");
        CHECK(config.stats() == ConfigCacheStats{.fallbacks = 1, .errors = 1});
        CHECK(raw.command({"EXISTS", raw.full_key(key)}) == "0");
    }

    TEST_CASE("redis: a value over the size limit is a CacheBadValue") {
        RedisCacheOptions options;
        options.value_bytes_max = 16;
        RedisConfigCache cache(redis_url(), options);
        const auto key = unique_key("big");
        cache.put(key, std::string(16, 'x'), 60s);
        CHECK(cache.get(key) == std::string(16, 'x'));
        cache.put(key, std::string(17, 'x'), 60s);
        CHECK_THROWS_AS((void)cache.get(key), CacheBadValue);
        cache.purge(key);
    }

    TEST_CASE("read-through on redis: Redis down falls back to the loader, fast, and counts") {
        RedisConfigCache cache(closed_port_url());
        FakeDatabase db;
        db.rows["erp.max_rps"] = "2";
        ReadThroughConfig config(cache, db.loader(), is_number);

        CHECK_THROWS_AS((void)cache.get("erp.max_rps"), CacheError);
        // Within the reconnect interval no connection is attempted at all.
        try {
            (void)cache.get("erp.max_rps");
            FAIL("a closed port answered");
        } catch (const CacheError& e) {
            CHECK(std::string(e.what()).find("not reconnecting") != std::string::npos);
            CHECK(std::string(e.what()).find("refused") != std::string::npos);
        }

        const auto elapsed = time_of([&] {
            for (int i = 0; i < 100; ++i) {
                CHECK(config.get("erp.max_rps") == "2");
            }
            config.invalidate("erp.max_rps");
            CHECK(config.get("erp.max_rps") == "2");
        });
        CHECK(elapsed < 500ms);
        const auto stats = config.stats();
        CHECK(stats.hits == 0);
        CHECK(stats.misses == 0);
        CHECK(stats.fallbacks == 101);
        CHECK(stats.errors == 102);  // 100 gets, the invalidate, the bypassed get's purge.
    }

    TEST_CASE("redis: after the reconnect interval a revived Redis is used again") {
        auto socket = std::make_unique<LocalSocket>();
        RedisCacheOptions options;
        options.reconnect_interval = 200ms;
        RedisConfigCache cache(socket->url(), options);
        CHECK_THROWS_AS((void)cache.get("k"), CacheError);

        FakeRedis revived({"$1\r\n7\r\n"}, std::move(socket));  // Same port, now listening.
        CHECK_THROWS_AS((void)cache.get("k"), CacheError);      // Still within the interval.
        std::this_thread::sleep_for(250ms);
        CHECK(cache.get("k") == "7");
    }

    TEST_CASE("redis: a server that accepts but never answers costs one command timeout") {
        LocalSocket silent;
        silent.listen();  // The kernel completes the handshake; no one reads.
        RedisConfigCache cache(silent.url());
        const auto elapsed = time_of([&] { CHECK_THROWS_AS((void)cache.get("k"), CacheError); });
        CHECK(elapsed >= 90ms);
        CHECK(elapsed < 1000ms);
    }

    TEST_CASE("redis: replies that make no sense are CacheErrors, never a crash") {
        struct Case {
            const char* reply;
            enum { nil, value, error, bad_value } outcome;
        };
        for (const Case c :
             {Case{"$-1\r\n", Case::nil}, Case{"$3\r\nabc\r\n", Case::value},
              Case{"+OK\r\n", Case::error}, Case{":1\r\n", Case::error},
              Case{"*1\r\n$1\r\na\r\n", Case::error}, Case{"*-1\r\n", Case::nil},
              Case{"-ERR boom\r\n", Case::error}, Case{"-WRONGTYPE no\r\n", Case::bad_value},
              Case{"garbage\r\n", Case::error}, Case{"$10\r\nab", Case::error},
              Case{"", Case::error}}) {
            const std::string text = c.reply;
            CAPTURE(text);
            FakeRedis fake({c.reply});
            RedisConfigCache cache(fake.url());
            switch (c.outcome) {
                case Case::nil:
                    CHECK_FALSE(cache.get("k"));
                    break;
                case Case::value:
                    CHECK(cache.get("k") == "abc");
                    break;
                case Case::error:
                    CHECK_THROWS_AS((void)cache.get("k"), CacheError);
                    break;
                case Case::bad_value:
                    CHECK_THROWS_AS((void)cache.get("k"), CacheBadValue);
                    break;
            }
        }
        for (const char* reply : {"$1\r\nx\r\n", ":1\r\n", "-OOM no\r\n", "+QUEUED\r\n"}) {
            const std::string text = reply;
            CAPTURE(text);
            FakeRedis fake({reply});
            RedisConfigCache cache(fake.url());
            CHECK_THROWS_AS(cache.put("k", "v", 60s), CacheError);
        }
        for (const char* reply : {"+OK\r\n", "$1\r\n1\r\n", "-ERR no\r\n"}) {
            const std::string text = reply;
            CAPTURE(text);
            FakeRedis fake({reply});
            RedisConfigCache cache(fake.url());
            CHECK_THROWS_AS(cache.purge("k"), CacheError);
        }
    }

    TEST_CASE("redis: a server that hangs up mid-command does not kill the process (SIGPIPE)") {
        RedisCacheOptions options;
        options.connections_max = 1;
        FakeRedis fake({"$-1\r\n"});  // Answers one GET, then hangs up.
        RedisConfigCache cache(fake.url(), options);
        CHECK_FALSE(cache.get("k"));
        std::this_thread::sleep_for(50ms);
        // Several megabytes need several writes; the ones after the peer's reset raise SIGPIPE.
        CHECK_THROWS_AS(cache.put("k", std::string(8U << 20U, 'x'), 60s), CacheError);
    }

    TEST_CASE("read-through on redis: 8 threads reading and invalidating concurrently") {
        RedisConfigCache cache(redis_url());
        FakeDatabase db;
        std::vector<std::string> keys;
        for (int k = 0; k < 4; ++k) {
            keys.push_back(unique_key("concurrent"));
            db.rows[keys.back()] = std::to_string(k * 1000);
        }
        ReadThroughConfig config(cache, db.loader(), is_number);
        constexpr int threads_count = 8;
        constexpr int gets_per_thread = 500;
        std::atomic<int> wrong{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < threads_count; ++t) {
            threads.emplace_back([&, t] {
                for (int i = 0; i < gets_per_thread; ++i) {
                    const int k = (i + t) % 4;
                    if (i % 50 == 0) {
                        config.invalidate(keys[static_cast<std::size_t>(k)]);
                    }
                    if (config.get(keys[static_cast<std::size_t>(k)]) != std::to_string(k * 1000)) {
                        ++wrong;
                    }
                }
            });
        }
        for (auto& thread : threads) {
            thread.join();
        }
        CHECK(wrong == 0);
        const auto stats = config.stats();
        CHECK(stats.hits + stats.misses + stats.fallbacks == threads_count * gets_per_thread);
        CHECK(stats.errors == 0);
        CHECK(stats.fallbacks == 0);
        CHECK(stats.hits > stats.misses);
        for (const auto& key : keys) {
            cache.purge(key);
        }
    }
}
