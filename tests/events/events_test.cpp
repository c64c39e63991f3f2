#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include <oe/kernel/event_store.hpp>

#include <oe/events/events.hpp>
#include <oe/kernel/invariant.hpp>
#include <oe/kernel/json_text.hpp>

using namespace oe::events;

namespace {

// 2026-11-26T07:17:37.123456Z
constexpr std::int64_t as_of_us = 1'795'677'457'123'456;

OrderPlaced two_line_order() {
    OrderPlaced order;
    order.order_id = "O-1";
    order.partner_id = "P-1";
    order.tier = Tier::gold;
    order.region = "ID-JK";
    order.discount_bps = 1000;
    order.loyalty_multiplier_hundredths = 150;
    order.lines = {{"S-1", 2, 100'000, 90'000, 1000, 180'000},
                   {"S-2", 1, 55'555, 50'000, 1000, 50'000}};
    order.subtotal_idr = 230'000;
    order.loyalty_points = 345;
    order.config_position = 42;
    order.note = "rush \"please\"";
    order.placed_by = "agent-7";
    order.on_behalf_of = "P-1";
    order.placed_at_us = 1'795'677'457'123'456;
    return order;
}

/// One of every event type, with every field away from its default.
std::vector<DomainEvent> one_of_each() {
    return {
        PartnerRegistered{"P-1", "Toko Cantik", Tier::platinum, "ID-JK", 5'000'000},
        PartnerDetailsChanged{"P-1", "Toko Cantik Jaya", "ID-JB"},
        PartnerTierChanged{"P-1", Tier::silver},
        CreditLimitSet{"P-1", 7'500'000},
        ProductRegistered{"S-1", "Serum", 100'000, 5},
        ProductPriceChanged{"S-1", 110'000},
        WarehouseRegistered{"WH-1", {{"ID-JK", 24}, {"ID-JB", 48}}},
        TierConfigChanged{Tier::gold, 1200, 175, 1'795'677'457'000'001},
        SystemConfigChanged{"order.min_threshold_idr", std::int64_t{750'000}, 1},
        SystemConfigChanged{"erp.max_rps", std::string("2.50"), 2},
        SystemConfigReset{"stock.sync_interval_s", 3},
        StockLevelsSynced{as_of_us, {{"S-1", "WH-1", 10}, {"S-2", "WH-2", 0}}},
        PartnerDebtSynced{"P-1", 1'250'000, as_of_us},
        two_line_order(),
        OrderCreditHeld{"O-1", "P-1", 230'000, -15'000},
        OrderCreditReleased{"O-1", "finance-1"},
        OrderRouted{"O-1", "WH-1", {{"S-1", 2}, {"S-2", 1}}},
        OrderCancelled{"O-1", OrderStatus::credit_hold, "admin-1"},
        OrderSentToErp{"O-1"},
        OrderAcceptedByErp{"O-1", "ERP-9"},
        OrderRejectedByErp{"O-1", "blocked partner"},
        ErpDeliveryParked{17, "O-1", oe::events::ErpAction::cancel, 10, "ERP answered 500"},
        ErpDeliveryRetryRequested{17, "admin-1"},
        ErpDeliveryResolved{17},
    };
}

std::string decode_error(std::string_view type, std::string_view data) {
    const auto result = decode(type, type == "TierConfigChanged" ? 2 : 1, data);
    REQUIRE_FALSE(result.ok());
    return result.error().message;
}

}  // namespace

TEST_SUITE("events") {
    TEST_CASE("codec: every event type round-trips encode -> decode to an equal struct") {
        const auto events = one_of_each();
        CHECK(events.size() == std::variant_size_v<DomainEvent> + 1);  // two config values
        std::vector<bool> seen(std::variant_size_v<DomainEvent>, false);
        for (const auto& event : events) {
            seen[event.index()] = true;
            const oe::NewEvent encoded = encode(event);
            CAPTURE(encoded.data);
            CHECK(encoded.type == type_name_of(event));
            CHECK(
                encoded.schema_version ==
                std::visit([](const auto& e) { return std::decay_t<decltype(e)>::schema_version; },
                           event));
            CHECK(encoded.metadata == oe::EventMetadata{});
            CHECK(oe::is_json_object(encoded.data));
            CHECK(encoded.data == to_json(event));
            const auto decoded = decode(encoded.type, encoded.schema_version, encoded.data);
            REQUIRE(decoded.ok());
            CHECK(decoded.value() == event);
            CHECK(to_json(decoded.value()) == encoded.data);
        }
        for (std::size_t i = 0; i < seen.size(); ++i) {
            CAPTURE(i);
            CHECK(seen[i]);
        }
    }

    TEST_CASE("upcast: TierConfigChanged v1 (integer hundredths) reads as v2 (decimal string)") {
        oe::RecordedEvent old;
        old.global_position = 7;
        old.type = "TierConfigChanged";
        old.schema_version = 1;
        old.data = R"({"tier":"GOLD","discount_bps":1200,"loyalty_multiplier_hundredths":175,)"
                   R"("changed_at":"2026-11-26T10:00:00.000000Z"})";
        CHECK_FALSE(decode(old).ok());  // Never read as the current shape without the upcaster.
        oe::events::published_upcasters()->upcast(old);
        CHECK(old.schema_version == 2);
        const auto decoded = decode(old);
        REQUIRE(decoded.ok());
        const auto& e = std::get<TierConfigChanged>(decoded.value());
        CHECK(e.discount_bps == 1200);
        CHECK(e.loyalty_multiplier_hundredths == 175);
        CHECK(to_json(e) == R"({"tier":"GOLD","discount_bps":1200,"loyalty_multiplier":"1.75",)"
                            R"("changed_at":"2026-11-26T10:00:00.000000Z"})");
        oe::RecordedEvent broken = old;
        broken.schema_version = 1;
        broken.data = R"({"tier":"GOLD","discount_bps":1200,"loyalty_multiplier_hundredths":-1})";
        CHECK_THROWS_AS(oe::events::published_upcasters()->upcast(broken), oe::CorruptEvent);
        CHECK(decode_error("TierConfigChanged",
                           R"({"tier":"GOLD","discount_bps":1,"loyalty_multiplier":"1.5"})") ==
              "TierConfigChanged: field 'loyalty_multiplier' must be a decimal string with "
              "exactly two places");
    }

    TEST_CASE("codec: decode(RecordedEvent) reads type, version and data from the envelope") {
        oe::RecordedEvent recorded;
        recorded.type = "OrderSentToErp";
        recorded.schema_version = 1;
        recorded.data = R"({"order_id":"O-9"})";
        const auto decoded = decode(recorded);
        REQUIRE(decoded.ok());
        CHECK(decoded.value() == DomainEvent{OrderSentToErp{"O-9"}});
    }

    TEST_CASE("codec: encoding is byte-for-byte deterministic") {
        CHECK(to_json(two_line_order()) ==
              R"({"order_id":"O-1","partner_id":"P-1","tier":"GOLD","region":"ID-JK",)"
              R"("discount_bps":1000,"loyalty_multiplier_hundredths":150,"lines":[)"
              R"({"sku":"S-1","qty":2,"base_price":100000,"unit_price":90000,)"
              R"("discount_bps":1000,"line_total":180000},)"
              R"({"sku":"S-2","qty":1,"base_price":55555,"unit_price":50000,)"
              R"("discount_bps":1000,"line_total":50000}],)"
              R"("subtotal":230000,"loyalty_points":345,"config_position":42,)"
              R"("note":"rush \"please\"","placed_by":"agent-7","on_behalf_of":"P-1",)"
              R"("placed_at":"2026-11-26T07:17:37.123456Z"})");
        CHECK(to_json(PartnerRegistered{"P-1", "Toko", Tier::bronze, "ID-JK", 1'000'000}) ==
              R"({"partner_id":"P-1","name":"Toko","tier":"BRONZE","region":"ID-JK",)"
              R"("credit_limit":1000000})");
        // std::map sorts regions, so insertion order never shows on the wire.
        CHECK(to_json(WarehouseRegistered{"WH-1", {{"ID-JK", 24}, {"ID-BA", 72}}}) ==
              R"({"warehouse_id":"WH-1","sla_hours":{"ID-BA":72,"ID-JK":24}})");
        CHECK(to_json(StockLevelsSynced{as_of_us, {{"S-1", "WH-1", 3}}}) ==
              R"({"as_of":"2026-11-26T07:17:37.123456Z","levels":)"
              R"([{"sku":"S-1","warehouse_id":"WH-1","on_hand":3}]})");
        CHECK(to_json(SystemConfigChanged{"erp.max_rps", std::string("0.50")}) ==
              R"({"key":"erp.max_rps","value":"0.50","changed_at":"1970-01-01T00:00:00.000000Z"})");
        CHECK(to_json(SystemConfigChanged{"stock.sync_interval_s", std::int64_t{300}}) ==
              R"({"key":"stock.sync_interval_s","value":300,)"
              R"("changed_at":"1970-01-01T00:00:00.000000Z"})");
        CHECK(to_json(OrderCancelled{"O-1", OrderStatus::sent_to_erp, "P-1"}) ==
              R"({"order_id":"O-1","previous_status":"sent_to_erp","cancelled_by":"P-1"})");
        CHECK(to_json(OrderCreditHeld{"O-1", "P-1", 10, -5}) ==
              R"({"order_id":"O-1","partner_id":"P-1","subtotal":10,"available_credit":-5})");
        CHECK(to_json(StockLevelsSynced{0, {}}) ==
              R"({"as_of":"1970-01-01T00:00:00.000000Z","levels":[]})");
    }

    TEST_CASE("codec: an empty on_behalf_of is JSON null both ways") {
        OrderPlaced order = two_line_order();
        order.on_behalf_of.clear();
        const std::string json = to_json(order);
        CHECK(json.find(R"("placed_by":"agent-7","on_behalf_of":null,)") != std::string::npos);
        const auto decoded = decode("OrderPlaced", 1, json);
        REQUIRE(decoded.ok());
        CHECK(std::get<OrderPlaced>(decoded.value()).on_behalf_of.empty());
    }

    TEST_CASE("codec: unknown fields are ignored and key order does not matter on read") {
        const auto decoded = decode(
            "PartnerTierChanged", 1,
            R"({"future":{"nested":[1,2.5,null,{"x":true}]},"tier":"GOLD","partner_id":"P-1"})");
        REQUIRE(decoded.ok());
        CHECK(decoded.value() == DomainEvent{PartnerTierChanged{"P-1", Tier::gold}});
    }

    TEST_CASE("codec: as_of accepts every ISO 8601 UTC form the kernel parses") {
        const auto decoded =
            decode("PartnerDebtSynced", 1,
                   R"({"partner_id":"P-1","outstanding":0,"as_of":"2026-11-26T07:17:37+00:00"})");
        REQUIRE(decoded.ok());
        CHECK(std::get<PartnerDebtSynced>(decoded.value()).as_of_us == 1'795'677'457'000'000);
    }

    TEST_CASE("codec: an unknown type or schema version is an error") {
        CHECK(decode_error("OrderTeleported", "{}") == "unknown event type OrderTeleported");
        CHECK(decode_error("", "{}") == "unknown event type ");
        const auto result = decode("OrderSentToErp", 2, R"({"order_id":"O-1"})");
        REQUIRE_FALSE(result.ok());
        CHECK(result.error().message ==
              "OrderSentToErp: schema_version 2 is not supported (expected 1)");
    }

    TEST_CASE("codec: each kind of bad field gives a DecodeError naming the field") {
        const std::string partner = "PartnerRegistered";
        CHECK(decode_error(partner, R"({"partner_id":"P-1","name":"n","tier":"GOLD",)"
                                    R"("region":"ID-JK"})") ==
              "PartnerRegistered: field 'credit_limit' is missing");
        CHECK(decode_error(partner, R"({"partner_id":7,"name":"n","tier":"GOLD",)"
                                    R"("region":"ID-JK","credit_limit":1})") ==
              "PartnerRegistered: field 'partner_id' must be a string");
        CHECK(decode_error(partner, R"({"partner_id":"P","name":"n","tier":"DIAMOND",)"
                                    R"("region":"ID-JK","credit_limit":1})") ==
              "PartnerRegistered: field 'tier' must be one of BRONZE, SILVER, GOLD, PLATINUM");
        CHECK(decode_error(partner, R"({"partner_id":"P","name":"n","tier":"gold",)"
                                    R"("region":"ID-JK","credit_limit":1})")
                  .find("field 'tier'") != std::string::npos);
        CHECK(decode_error(partner, R"({"partner_id":"P","name":"n","tier":"GOLD",)"
                                    R"("region":"ID-JK","credit_limit":-1})") ==
              "PartnerRegistered: field 'credit_limit' must be >= 0 (got -1)");
        CHECK(decode_error(partner, R"({"partner_id":"P","name":"n","tier":"GOLD",)"
                                    R"("region":"ID-JK","credit_limit":"100"})") ==
              "PartnerRegistered: field 'credit_limit' must be a number");
        for (const char* number : {"1.5", "1.0", "1e3", "1e400", "-1e400", "99999999999999999999",
                                   "9223372036854775808", "-9223372036854775809"}) {
            CAPTURE(number);
            CHECK(
                decode_error("CreditLimitSet",
                             std::string(R"({"partner_id":"P","credit_limit":)") + number + "}") ==
                "CreditLimitSet: field 'credit_limit' must be a whole number within the int64 "
                "range");
        }
        const auto max =
            decode("CreditLimitSet", 1, R"({"partner_id":"P","credit_limit":9223372036854775807})");
        REQUIRE(max.ok());
        CHECK(std::get<CreditLimitSet>(max.value()).credit_limit_idr == INT64_MAX);

        CHECK(decode_error("ProductRegistered",
                           R"({"sku":"S","name":"n","base_price":1,"buffer_qty":-2})") ==
              "ProductRegistered: field 'buffer_qty' must be >= 0 (got -2)");
        CHECK(decode_error("ProductPriceChanged", R"({"sku":"S","base_price":-1})") ==
              "ProductPriceChanged: field 'base_price' must be >= 0 (got -1)");
        CHECK(decode_error("PartnerDebtSynced",
                           R"({"partner_id":"P","outstanding":-1,"as_of":"2026-11-26"})") ==
              "PartnerDebtSynced: field 'outstanding' must be >= 0 (got -1)");
        CHECK(decode_error("PartnerDebtSynced",
                           R"({"partner_id":"P","outstanding":1,"as_of":"yesterday"})") ==
              "PartnerDebtSynced: field 'as_of' must be an ISO 8601 UTC timestamp");
        CHECK(decode_error("PartnerDebtSynced",
                           R"({"partner_id":"P","outstanding":1,"as_of":1795677457})") ==
              "PartnerDebtSynced: field 'as_of' must be a string");
        CHECK(decode_error("StockLevelsSynced",
                           R"({"as_of":"2026-11-26T07:17:37+07:00","levels":[]})") ==
              "StockLevelsSynced: field 'as_of' must be an ISO 8601 UTC timestamp");
        CHECK(decode_error("StockLevelsSynced",
                           R"({"as_of":"2026-11-26T00:00:00Z","levels":[)"
                           R"({"sku":"S","warehouse_id":"W","on_hand":1},)"
                           R"({"sku":"S","warehouse_id":"W","on_hand":-3}]})") ==
              "StockLevelsSynced: field 'levels[1].on_hand' must be >= 0 (got -3)");
        CHECK(decode_error("StockLevelsSynced", R"({"as_of":"2026-11-26","levels":{}})") ==
              "StockLevelsSynced: field 'levels' must be an array");
        CHECK(decode_error("StockLevelsSynced", R"({"as_of":"2026-11-26","levels":[1]})") ==
              "StockLevelsSynced: field 'levels[0]' must be an object");
        CHECK(decode_error("StockLevelsSynced", R"({"as_of":"2026-11-26","levels":[{}]})") ==
              "StockLevelsSynced: field 'levels[0].sku' is missing");
        CHECK(
            decode_error("WarehouseRegistered",
                         R"({"warehouse_id":"W","sla_hours":{"ID-JK":-1}})") ==
            R"(WarehouseRegistered: field 'sla_hours["ID-JK"]' must be within 0..2147483647 (got -1))");
        CHECK(decode_error("WarehouseRegistered",
                           R"({"warehouse_id":"W","sla_hours":{"ID-JK":2147483648}})")
                  .find(R"(field 'sla_hours["ID-JK"]')") != std::string::npos);
        CHECK(decode_error("WarehouseRegistered", R"({"warehouse_id":"W","sla_hours":[24]})") ==
              "WarehouseRegistered: field 'sla_hours' must be an object of region -> hours");
        CHECK(decode_error("TierConfigChanged", R"({"tier":"GOLD","discount_bps":10001,)"
                                                R"("loyalty_multiplier":"1.00"})") ==
              "TierConfigChanged: field 'discount_bps' must be within 0..10000 (got 10001)");
        CHECK(decode_error("SystemConfigChanged", R"({"key":"erp.max_rps","value":"2.5"})") ==
              "SystemConfigChanged: field 'value' must be a decimal string with exactly two "
              "places");
        CHECK(decode_error("SystemConfigChanged", R"({"key":"erp.max_rps","value":2.5})") ==
              "SystemConfigChanged: field 'value' must be a whole number within the int64 range");
        CHECK(decode_error("SystemConfigChanged", R"({"key":"k","value":true})") ==
              "SystemConfigChanged: field 'value' must be a number or a decimal string with "
              "exactly two places");
        CHECK(decode_error("OrderCancelled", R"({"order_id":"O","previous_status":"erp_accepted",)"
                                             R"("cancelled_by":"a"})") ==
              "OrderCancelled: field 'previous_status' must be one of placed, credit_hold, "
              "sent_to_erp");
        CHECK(decode_error("OrderRouted", R"({"order_id":"O","warehouse_id":"W",)"
                                          R"("lines":[{"sku":"S","qty":-1}]})") ==
              "OrderRouted: field 'lines[0].qty' must be >= 0 (got -1)");
        CHECK(decode_error("ErpDeliveryParked", R"({"dead_letter_id":5,"order_id":"O",)"
                                                R"("action":"refund","attempts":1,)"
                                                R"("last_error":"x"})") ==
              "ErpDeliveryParked: field 'action' must be one of create, cancel");
        CHECK(decode_error("ErpDeliveryRetryRequested",
                           R"({"dead_letter_id":0,"requested_by":"a"})") ==
              "ErpDeliveryRetryRequested: field 'dead_letter_id' must be >= 1 (got 0)");
    }

    TEST_CASE("codec: OrderPlaced names the line and field that is wrong") {
        const std::string good = to_json(two_line_order());
        auto with = [&](std::string_view from, std::string_view to) {
            std::string text = good;
            const auto at = text.find(from);
            REQUIRE(at != std::string::npos);
            return text.replace(at, from.size(), to);
        };
        CHECK(decode_error("OrderPlaced", with(R"("qty":1,)", R"("qty":-1,)")) ==
              "OrderPlaced: field 'lines[1].qty' must be >= 0 (got -1)");
        CHECK(decode_error("OrderPlaced", with(R"("unit_price":90000)", R"("unit_price":-9)")) ==
              "OrderPlaced: field 'lines[0].unit_price' must be >= 0 (got -9)");
        CHECK(decode_error("OrderPlaced", with(R"("base_price":55555)", R"("base_price":5e4)")) ==
              "OrderPlaced: field 'lines[1].base_price' must be a whole number within the int64 "
              "range");
        CHECK(decode_error("OrderPlaced", with(R"("on_behalf_of":"P-1")", R"("on_behalf_of":1)")) ==
              "OrderPlaced: field 'on_behalf_of' must be a string or null");
        CHECK(decode_error("OrderPlaced", with(R"("note":"rush \"please\"",)", "")) ==
              "OrderPlaced: field 'note' is missing");
        CHECK(decode_error("OrderPlaced", with(R"("tier":"GOLD")", R"("tier":null)")) ==
              "OrderPlaced: field 'tier' must be a string");
        CHECK(decode_error("OrderPlaced", with(R"("subtotal":230000)", R"("subtotal":-1)")) ==
              "OrderPlaced: field 'subtotal' must be >= 0 (got -1)");
        CHECK(decode_error("OrderPlaced", with(R"("lines":[)", R"("lines":[7,)")) ==
              "OrderPlaced: field 'lines[0]' must be an object");
    }

    TEST_CASE("codec: garbage and hostile JSON give errors and never throw") {
        const std::string deep_array = std::string(100'000, '[') + std::string(100'000, ']');
        const std::string deep_field =
            R"({"order_id":"O","x":)" + std::string(10'000, '{') + std::string(10'000, '}');
        const std::string deep_objects = [] {
            std::string text;
            for (int i = 0; i < 5'000; ++i) {
                text += R"({"a":)";
            }
            text += "1";
            text += std::string(5'000, '}');
            return text;
        }();
        const std::string huge_key = R"({")" + std::string(1 << 20, 'k') + R"(":1})";
        const std::vector<std::string> inputs = {
            "",
            " ",
            "null",
            "[]",
            "42",
            "\"text\"",
            "{",
            "}",
            R"({"order_id":"O"}{"order_id":"P"})",
            R"({"order_id":"O",})",
            R"({"order_id":"O" // comment
            })",
            R"({'order_id':'O'})",
            R"({"order_id":"\ud800"})",
            std::string("{\"order_id\":\"\xff\xfe\"}"),
            std::string("{\"order_id\":\"O\"}\0", 17),
            R"({"order_id":1e400})",
            R"({"order_id":99999999999999999999})",
            R"({"order_id":NaN})",
            R"({"order_id":Infinity})",
            deep_array,
            deep_field,
            deep_objects,
            huge_key,
            std::string(4096, '\xff'),
        };
        for (const auto& event : one_of_each()) {
            const std::string_view type = type_name_of(event);
            for (const auto& input : inputs) {
                CAPTURE(type);
                CAPTURE(input.substr(0, 80));
                CHECK_NOTHROW({
                    const auto result = decode(type, 1, input);
                    CHECK_FALSE(result.ok());
                });
            }
        }
        CHECK_NOTHROW((void)decode("OrderPlaced", 1, std::string(100'000, '{')));
        CHECK_NOTHROW((void)decode(std::string(1 << 16, 'X'), 7, "{}"));
        CHECK(decode_error(std::string(1000, 'X'), "{}").size() < 200);
    }

    TEST_CASE("codec: the exact reader takes encode's output of the hot events") {
        using oe::events::detail::DecodePath;
        OrderPlaced order = two_line_order();
        order.note = "rush, please";  // An escaped quote is left to the general reader.
        const std::vector<DomainEvent> hot = {
            order,
            OrderRouted{"O-1", "WH-1", {{"S-1", 2}, {"S-2", 1}}},
            OrderRouted{"O-1", "WH-1", {}},
            OrderSentToErp{"O-1"},
            OrderAcceptedByErp{"O-1", "ERP-9"},
            OrderCreditHeld{"O-1", "P-1", 230'000, -15'000},
            OrderCancelled{"O-1", OrderStatus::credit_hold, "admin-1"},
            PartnerDebtSynced{"P-1", 1'250'000, as_of_us},
            StockLevelsSynced{as_of_us, {{"S-1", "WH-1", 10}, {"S-2", "WH-2", 0}}},
        };
        for (const auto& event : hot) {
            const oe::NewEvent encoded = encode(event);
            CAPTURE(encoded.data);
            const auto exact = oe::events::detail::decode(encoded.type, encoded.schema_version,
                                                          encoded.data, DecodePath::exact_only);
            REQUIRE(exact.ok());
            CHECK(exact.value() == event);
        }
        // What it leaves to the general reader.
        const auto exact = [](std::string_view type, std::string_view data) {
            return oe::events::detail::decode(type, 1, data, DecodePath::exact_only).ok();
        };
        CHECK(exact("OrderSentToErp", R"({"order_id":"O-1"})"));
        CHECK_FALSE(exact("OrderSentToErp", R"( {"order_id":"O-1"})"));
        CHECK_FALSE(exact("OrderSentToErp", R"({"order_id":"O-1"} )"));
        CHECK_FALSE(exact("OrderSentToErp", R"({"order_id":"O-1","extra":1})"));
        CHECK_FALSE(exact("OrderSentToErp", R"({"order_id":"O-\u0031"})"));
        CHECK_FALSE(exact("OrderSentToErp", "{\"order_id\":\"O-\xc3\xa9\"}"));
        CHECK_FALSE(
            exact("PartnerDebtSynced",
                  R"({"outstanding":1,"partner_id":"P-1","as_of":"2026-11-26T07:17:37Z"})"));
    }

    TEST_CASE("codec: the exact reader and the general reader agree on every input") {
        using oe::events::detail::DecodePath;
        OrderPlaced plain = two_line_order();
        plain.note = "rush, please";
        std::vector<DomainEvent> events = one_of_each();
        events.emplace_back(plain);
        const auto agree = [](std::string_view type, std::uint16_t version, std::string_view data) {
            const auto fast =
                oe::events::detail::decode(type, version, data, DecodePath::exact_first);
            const auto general =
                oe::events::detail::decode(type, version, data, DecodePath::general_only);
            REQUIRE(fast.ok() == general.ok());
            if (fast.ok()) {
                CHECK(fast.value() == general.value());
            } else {
                CHECK(fast.error().message == general.error().message);
            }
        };
        // Every byte of every event's data replaced by, and preceded by, characters that
        // matter to a JSON reader; and every number in it replaced by edge cases.
        const std::string_view replacements[] = {
            " ", "0", "9", "-",    "\"",   "\\", ".", "e",    "}",  "{",  "]",   "[",
            ",", ":", "x", "\x7f", "\x80", "\t", "n", "null", "-0", "00", "1.0", "1e2",
        };
        const std::string_view numbers[] = {
            "0",
            "-0",
            "01",
            "-1",
            "1.5",
            "1e3",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "999999999999999999",
            "1000000000000000000",
            "-999999999999999999",
            "\"7\"",
            "null",
            "true",
            "[]",
        };
        std::size_t checked = 0;
        for (const auto& event : events) {
            const oe::NewEvent encoded = encode(event);
            const std::string& data = encoded.data;
            CAPTURE(data);
            agree(encoded.type, encoded.schema_version, data);
            for (std::size_t i = 0; i <= data.size(); ++i) {
                for (const auto replacement : replacements) {
                    std::string replaced = data;
                    if (i < data.size()) {
                        replaced.replace(i, 1, replacement);
                        CAPTURE(replaced);
                        agree(encoded.type, encoded.schema_version, replaced);
                    }
                    std::string inserted = data;
                    inserted.insert(i, replacement);
                    CAPTURE(inserted);
                    agree(encoded.type, encoded.schema_version, inserted);
                    checked += 2;
                }
            }
            for (std::size_t i = 0; i < data.size(); ++i) {
                if (data[i] < '0' || data[i] > '9' || (i > 0 && data[i - 1] != ':')) {
                    continue;  // Only whole values: a digit right after a key.
                }
                const auto end = data.find_first_not_of("0123456789", i);
                for (const auto number : numbers) {
                    std::string replaced = data;
                    replaced.replace(i, end - i, number);
                    CAPTURE(replaced);
                    agree(encoded.type, encoded.schema_version, replaced);
                    ++checked;
                }
            }
        }
        CHECK(checked > 100'000);
    }

    TEST_CASE("codec: every truncation of every event's data is refused without throwing") {
        for (const auto& event : one_of_each()) {
            const oe::NewEvent encoded = encode(event);
            for (std::size_t n = 0; n < encoded.data.size(); ++n) {
                CAPTURE(encoded.data.substr(0, n));
                const auto result = decode(encoded.type, 1, encoded.data.substr(0, n));
                CHECK_FALSE(result.ok());
            }
        }
    }

    TEST_CASE("codec: encoding an out-of-range field is a bug, not a silent bad event") {
        OrderPlaced order = two_line_order();
        order.lines[1].qty = -1;
        CHECK_THROWS_AS((void)to_json(order), oe::InvariantViolation);
        CHECK_THROWS_AS((void)encode(OrderCancelled{"O", OrderStatus::erp_accepted, "a"}),
                        oe::InvariantViolation);
        CHECK_THROWS_AS((void)encode(SystemConfigChanged{"k", std::string("2.5")}),
                        oe::InvariantViolation);
        CHECK_THROWS_AS((void)encode(TierConfigChanged{Tier::gold, 10'001, 100}),
                        oe::InvariantViolation);
        CHECK_THROWS_AS((void)encode(WarehouseRegistered{"W", {{"ID-JK", -1}}}),
                        oe::InvariantViolation);
        CHECK_THROWS_AS((void)encode(PartnerDebtSynced{"P", 0, INT64_MAX}), oe::InvariantViolation);
    }

    TEST_CASE("codec: timestamps at the edges of four-digit years round-trip") {
        for (const std::int64_t us : {std::int64_t{-62'167'219'200'000'000}, std::int64_t{-1},
                                      std::int64_t{253'402'300'799'999'999}}) {
            CAPTURE(us);
            const DomainEvent event = PartnerDebtSynced{"P", 0, us};
            const auto decoded = decode(encode(event).type, 1, to_json(event));
            REQUIRE(decoded.ok());
            CHECK(decoded.value() == event);
        }
    }

    TEST_CASE("tier: wire names round-trip and nothing else parses") {
        for (const Tier tier : all_tiers) {
            CHECK(parse_tier(to_string(tier)) == tier);
        }
        CHECK(to_string(Tier::platinum) == "PLATINUM");
        CHECK_FALSE(parse_tier("gold"));
        CHECK_FALSE(parse_tier(""));
        CHECK_FALSE(parse_tier("GOLD "));
    }

    TEST_CASE("order status: wire names round-trip; only three are cancellable") {
        const std::vector<std::pair<OrderStatus, std::string_view>> all = {
            {OrderStatus::placed, "placed"},
            {OrderStatus::credit_hold, "credit_hold"},
            {OrderStatus::sent_to_erp, "sent_to_erp"},
            {OrderStatus::erp_accepted, "erp_accepted"},
            {OrderStatus::erp_rejected, "erp_rejected"},
            {OrderStatus::cancelled, "cancelled"},
        };
        for (const auto& [status, name] : all) {
            CHECK(to_string(status) == name);
            CHECK(parse_order_status(name) == status);
        }
        CHECK_FALSE(parse_order_status("PLACED"));
        CHECK(is_cancellable(OrderStatus::credit_hold));
        CHECK_FALSE(is_cancellable(OrderStatus::erp_accepted));
        CHECK_FALSE(is_cancellable(OrderStatus::cancelled));
    }

    TEST_CASE("config: two-place decimals") {
        for (const char* ok : {"0.00", "1.50", "100.00", "9999999999999999.99"}) {
            CAPTURE(ok);
            CHECK(is_two_place_decimal(ok));
        }
        for (const char* bad : {"", "1", "1.5", "1.500", ".50", "-1.50", "+1.50", "1,50", "1.5x",
                                "1e2", "10000000000000000.00", " 1.50"}) {
            CAPTURE(bad);
            CHECK_FALSE(is_two_place_decimal(bad));
        }
    }

    TEST_CASE("streams: ids follow one naming scheme") {
        CHECK(partner_stream("P-001") == "partner-P-001");
        CHECK(product_stream("S-1") == "product-S-1");
        CHECK(warehouse_stream("WH-1") == "warehouse-WH-1");
        CHECK(order_stream("O-01J") == "order-O-01J");
        CHECK(config_stream() == "config");
        CHECK(stock_stream() == "stock-levels");
        CHECK(erp_sync_stream() == "erp-sync");
    }
}
