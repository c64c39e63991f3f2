#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

namespace oe {

/// The cache could not be used: unreachable, timed out, or it answered something that is not a
/// reply to the command (an error reply, the wrong reply type, a broken protocol stream).
class CacheError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// The cache answered, but what it holds under the key is unusable (the wrong data type, a value
/// over the size limit). Unlike a plain CacheError the cache itself works, so purging the key
/// repairs it.
class CacheBadValue : public CacheError {
  public:
    using CacheError::CacheError;
};

/// A key/value cache for business config (SPEC §5). Values are opaque strings; what they mean,
/// and whether one is well-formed, is the caller's business (see ReadThroughConfig).
/// Implementations are thread-safe.
class ConfigCache {
  public:
    ConfigCache() = default;
    ConfigCache(const ConfigCache&) = delete;
    ConfigCache& operator=(const ConfigCache&) = delete;
    virtual ~ConfigCache() = default;

    /// The cached value, or nullopt when the key is not cached (or has expired). Throws
    /// CacheError when the cache is unreachable or answered something unusable.
    [[nodiscard]] virtual std::optional<std::string> get(std::string_view key) = 0;

    /// Caches `value` under `key` for `ttl`, replacing any earlier value. Throws CacheError.
    virtual void put(std::string_view key, std::string_view value, std::chrono::seconds ttl) = 0;

    /// Removes the key; removing a key that is not cached succeeds. Throws CacheError.
    virtual void purge(std::string_view key) = 0;

    /// A short name for logs and metrics ("in-process", "redis").
    [[nodiscard]] virtual std::string_view name() const = 0;
};

/// The cache used when no REDIS_URL is set: a map in this process, entries expiring by the
/// steady clock. Each process has its own, so a purge reaches only the process that made it.
class InProcessConfigCache final : public ConfigCache {
  public:
    /// The time source; tests pass one they can move forward.
    using SteadyNow = std::function<std::chrono::steady_clock::time_point()>;

    /// Config keys are a short, closed list (SPEC §5); this only stops a bug from growing the
    /// map without bound.
    static constexpr std::size_t entries_max_default = 4096;

    InProcessConfigCache();

    /// `now` defaults to std::chrono::steady_clock::now when empty. When `entries_max` entries
    /// are cached, a put first drops the expired ones and then the one closest to expiry.
    explicit InProcessConfigCache(SteadyNow now, std::size_t entries_max = entries_max_default);

    [[nodiscard]] std::optional<std::string> get(std::string_view key) override;
    void put(std::string_view key, std::string_view value, std::chrono::seconds ttl) override;
    void purge(std::string_view key) override;
    [[nodiscard]] std::string_view name() const override { return "in-process"; }

    /// Entries held, expired ones that no get has dropped yet included.
    [[nodiscard]] std::size_t size() const;

  private:
    struct Entry {
        std::string value;
        std::chrono::steady_clock::time_point expires_at;
    };
    // Transparent hashing lets get and purge look up a string_view without a copy.
    struct KeyHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view key) const noexcept {
            return std::hash<std::string_view>{}(key);
        }
    };

    void make_room(std::chrono::steady_clock::time_point now);

    SteadyNow now_;
    std::size_t entries_max_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, Entry, KeyHash, std::equal_to<>> entries_;
};

/// What ReadThroughConfig has done since it was made; the metrics layer exports these.
struct ConfigCacheStats {
    std::uint64_t hits = 0;       // Gets answered from the cache.
    std::uint64_t misses = 0;     // Gets the cache did not hold, answered by the loader.
    std::uint64_t fallbacks = 0;  // Gets answered by the loader because the cache failed, held
                                  // garbage, or still holds a key whose purge failed.
    std::uint64_t errors = 0;     // Cache failures: failed get, put or purge, garbage found.

    friend bool operator==(const ConfigCacheStats&, const ConfigCacheStats&) = default;
};

/// Business config read through a cache (SPEC §5): a hit is served from the cache, a miss is
/// loaded from the database and cached for `ttl`. The cache is an optimisation only: when it is
/// unreachable or holds garbage, the loader answers, the failure is logged (one JSON line with
/// the key and the error) and counted, and the caller never sees it. Thread-safe.
class ReadThroughConfig {
  public:
    /// Reads a key from the database; nullopt when there is no such key. Its exceptions (the
    /// database is down) reach the caller: only the cache is optional.
    using Loader = std::function<std::optional<std::string>(std::string_view key)>;

    /// True when `value` is a well-formed value for `key`. A cached value it rejects is garbage:
    /// purged and not served. A loaded value it rejects is served but never cached.
    using Validator = std::function<bool(std::string_view key, std::string_view value)>;

    /// SPEC §5: cached config lives at most this long.
    static constexpr std::chrono::seconds ttl_default{300};

    /// Warn lines about cache failures per second at most; a dead Redis under load would
    /// otherwise write one per request. The next line written says how many were suppressed.
    static constexpr std::uint64_t log_lines_per_s_max = 10;

    ReadThroughConfig(ConfigCache& cache, Loader loader, Validator validator,
                      std::chrono::seconds ttl = ttl_default);

    /// The value of `key` (nullopt when the database has no such key). Never throws because of
    /// the cache; rethrows what the loader throws.
    [[nodiscard]] std::optional<std::string> get(std::string_view key);

    /// Call right after a change to `key` commits. Purges the cached value; when the purge
    /// fails, logs, counts and serves `key` from the loader until a purge succeeds, so the change
    /// applies to the very next request even while the cache is unreachable.
    void invalidate(std::string_view key);

    /// A snapshot of the counters.
    [[nodiscard]] ConfigCacheStats stats() const;

    /// The cache read through, for logs and metrics.
    [[nodiscard]] std::string_view cache_name() const { return cache_.name(); }

  private:
    [[nodiscard]] std::optional<std::string> load_instead(std::string_view key);
    void purge_quietly(std::string_view key);
    [[nodiscard]] bool bypassed(std::string_view key);
    void forget_bypass(std::string_view key);
    void remember_bypass(std::string_view key);
    void report(std::string_view message, std::string_view key, std::string_view error);

    ConfigCache& cache_;
    Loader loader_;
    Validator validator_;
    std::chrono::seconds ttl_;

    // Bumped before every purge. A get that loaded from the database while an invalidation ran
    // may hold the old value, so it skips caching it (SPEC §5: a change applies immediately).
    std::atomic<std::uint64_t> invalidations_{0};

    // Keys whose purge failed; their cached value may be stale. The count lets get skip the
    // mutex on the hot path when the set is empty, which is always unless the cache failed.
    std::mutex bypass_mutex_;
    std::set<std::string, std::less<>> bypass_;
    std::atomic<std::size_t> bypass_count_{0};

    std::mutex log_mutex_;
    std::chrono::steady_clock::time_point log_window_start_{};
    std::uint64_t log_window_lines_ = 0;
    std::uint64_t log_suppressed_ = 0;

    std::atomic<std::uint64_t> hits_{0};
    std::atomic<std::uint64_t> misses_{0};
    std::atomic<std::uint64_t> fallbacks_{0};
    std::atomic<std::uint64_t> errors_{0};
};

}  // namespace oe
