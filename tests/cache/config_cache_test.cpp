#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include <oe/kernel/config_cache.hpp>

using namespace oe;
using namespace std::chrono_literals;

template <>
struct doctest::StringMaker<ConfigCacheStats> {
    static doctest::String convert(const ConfigCacheStats& s) {
        const auto text = "{hits " + std::to_string(s.hits) + ", misses " +
                          std::to_string(s.misses) + ", fallbacks " + std::to_string(s.fallbacks) +
                          ", errors " + std::to_string(s.errors) + "}";
        return doctest::String(text.c_str());
    }
};

namespace {

// A cache whose every operation can be made to fail, counting what it was asked.
class FakeCache final : public ConfigCache {
  public:
    enum class Failure { none, error, bad_value };

    std::optional<std::string> get(std::string_view key) override {
        std::lock_guard lock(mutex_);
        ++gets;
        if (get_failure == Failure::error) {
            throw CacheError("fake: connection refused");
        }
        if (get_failure == Failure::bad_value) {
            throw CacheBadValue("fake: WRONGTYPE");
        }
        const auto it = values.find(std::string(key));
        return it == values.end() ? std::nullopt : std::optional<std::string>(it->second);
    }
    void put(std::string_view key, std::string_view value, std::chrono::seconds ttl) override {
        std::lock_guard lock(mutex_);
        ++puts;
        last_ttl = ttl;
        if (fail_put) {
            throw CacheError("fake: put refused");
        }
        values[std::string(key)] = std::string(value);
    }
    void purge(std::string_view key) override {
        std::lock_guard lock(mutex_);
        ++purges;
        if (fail_purge) {
            throw CacheError("fake: purge refused");
        }
        values.erase(std::string(key));
    }
    std::string_view name() const override { return "fake"; }

    // Tests touch these only while no other thread uses the cache.
    std::map<std::string, std::string> values;
    Failure get_failure = Failure::none;
    bool fail_put = false;
    bool fail_purge = false;
    int gets = 0;
    int puts = 0;
    int purges = 0;
    std::chrono::seconds last_ttl{0};

  private:
    std::mutex mutex_;
};

// The database: a map, counting reads.
struct FakeDatabase {
    std::map<std::string, std::string> rows;
    std::atomic<int> reads{0};
    std::mutex mutex;

    ReadThroughConfig::Loader loader() {
        return [this](std::string_view key) -> std::optional<std::string> {
            ++reads;
            std::lock_guard lock(mutex);
            const auto it = rows.find(std::string(key));
            return it == rows.end() ? std::nullopt : std::optional<std::string>(it->second);
        };
    }
};

// Config values in these tests are whole numbers; anything else in the cache is garbage.
bool is_number(std::string_view, std::string_view value) {
    return !value.empty() && value.find_first_not_of("0123456789") == std::string_view::npos;
}

// Captures what this process writes to stderr (oe::log's destination) while it lives.
class StderrCapture {
  public:
    StderrCapture() : file_(std::tmpfile()), saved_(::dup(STDERR_FILENO)) {
        REQUIRE(file_ != nullptr);
        REQUIRE(saved_ >= 0);
        REQUIRE(::dup2(::fileno(file_), STDERR_FILENO) >= 0);
    }
    StderrCapture(const StderrCapture&) = delete;
    StderrCapture& operator=(const StderrCapture&) = delete;
    ~StderrCapture() {
        restore();
        std::fclose(file_);
    }

    /// Everything written so far; stops capturing.
    std::string finish() {
        restore();
        std::string text;
        std::rewind(file_);
        char buffer[4096];
        std::size_t n = 0;
        while ((n = std::fread(buffer, 1, sizeof buffer, file_)) > 0) {
            text.append(buffer, n);
        }
        return text;
    }

  private:
    void restore() {
        if (saved_ >= 0) {
            ::dup2(saved_, STDERR_FILENO);
            ::close(saved_);
            saved_ = -1;
        }
    }

