// Config as data through the real pieces: commands, the system_config read model, and the
// cache — a real Redis (OE_TEST_REDIS_URL), a dead one, and the in-process cache.

#include <hiredis/hiredis.h>

#include <cstdlib>

#include <doctest/doctest.h>

#include <oe/app/config_service.hpp>
#include <oe/cache_redis/redis_config_cache.hpp>

#include "support/test_database.hpp"

using namespace oe;

namespace {

/// This test's own database on the test Redis (other tests share the server, not the db), so
/// it can start from an empty cache however often it runs.
constexpr int redis_db = 3;

std::string redis_url() {
    const char* url = std::getenv("OE_TEST_REDIS_URL");
    if (url == nullptr || *url == '\0') {
        FAIL("OE_TEST_REDIS_URL is not set: run through `make test` or scripts/with-test-services");
    }
    return std::string(url) + "/" + std::to_string(redis_db);
}

/// A raw Redis command against the test server, for looking behind the cache's back.
std::string redis_raw(const std::string& command, const std::string& key,
                      const std::string& value = {}) {
    const auto endpoint = redis::parse_redis_url(redis_url());
    redisContext* c = redisConnect(endpoint.host.c_str(), endpoint.port);
    REQUIRE(c != nullptr);
    REQUIRE(c->err == 0);
    freeReplyObject(redisCommand(c, "SELECT %d", redis_db));
    auto* reply = static_cast<redisReply*>(
        key.empty()     ? redisCommand(c, "%s", command.c_str())
        : value.empty() ? redisCommand(c, "%s %s", command.c_str(), key.c_str())
                        : redisCommand(c, "%s %s %s", command.c_str(), key.c_str(), value.c_str()));
    std::string out;
    if (reply != nullptr) {
        if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS) {
            out.assign(reply->str, reply->len);
        } else if (reply->type == REDIS_REPLY_INTEGER) {
            out = std::to_string(reply->integer);
        }
        freeReplyObject(reply);
    }
    redisFree(c);
    return out;
}

EventMetadata admin() {
    EventMetadata m;
    m.actor = "admin-config";
    return m;
}

struct Fixture {
    test::TestDatabase db{test::Backend::sqlite};
    std::unique_ptr<EventStore> store = db.open();
    commands::CommandService commands{*store};
    projections::ProjectionRunner projections{*store, projections::make_read_models()};
    std::unique_ptr<ConfigCache> cache;
    std::unique_ptr<app::ConfigService> config;

    explicit Fixture(std::unique_ptr<ConfigCache> c) : cache(std::move(c)) {
        if (std::getenv("OE_TEST_REDIS_URL") != nullptr) {
            redis_raw("FLUSHDB", "");  // A fresh database has a fresh, empty cache.
        }
        projections.start();
        config = std::make_unique<app::ConfigService>(*store, commands, projections, *cache);
    }
    ~Fixture() { projections.stop(); }
};

}  // namespace

TEST_CASE("config through Redis: defaults, a change is visible at once, TTL 300 s") {
    const std::string key = "oe:config:order.min_threshold_idr";
    redis_raw("DEL", key);
    Fixture f(std::make_unique<redis::RedisConfigCache>(redis_url()));
    auto first = f.config->get("order.min_threshold_idr");
    REQUIRE(first);
    CHECK(first->value_json == "500000");
    CHECK(first->version == 0);
    const auto ttl = std::stoll(redis_raw("TTL", key));
    CHECK(ttl > 290);
    CHECK(ttl <= 300);

    auto changed = f.config->change(
        commands::ChangeSystemConfig{"order.min_threshold_idr", std::int64_t{750'000}}, admin());
    REQUIRE(changed.ok());
    auto second = f.config->get("order.min_threshold_idr");
    REQUIRE(second);
    CHECK(second->value_json == "750000");
    CHECK(second->version == 1);
    CHECK(second->updated_by == std::optional<std::string>("admin-config"));
    CHECK(second->updated_at.has_value());

    // A tier change purges both of the tier's keys.
    CHECK(f.config->get("tier.GOLD.loyalty_multiplier")->value_json == "\"1.50\"");
    REQUIRE(f.config->change(commands::ChangeTierConfig{"GOLD", 1'200, "1.75"}, admin()).ok());
    CHECK(f.config->get("tier.GOLD.loyalty_multiplier")->value_json == "\"1.75\"");
    CHECK(f.config->get("tier.GOLD.discount_bps")->value_json == "1200");

    // Bad changes are typed rejections and change nothing.
    auto bad = f.config->change(
        commands::ChangeSystemConfig{"stock.sync_interval_s", std::int64_t{5}}, admin());
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().reason == commands::Rejected::invalid_config_value);
    CHECK_FALSE(f.config->get("no.such.key"));
    CHECK(f.config->all().size() == 11);
}

TEST_CASE("config through Redis: garbage in the cache falls back to the database") {
    const std::string key = "oe:config:erp.max_rps";
    Fixture f(std::make_unique<redis::RedisConfigCache>(redis_url()));
    for (const char* garbage :
         {"not json",
          R"({"value":"2.5","version":0,"updated_by":null,)"
          R"("updated_at":null})",
          R"({"value":99999,"version":0,"updated_by":null,"updated_at":null})"}) {
        redis_raw("SET", key, garbage);
        const auto before = f.config->cache_stats().fallbacks;
        auto entry = f.config->get("erp.max_rps");
        REQUIRE(entry);
        CHECK(entry->value_json == "\"2.00\"");
        CHECK(f.config->cache_stats().fallbacks == before + 1);
    }
}

TEST_CASE("config with Redis down: reads and changes keep working from the database") {
    Fixture f(std::make_unique<redis::RedisConfigCache>("redis://127.0.0.1:1"));
    CHECK(f.config->get("stock.sync_interval_s")->value_json == "300");
    REQUIRE(f.config
                ->change(commands::ChangeSystemConfig{"stock.sync_interval_s", std::int64_t{60}},
                         admin())
                .ok());
    CHECK(f.config->get("stock.sync_interval_s")->value_json == "60");
    CHECK(f.config->cache_stats().errors > 0);
}

TEST_CASE("config with the in-process cache: a change applies to the very next read") {
    Fixture f(app::make_config_cache(std::nullopt));
    CHECK(f.config->get("order.min_threshold_idr")->value_json == "500000");
    REQUIRE(f.config
                ->change(commands::ChangeSystemConfig{"order.min_threshold_idr", std::int64_t{7}},
                         admin())
                .ok());
    CHECK(f.config->get("order.min_threshold_idr")->value_json == "7");
    REQUIRE(f.config->change(commands::ResetSystemConfig{"order.min_threshold_idr"}, admin()).ok());
    const auto reset = f.config->get("order.min_threshold_idr");
    CHECK(reset->value_json == "500000");
    CHECK(reset->version == 2);
}
