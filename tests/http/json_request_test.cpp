// Strict request JSON (SPEC §6): malformed, too deep, duplicate keys, unknown fields, wrong
// types and huge numbers are refused with the right code.

#include <doctest/doctest.h>

#include <oe/http/json_request.hpp>

using oe::http::JsonObject;

namespace {

std::string code_of(std::string_view body) {
    auto parsed = JsonObject::parse(body);
    REQUIRE_FALSE(parsed.ok());
    return parsed.error().code;
}

}  // namespace

TEST_SUITE("http") {
    TEST_CASE("json: only one well-formed, shallow object without duplicate keys is a body") {
        CHECK(code_of("") == "invalid_json");
        CHECK(code_of("{") == "invalid_json");
        CHECK(code_of("[]") == "invalid_json");
        CHECK(code_of("42") == "invalid_json");
        CHECK(code_of(R"({"a":1} {"b":2})") == "invalid_json");
        CHECK(code_of(R"({"a":1,"a":2})") == "invalid_json");
        CHECK(code_of(R"({"lines":[{"sku":"A","sku":"B"}]})") == "invalid_json");
        CHECK(code_of(std::string(10'000, '[') + std::string(10'000, ']')) == "invalid_json");
        CHECK(code_of("{\"a\":" + std::string(17, '[') + std::string(17, ']') + "}") ==
              "invalid_json");
        CHECK(JsonObject::parse(R"({"a":{"b":{"c":[1,2,{"d":null}]}}})").ok());
        // The same key in sibling objects is not a duplicate.
        CHECK(JsonObject::parse(R"({"lines":[{"sku":"A"},{"sku":"B"}]})").ok());
    }

    TEST_CASE("json: fields are typed, ranged and allow-listed") {
        auto body = JsonObject::parse(
            R"({"lines":[{"sku":"S-1","qty":3}],"note":"hi","price":1,"big":99999999999999999999,)"
            R"("float":2.0,"neg":-5,"text":"5","sla":{"ID-JK":24,"ID-JB":-1}})");
        REQUIRE(body.ok());
        const auto& o = body.value();
        CHECK(o.only({"lines", "note"})->message == "unknown field 'price'");
        CHECK_FALSE(o.only({"lines", "note", "price", "big", "float", "neg", "text", "sla"}));
        CHECK(o.string("note", 10).value() == "hi");
        CHECK(o.string("note", 1).error().code == "invalid_request");
        CHECK(o.string("missing", 10).error().message == "field 'missing' is required");
        CHECK_FALSE(o.optional_string("missing", 10).value().has_value());
        CHECK(o.integer("big", 0, 100).error().code == "invalid_request");
        CHECK(o.integer("float", 0, 100).error().code == "invalid_request");
        CHECK(o.integer("text", 0, 100).error().code == "invalid_request");
        CHECK(o.integer("neg", 1, 100'000).error().code == "invalid_request");
        CHECK(o.integer("neg", -10, 0).value() == -5);
        auto lines = o.objects("lines", 200);
        REQUIRE(lines.ok());
        CHECK(lines.value().at(0).integer("qty", 1, 100'000).value() == 3);
        CHECK(o.objects("lines", 0).error().code == "invalid_request");
        CHECK(o.objects("note", 10).error().code == "invalid_request");
        CHECK(o.integer_map("sla", 0, 8760, 10).error().code == "invalid_request");
        CHECK(o.raw("note") == std::optional<std::string>("\"hi\""));
    }

}  // TEST_SUITE
