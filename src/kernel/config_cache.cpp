#include <oe/kernel/config_cache.hpp>

#include <algorithm>
#include <stdexcept>
#include <utility>

#include <oe/kernel/log.hpp>

namespace oe {

namespace {

using SteadyClock = std::chrono::steady_clock;

void require_positive_ttl(std::chrono::seconds ttl) {
    // Redis refuses SET ... EX 0; a zero TTL is a caller's bug, not a cache failure.
    if (ttl.count() <= 0) {
        throw std::invalid_argument("config cache TTL must be at least 1 s");
    }
}

}  // namespace

InProcessConfigCache::InProcessConfigCache() : InProcessConfigCache(SteadyNow{}) {}

InProcessConfigCache::InProcessConfigCache(SteadyNow now, std::size_t entries_max)
    : now_(now ? std::move(now) : SteadyNow([] { return SteadyClock::now(); })),
      entries_max_(std::max<std::size_t>(entries_max, 1)) {}

std::optional<std::string> InProcessConfigCache::get(std::string_view key) {
    const auto now = now_();
    std::lock_guard lock(mutex_);
    const auto it = entries_.find(key);
    if (it == entries_.end()) {
        return std::nullopt;
    }
    if (now >= it->second.expires_at) {
        entries_.erase(it);
        return std::nullopt;
    }
    return it->second.value;
}

void InProcessConfigCache::put(std::string_view key, std::string_view value,
                               std::chrono::seconds ttl) {
    require_positive_ttl(ttl);
    const auto now = now_();
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end()) {
        make_room(now);
        it = entries_.emplace(std::string(key), Entry{}).first;
    }
    it->second.value.assign(value);
    it->second.expires_at = now + ttl;
}

void InProcessConfigCache::purge(std::string_view key) {
    std::lock_guard lock(mutex_);
    const auto it = entries_.find(key);
    if (it != entries_.end()) {
        entries_.erase(it);
    }
}

std::size_t InProcessConfigCache::size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

void InProcessConfigCache::make_room(SteadyClock::time_point now) {
    if (entries_.size() < entries_max_) {
        return;
    }
    std::erase_if(entries_, [now](const auto& entry) { return now >= entry.second.expires_at; });
    if (entries_.size() < entries_max_) {
        return;
    }
    const auto soonest = std::min_element(
        entries_.begin(), entries_.end(),
        [](const auto& a, const auto& b) { return a.second.expires_at < b.second.expires_at; });
    entries_.erase(soonest);
}

ReadThroughConfig::ReadThroughConfig(ConfigCache& cache, Loader loader, Validator validator,
                                     std::chrono::seconds ttl)
    : cache_(cache), loader_(std::move(loader)), validator_(std::move(validator)), ttl_(ttl) {
    require_positive_ttl(ttl);
    if (!loader_ || !validator_) {
        throw std::invalid_argument("ReadThroughConfig needs a loader and a validator");
    }
}

std::optional<std::string> ReadThroughConfig::get(std::string_view key) {
    if (bypass_count_.load() != 0 && bypassed(key)) {
        // The purge after the last change failed, so the cache may still hold the old value.
        try {
            cache_.purge(key);
            forget_bypass(key);
        } catch (const CacheError& e) {
            ++errors_;
            report("config cache purge still failing; read the database instead", key, e.what());
            return load_instead(key);
        }
    }
    const std::uint64_t invalidations = invalidations_.load();
    std::optional<std::string> cached;
    try {
        cached = cache_.get(key);
    } catch (const CacheBadValue& e) {
        ++errors_;
        report("config cache held an unusable value; purged it and read the database", key,
               e.what());
        purge_quietly(key);
        return load_instead(key);
    } catch (const CacheError& e) {
        ++errors_;
        report("config cache unavailable; read the database instead", key, e.what());
        return load_instead(key);
    }
    if (cached) {
        if (validator_(key, *cached)) {
            ++hits_;
            return cached;
        }
        ++errors_;
        report("config cache held an invalid value; purged it and read the database", key,
               "cached value failed validation");
        purge_quietly(key);
        return load_instead(key);
    }
    ++misses_;
    auto value = loader_(key);
    // A value the validator rejects would be garbage on every later hit, so it is not cached.
    if (value && validator_(key, *value) && invalidations_.load() == invalidations) {
        try {
            cache_.put(key, *value, ttl_);
        } catch (const CacheError& e) {
            ++errors_;
            report("config cache put failed; the value stays uncached", key, e.what());
        }
    }
    return value;
}

void ReadThroughConfig::invalidate(std::string_view key) {
    ++invalidations_;
    try {
        cache_.purge(key);
    } catch (const CacheError& e) {
        ++errors_;
        remember_bypass(key);
        report("config cache purge failed; the key bypasses the cache until a purge succeeds", key,
               e.what());
        return;
    }
    if (bypass_count_.load() != 0) {
        forget_bypass(key);
    }
}

ConfigCacheStats ReadThroughConfig::stats() const {
    return ConfigCacheStats{hits_.load(), misses_.load(), fallbacks_.load(), errors_.load()};
}

std::optional<std::string> ReadThroughConfig::load_instead(std::string_view key) {
    ++fallbacks_;
    return loader_(key);
}

void ReadThroughConfig::purge_quietly(std::string_view key) {
    // The value is not served either way; if the purge fails too, the next get finds the same
    // garbage and tries again, and the TTL removes it at the latest.
    try {
        cache_.purge(key);
    } catch (const CacheError&) {
    }
}

bool ReadThroughConfig::bypassed(std::string_view key) {
    std::lock_guard lock(bypass_mutex_);
    return bypass_.find(key) != bypass_.end();
}

void ReadThroughConfig::forget_bypass(std::string_view key) {
    std::lock_guard lock(bypass_mutex_);
    const auto it = bypass_.find(key);
    if (it != bypass_.end()) {
        bypass_.erase(it);
        bypass_count_.store(bypass_.size());
    }
}

void ReadThroughConfig::remember_bypass(std::string_view key) {
    std::lock_guard lock(bypass_mutex_);
    bypass_.emplace(key);
    bypass_count_.store(bypass_.size());
}

void ReadThroughConfig::report(std::string_view message, std::string_view key,
                               std::string_view error) {
    std::uint64_t suppressed = 0;
    {
        std::lock_guard lock(log_mutex_);
        const auto now = SteadyClock::now();
        if (now - log_window_start_ >= std::chrono::seconds{1}) {
            log_window_start_ = now;
            log_window_lines_ = 0;
        }
        if (log_window_lines_ >= log_lines_per_s_max) {
            ++log_suppressed_;
            return;
        }
        ++log_window_lines_;
        suppressed = std::exchange(log_suppressed_, 0);
    }
    const std::string cache{cache_.name()};
    if (suppressed == 0) {
        log(LogLevel::warn, message,
            {{"key", std::string(key)}, {"error", std::string(error)}, {"cache", cache}});
    } else {
        log(LogLevel::warn, message,
            {{"key", std::string(key)},
             {"error", std::string(error)},
             {"cache", cache},
             {"suppressed", std::to_string(suppressed)}});
    }
}

}  // namespace oe
