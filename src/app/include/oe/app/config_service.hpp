#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <oe/commands/command_service.hpp>
#include <oe/kernel/config_cache.hpp>
#include <oe/kernel/event_store.hpp>
#include <oe/projections/runner.hpp>

namespace oe::app {

/// One row of the system_config read model (SPEC §5).
struct ConfigEntry {
    std::string key;
    std::string value_json;  // A JSON number, or a string with two decimals ("\"1.50\"").
    std::int64_t version = 0;
    std::optional<std::string> updated_by;
    std::optional<std::string> updated_at;
};

/// Config as data, read side and change side (SPEC §5). Reads go through the cache (Redis
/// with TTL 300 s, or in-process) and fall back to the system_config read model when the
/// cache is down or holds garbage. A change is a command; once it has committed and reached the
/// read model, the changed keys are purged, so the very next read sees the new value.
class ConfigService {
  public:
    ConfigService(EventStore& store, commands::CommandService& commands,
                  projections::ProjectionRunner& projections, ConfigCache& cache);

    /// The entry of a known key (defaults included); nothing for an unknown key.
    [[nodiscard]] std::optional<ConfigEntry> get(std::string_view key);

    /// Every key, in the defaults table's order.
    [[nodiscard]] std::vector<ConfigEntry> all();

    /// Runs a config command (ChangeSystemConfig, ResetSystemConfig or ChangeTierConfig),
    /// then waits for the read model and purges what changed.
    template <typename Command>
    Result<commands::Outcome, commands::Rejection> change(const Command& command,
                                                          const EventMetadata& metadata) {
        auto outcome = commands_.execute(command, metadata);
        if (outcome.ok()) {
            settle(outcome.value());
        }
        return outcome;
    }

    [[nodiscard]] ConfigCacheStats cache_stats() const { return reader_.stats(); }

    /// For changes made elsewhere (the API's idempotent path): waits until the read model has
    /// reached `position`, then purges `keys`.
    void changed(std::int64_t position, const std::vector<std::string>& keys);

  private:
    void settle(const commands::Outcome& outcome);
    std::optional<ConfigEntry> load(std::string_view key);

    EventStore& store_;
    commands::CommandService& commands_;
    projections::ProjectionRunner& projections_;
    ReadThroughConfig reader_;
};

/// The cache for REDIS_URL, or an in-process one when it is empty.
[[nodiscard]] std::unique_ptr<ConfigCache> make_config_cache(
    const std::optional<std::string>& redis_url);

}  // namespace oe::app