    std::FILE* file_;
    int saved_;
};

std::size_t count_lines(const std::string& text) {
    return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

}  // namespace

TEST_SUITE("config cache") {
    TEST_CASE("in-process: a value lives exactly its TTL") {
        auto now = std::chrono::steady_clock::time_point{} + 1h;
        InProcessConfigCache cache([&now] { return now; });
        CHECK(cache.name() == "in-process");
        CHECK_FALSE(cache.get("order.min_threshold_idr"));

        cache.put("order.min_threshold_idr", "500000", 300s);
        now += 299s;
        CHECK(cache.get("order.min_threshold_idr") == "500000");
        now += 1s;  // 300 s after the put: expired.
        CHECK_FALSE(cache.get("order.min_threshold_idr"));
        CHECK(cache.size() == 0);  // The get that found it expired dropped it.
    }

    TEST_CASE("in-process: a put replaces the value and restarts the TTL; purge removes") {
        auto now = std::chrono::steady_clock::time_point{} + 1h;
        InProcessConfigCache cache([&now] { return now; });
        cache.put("erp.max_rps", "2", 10s);
        now += 9s;
        cache.put("erp.max_rps", "3", 10s);
        now += 9s;
        CHECK(cache.get("erp.max_rps") == "3");
        cache.purge("erp.max_rps");
        CHECK_FALSE(cache.get("erp.max_rps"));
        cache.purge("erp.max_rps");  // Purging what is not there succeeds.
        CHECK_THROWS_AS(cache.put("erp.max_rps", "2", 0s), std::invalid_argument);
    }

    TEST_CASE("in-process: when full, expired entries go first, then the soonest to expire") {
        auto now = std::chrono::steady_clock::time_point{} + 1h;
        InProcessConfigCache cache([&now] { return now; }, /*entries_max=*/3);
        cache.put("a", "1", 5s);
        cache.put("b", "2", 50s);
        cache.put("c", "3", 20s);
        now += 6s;  // "a" has expired.
        cache.put("d", "4", 100s);
        CHECK(cache.size() == 3);
        CHECK_FALSE(cache.get("a"));
        cache.put("e", "5", 100s);  // Full of live entries: "c" expires soonest.
        CHECK(cache.size() == 3);
        CHECK_FALSE(cache.get("c"));
        CHECK(cache.get("b") == "2");
        CHECK(cache.get("d") == "4");
        CHECK(cache.get("e") == "5");
        cache.put("e", "6", 100s);  // Replacing a key evicts nothing.
        CHECK(cache.get("b") == "2");
    }

    TEST_CASE("in-process: concurrent puts, gets and purges are safe") {
        InProcessConfigCache cache;
        std::vector<std::thread> threads;
        std::atomic<int> wrong{0};
        for (int t = 0; t < 8; ++t) {
            threads.emplace_back([&cache, &wrong, t] {
                for (int i = 0; i < 2000; ++i) {
                    const std::string key = "k" + std::to_string(i % 7);
                    if ((i + t) % 5 == 0) {
                        cache.purge(key);
                    } else if ((i + t) % 2 == 0) {
                        cache.put(key, key + "-value", 300s);
                    } else if (const auto value = cache.get(key);
                               value && *value != key + "-value") {
                        ++wrong;
                    }
                }
            });
        }
        for (auto& thread : threads) {
            thread.join();
        }
        CHECK(wrong == 0);
        CHECK(cache.size() <= 7);
    }

    TEST_CASE("read-through: a miss loads and caches with the TTL, then hits") {
        FakeCache cache;
        FakeDatabase db;
        db.rows["order.min_threshold_idr"] = "500000";
        ReadThroughConfig config(cache, db.loader(), is_number);
        CHECK(config.cache_name() == "fake");

        CHECK(config.get("order.min_threshold_idr") == "500000");
        CHECK(cache.values.at("order.min_threshold_idr") == "500000");
        CHECK(cache.last_ttl == 300s);  // SPEC §5.
        CHECK(config.get("order.min_threshold_idr") == "500000");
        CHECK(db.reads == 1);
        CHECK(config.stats() == ConfigCacheStats{.hits = 1, .misses = 1});
    }

    TEST_CASE("read-through: a key the database lacks is not cached") {
        FakeCache cache;
        FakeDatabase db;
        ReadThroughConfig config(cache, db.loader(), is_number, 60s);
        CHECK_FALSE(config.get("nope"));
        CHECK_FALSE(config.get("nope"));
        CHECK(cache.puts == 0);
        CHECK(db.reads == 2);
        CHECK(config.stats() == ConfigCacheStats{.misses = 2});
    }

    TEST_CASE("read-through: garbage in the cache is purged, logged, counted, never served") {
        FakeCache cache;
        FakeDatabase db;
        db.rows["erp.max_rps"] = "2";
        cache.values["erp.max_rps"] = "\x01not a number";
        ReadThroughConfig config(cache, db.loader(), is_number);

        StderrCapture capture;
        CHECK(config.get("erp.max_rps") == "2");
        const std::string logged = capture.finish();
        CHECK(cache.values.count("erp.max_rps") == 0);
        CHECK(config.stats() == ConfigCacheStats{.fallbacks = 1, .errors = 1});
        CHECK(count_lines(logged) == 1);
        CHECK(logged.find(R"("level":"warn")") != std::string::npos);
        CHECK(logged.find(R"("key":"erp.max_rps")") != std::string::npos);
        CHECK(logged.find(R"("error":"cached value failed validation")") != std::string::npos);
        CHECK(logged.find(R"("cache":"fake")") != std::string::npos);

        // The next get is an ordinary miss that caches the good value.
        CHECK(config.get("erp.max_rps") == "2");
        CHECK(cache.values.at("erp.max_rps") == "2");
        CHECK(config.stats() == ConfigCacheStats{.misses = 1, .fallbacks = 1, .errors = 1});
    }

    TEST_CASE("read-through: a bad value the cache reports is purged like garbage") {
        FakeCache cache;
        FakeDatabase db;
        db.rows["erp.max_rps"] = "2";
        cache.get_failure = FakeCache::Failure::bad_value;
        cache.fail_purge = true;  // A failing purge of garbage is ignored.
        ReadThroughConfig config(cache, db.loader(), is_number);
        StderrCapture capture;
        CHECK(config.get("erp.max_rps") == "2");
        CHECK(capture.finish().find("WRONGTYPE") != std::string::npos);
        CHECK(cache.purges == 1);
        CHECK(config.stats() == ConfigCacheStats{.fallbacks = 1, .errors = 1});
    }

    TEST_CASE("read-through: an unreachable cache falls back to the loader, never throws") {
        FakeCache cache;
        FakeDatabase db;
        db.rows["stock.sync_interval_s"] = "300";
        cache.get_failure = FakeCache::Failure::error;
        ReadThroughConfig config(cache, db.loader(), is_number);

        StderrCapture capture;
        CHECK(config.get("stock.sync_interval_s") == "300");
        CHECK_FALSE(config.get("missing"));
        const std::string logged = capture.finish();
        CHECK(count_lines(logged) == 2);
        CHECK(logged.find(R"("key":"stock.sync_interval_s")") != std::string::npos);
        CHECK(logged.find(R"("error":"fake: connection refused")") != std::string::npos);
        CHECK(cache.puts == 0);    // A failing cache is not written to either.
        CHECK(cache.purges == 0);  // Nothing says the value is bad.
        CHECK(config.stats() == ConfigCacheStats{.fallbacks = 2, .errors = 2});
    }

    TEST_CASE("read-through: a failed put is logged and counted, the value still returned") {
        FakeCache cache;
        FakeDatabase db;
        db.rows["erp.max_rps"] = "2";
        cache.fail_put = true;
        ReadThroughConfig config(cache, db.loader(), is_number);
        StderrCapture capture;
        CHECK(config.get("erp.max_rps") == "2");
        CHECK(capture.finish().find(R"("error":"fake: put refused")") != std::string::npos);
        CHECK(config.stats() == ConfigCacheStats{.misses = 1, .errors = 1});
    }

    TEST_CASE("read-through: a loaded value the validator rejects is served but not cached") {
        FakeCache cache;
        FakeDatabase db;
        db.rows["erp.max_rps"] = "two";
        ReadThroughConfig config(cache, db.loader(), is_number);
        CHECK(config.get("erp.max_rps") == "two");
        CHECK(cache.puts == 0);
        CHECK(config.stats() == ConfigCacheStats{.misses = 1});
    }

    TEST_CASE("read-through: invalidate purges the key") {
        FakeCache cache;
        FakeDatabase db;
        db.rows["erp.max_rps"] = "2";
        ReadThroughConfig config(cache, db.loader(), is_number);
        CHECK(config.get("erp.max_rps") == "2");
        db.rows["erp.max_rps"] = "5";
        config.invalidate("erp.max_rps");
        CHECK(cache.values.count("erp.max_rps") == 0);
        CHECK(config.get("erp.max_rps") == "5");
        CHECK(config.stats() == ConfigCacheStats{.misses = 2});
    }

    TEST_CASE("read-through: after a failed purge the key bypasses the cache until one works") {
        FakeCache cache;
        FakeDatabase db;
        db.rows["erp.max_rps"] = "2";
        ReadThroughConfig config(cache, db.loader(), is_number);
        CHECK(config.get("erp.max_rps") == "2");  // Cached.

        // The change commits while the cache refuses the purge: it still holds "2".
        db.rows["erp.max_rps"] = "5";
        cache.fail_purge = true;
        StderrCapture capture;
        config.invalidate("erp.max_rps");
        CHECK(capture.finish().find(R"("error":"fake: purge refused")") != std::string::npos);
        CHECK(cache.values.at("erp.max_rps") == "2");
        CHECK(config.stats() == ConfigCacheStats{.misses = 1, .errors = 1});

        // Every get retries the purge; while it fails, the database answers.
        const int gets_before = cache.gets;
        StderrCapture quiet;
        CHECK(config.get("erp.max_rps") == "5");
        CHECK(config.get("erp.max_rps") == "5");
        quiet.finish();
        CHECK(cache.gets == gets_before);
        CHECK(config.stats() == ConfigCacheStats{.misses = 1, .fallbacks = 2, .errors = 3});

        // Other keys use the cache as usual meanwhile.
        db.rows["order.min_threshold_idr"] = "500000";
        CHECK(config.get("order.min_threshold_idr") == "500000");
        CHECK(cache.values.at("order.min_threshold_idr") == "500000");

        // The cache is back: the purge succeeds, the new value is cached and then hit.
        cache.fail_purge = false;
        CHECK(config.get("erp.max_rps") == "5");
        CHECK(cache.values.at("erp.max_rps") == "5");
        CHECK(config.get("erp.max_rps") == "5");
        CHECK(config.stats() ==
              ConfigCacheStats{.hits = 1, .misses = 3, .fallbacks = 2, .errors = 3});
    }

    TEST_CASE("read-through: a later successful invalidate also ends the bypass") {
        FakeCache cache;
        FakeDatabase db;
        db.rows["erp.max_rps"] = "2";
        ReadThroughConfig config(cache, db.loader(), is_number);
        cache.fail_purge = true;
        StderrCapture capture;
        config.invalidate("erp.max_rps");
        capture.finish();
        cache.fail_purge = false;
        config.invalidate("erp.max_rps");
        const int purges = cache.purges;
        CHECK(config.get("erp.max_rps") == "2");
        CHECK(cache.purges == purges);  // No retry: the bypass is gone.
        CHECK(config.stats() == ConfigCacheStats{.misses = 1, .errors = 1});
    }

    TEST_CASE("read-through: a value loaded while an invalidation runs is not cached") {
        FakeCache cache;
        FakeDatabase db;
        db.rows["erp.max_rps"] = "2";
        ReadThroughConfig* self = nullptr;
        // The loader reads the old row, then the change commits and invalidates before the get
        // gets to cache what it read.
        auto loader = [&](std::string_view key) -> std::optional<std::string> {
            auto value = db.rows.at(std::string(key));
            db.rows["erp.max_rps"] = "5";
            self->invalidate(key);
            return value;
        };
        ReadThroughConfig config(cache, loader, is_number);
        self = &config;
        CHECK(config.get("erp.max_rps") == "2");
        CHECK(cache.puts == 0);
    }

    TEST_CASE("read-through: loader failures reach the caller") {
        FakeCache cache;
        cache.get_failure = FakeCache::Failure::error;
        ReadThroughConfig config(
            cache,
            [](std::string_view) -> std::optional<std::string> {
                throw std::runtime_error("database down");
            },
            is_number);
        StderrCapture capture;
        CHECK_THROWS_WITH_AS(config.get("erp.max_rps"), "database down", std::runtime_error);
    }

    TEST_CASE("read-through: construction refuses a zero TTL and missing functions") {
        FakeCache cache;
        FakeDatabase db;
        CHECK_THROWS_AS(ReadThroughConfig(cache, db.loader(), is_number, 0s),
                        std::invalid_argument);
        CHECK_THROWS_AS(ReadThroughConfig(cache, {}, is_number), std::invalid_argument);
        CHECK_THROWS_AS(ReadThroughConfig(cache, db.loader(), {}), std::invalid_argument);
    }

    TEST_CASE("read-through: warnings are rate-limited and say how many were suppressed") {
        FakeCache cache;
        FakeDatabase db;
        cache.get_failure = FakeCache::Failure::error;
        ReadThroughConfig config(cache, db.loader(), is_number);
        StderrCapture capture;
        for (int i = 0; i < 50; ++i) {
            (void)config.get("erp.max_rps");
        }
        std::this_thread::sleep_for(1100ms);
        (void)config.get("erp.max_rps");
        const std::string logged = capture.finish();
        CHECK(count_lines(logged) <= ReadThroughConfig::log_lines_per_s_max + 1);
        CHECK(logged.find(R"("suppressed":")") != std::string::npos);
        CHECK(config.stats().errors == 51);  // Every failure is counted, logged or not.
    }

    TEST_CASE("read-through: concurrent gets and invalidations keep every get accounted for") {
        InProcessConfigCache cache;
        FakeDatabase db;
        for (int k = 0; k < 4; ++k) {
            db.rows["key" + std::to_string(k)] = std::to_string(k * 1000);
        }
        ReadThroughConfig config(cache, db.loader(), is_number);
        constexpr int threads_count = 8;
        constexpr int gets_per_thread = 5000;
        std::atomic<int> wrong{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < threads_count; ++t) {
            threads.emplace_back([&, t] {
                for (int i = 0; i < gets_per_thread; ++i) {
                    const int k = (i + t) % 4;
                    const std::string key = "key" + std::to_string(k);
                    if (i % 97 == 0) {
                        config.invalidate(key);
                    }
                    if (config.get(key) != std::to_string(k * 1000)) {
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
        CHECK(stats.hits > stats.misses);
    }
}
