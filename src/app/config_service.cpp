#include <oe/app/config_service.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <oe/cache_redis/redis_config_cache.hpp>
#include <oe/events/events.hpp>
#include <oe/kernel/log.hpp>
#include <oe/model/config_keys.hpp>

namespace oe::app {

namespace {

constexpr std::chrono::seconds read_model_wait{5};

/// The cached form of an entry: a small JSON object. Anything else in the cache is garbage.
std::string encode_entry(const ConfigEntry& e) {
    boost::json::object o;
    o["value"] = boost::json::parse(e.value_json);
    o["version"] = e.version;
    o["updated_by"] = e.updated_by ? boost::json::value(*e.updated_by) : nullptr;
    o["updated_at"] = e.updated_at ? boost::json::value(*e.updated_at) : nullptr;
    return boost::json::serialize(o);
}

std::optional<ConfigEntry> decode_entry(std::string_view key, std::string_view text) {
    boost::system::error_code ec;
    const auto parsed = boost::json::parse(text, ec);
    if (ec || !parsed.is_object()) {
        return std::nullopt;
    }
    const auto& o = parsed.get_object();
    const auto* value = o.if_contains("value");
    const auto* version = o.if_contains("version");
    const auto* by = o.if_contains("updated_by");
    const auto* at = o.if_contains("updated_at");
    const auto* spec = model::find_config_key(key);
    if (spec == nullptr || value == nullptr || version == nullptr || !version->is_int64() ||
        by == nullptr || at == nullptr || !(by->is_null() || by->is_string()) ||
        !(at->is_null() || at->is_string())) {
        return std::nullopt;
    }
    // The value must have the key's type and range (SPEC §5), or the cache lies.
    std::optional<std::int64_t> number;
    if (spec->type == model::ConfigType::integer && value->is_int64()) {
        number = value->get_int64();
    } else if (spec->type == model::ConfigType::decimal2 && value->is_string()) {
        number = model::parse_decimal2(value->get_string());
    }
    if (!number || *number < spec->min || *number > spec->max) {
        return std::nullopt;
    }
    ConfigEntry entry;
    entry.key = std::string(key);
    entry.value_json = boost::json::serialize(*value);
    entry.version = version->get_int64();
    if (by->is_string()) {
        entry.updated_by = std::string(by->get_string());
    }
    if (at->is_string()) {
        entry.updated_at = std::string(at->get_string());
    }
    return entry;
}

/// The keys a config event changes.
std::vector<std::string> changed_keys(const commands::Outcome& outcome) {
    std::vector<std::string> keys;
    for (const auto& stream : outcome.appended) {
        for (const auto& event : stream.events) {
            auto decoded = events::decode(event.type, event.schema_version, event.data);
            if (!decoded.ok()) {
                continue;
            }
            if (const auto* t = std::get_if<events::TierConfigChanged>(&decoded.value())) {
                keys.push_back(model::tier_discount_key(t->tier));
                keys.push_back(model::tier_multiplier_key(t->tier));
            } else if (const auto* c = std::get_if<events::SystemConfigChanged>(&decoded.value())) {
                keys.push_back(c->key);
            } else if (const auto* r = std::get_if<events::SystemConfigReset>(&decoded.value())) {
                keys.push_back(r->key);
            }
        }
    }
    return keys;
}

}  // namespace

ConfigService::ConfigService(EventStore& store, commands::CommandService& commands,
                             projections::ProjectionRunner& projections, ConfigCache& cache)
    : store_(store),
      commands_(commands),
      projections_(projections),
      reader_(
          cache,
          [this](std::string_view key) -> std::optional<std::string> {
              const auto entry = load(key);
              return entry ? std::optional(encode_entry(*entry)) : std::nullopt;
          },
          [](std::string_view key, std::string_view value) {
              return decode_entry(key, value).has_value();
          }) {}

std::optional<ConfigEntry> ConfigService::load(std::string_view key) {
    const auto* spec = model::find_config_key(key);
    if (spec == nullptr) {
        return std::nullopt;
    }
    const auto rows = store_.query(
        "SELECT value, version, updated_by, updated_at FROM rm_system_config WHERE key = $1",
        {std::string(key)});
    ConfigEntry entry;
    entry.key = spec->key;
    if (rows.empty()) {
        // The read model has not written its defaults yet: the default is the value.
        entry.value_json = spec->type == model::ConfigType::integer
                               ? std::to_string(spec->default_value)
                               : "\"" + model::format_decimal2(spec->default_value) + "\"";
        return entry;
    }
    entry.value_json = rows[0][0].value_or("null");
    entry.version = std::stoll(rows[0][1].value_or("0"));
    entry.updated_by = rows[0][2];
    entry.updated_at = rows[0][3];
    return entry;
}

std::optional<ConfigEntry> ConfigService::get(std::string_view key) {
    if (model::find_config_key(key) == nullptr) {
        return std::nullopt;
    }
    const auto cached = reader_.get(key);
    return cached ? decode_entry(key, *cached) : std::nullopt;
}

std::vector<ConfigEntry> ConfigService::all() {
    std::vector<ConfigEntry> entries;
    for (const auto& spec : model::config_keys()) {
        if (auto entry = get(spec.key)) {
            entries.push_back(std::move(*entry));
        }
    }
    return entries;
}

void ConfigService::settle(const commands::Outcome& outcome) {
    if (outcome.append.last_position == 0) {
        return;  // Nothing changed.
    }
    if (!projections_.wait_for(
            outcome.append.last_position,
            std::chrono::duration_cast<std::chrono::milliseconds>(read_model_wait))) {
        log(LogLevel::warn, "config read model is behind; purging the cache anyway",
            {{"position", std::to_string(outcome.append.last_position)}});
    }
    for (const auto& key : changed_keys(outcome)) {
        reader_.invalidate(key);
    }
}

void ConfigService::changed(std::int64_t position, const std::vector<std::string>& keys) {
    if (!projections_.wait_for(
            position, std::chrono::duration_cast<std::chrono::milliseconds>(read_model_wait))) {
        log(LogLevel::warn, "config read model is behind; purging the cache anyway",
            {{"position", std::to_string(position)}});
    }
    for (const auto& key : keys) {
        reader_.invalidate(key);
    }
}

std::unique_ptr<ConfigCache> make_config_cache(const std::optional<std::string>& redis_url) {
    if (redis_url && !redis_url->empty()) {
        return std::make_unique<redis::RedisConfigCache>(*redis_url);
    }
    return std::make_unique<InProcessConfigCache>();
}

}  // namespace oe::app
