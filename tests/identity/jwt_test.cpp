// JWT HS256 validation (SPEC §6). The reference tokens were signed by an independent
// implementation (Python's hmac/hashlib), not by the code under test.

#include <doctest/doctest.h>

#include <oe/auth/jwt.hpp>

using namespace oe;
using namespace oe::auth;

namespace {

constexpr std::int64_t now_s = 1'800'000'000;
constexpr const char* secret = "s3cret";
// {"sub":"user-1","role":"reseller","partner_id":"P-001","exp":2000000000}
constexpr const char* reseller_token =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiJ1c2VyLTEiLCJyb2xlIjoicmVzZWxsZXIiLCJwYXJ0bmVyX2lkIjoiUC0wMDEiLCJleHAiOjIwMDAwMDAwMD"
    "B9.6_EYMtTfdxsEW8KQNSKiKLJ1YM7gkekdW8Bb3a9H3KI";
// {"sub":"agent-1","role":"agent","partners":["P-001","P-002"],"exp":2000000000}, no typ
constexpr const char* agent_token =
    "eyJhbGciOiJIUzI1NiJ9."
    "eyJzdWIiOiJhZ2VudC0xIiwicm9sZSI6ImFnZW50IiwicGFydG5lcnMiOlsiUC0wMDEiLCJQLTAwMiJdLCJleHAiOjIwMD"
    "AwMDAwMDB9.k6a7tTNvL2fNUu9h3GEk2XAI_sShz9WpcXqbYEHtbhE";

TokenRejected refusal(std::string_view token, std::int64_t now = now_s) {
    auto r = verify_token(token, secret, now);
    REQUIRE_FALSE(r.ok());
    return r.error();
}

std::string replace_part(std::string token, int part, const std::string& with) {
    const auto a = token.find('.');
    const auto b = token.find('.', a + 1);
    if (part == 0) {
        return with + token.substr(a);
    }
    if (part == 1) {
        return token.substr(0, a + 1) + with + token.substr(b);
    }
    return token.substr(0, b + 1) + with;
}

}  // namespace

TEST_SUITE("identity") {
    TEST_CASE("jwt: tokens signed elsewhere are accepted with their claims") {
        auto reseller = verify_token(reseller_token, secret, now_s);
        REQUIRE(reseller.ok());
        CHECK(reseller.value().subject == "user-1");
        CHECK(reseller.value().role == Role::reseller);
        CHECK(reseller.value().partner_id == "P-001");
        auto agent = verify_token(agent_token, secret, now_s);
        REQUIRE(agent.ok());
        CHECK(agent.value().partners == std::vector<std::string>{"P-001", "P-002"});
    }

    TEST_CASE("jwt: none, other algorithms, bad signatures, expiry and garbage are refused") {
        // {"alg":"none"} with the same payload and no signature.
        CHECK(refusal(replace_part(replace_part(reseller_token, 2, ""), 0,
                                   "eyJhbGciOiJub25lIn0")) == TokenRejected::wrong_algorithm);
        // {"alg":"RS256","typ":"JWT"}
        CHECK(refusal(replace_part(reseller_token, 0, "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9")) ==
              TokenRejected::wrong_algorithm);
        // {"alg":"HS256 "} (a near miss)
        CHECK(refusal(replace_part(reseller_token, 0, "eyJhbGciOiJIUzI1NiAifQ")) ==
              TokenRejected::wrong_algorithm);
        CHECK(verify_token(reseller_token, "other secret", now_s).error() ==
              TokenRejected::bad_signature);
        // A payload changed after signing: {"sub":"user-1","role":"admin",…}
        CHECK(refusal(replace_part(
                  reseller_token, 1,
                  "eyJzdWIiOiJ1c2VyLTEiLCJyb2xlIjoiYWRtaW4iLCJleHAiOjIwMDAwMDAwMDB9")) ==
              TokenRejected::bad_signature);
        CHECK(refusal(reseller_token, 2'000'000'000) == TokenRejected::expired);
        CHECK(refusal(reseller_token, 2'000'000'001) == TokenRejected::expired);
        CHECK(refusal("") == TokenRejected::malformed);
        CHECK(refusal("abc") == TokenRejected::malformed);
        CHECK(refusal("a.b") == TokenRejected::malformed);
        CHECK(refusal("a.b.c.d") == TokenRejected::malformed);
        CHECK(refusal(std::string(reseller_token) + "=") == TokenRejected::malformed);
        CHECK(refusal("e30.e30.!!") == TokenRejected::malformed);
        CHECK(refusal(std::string(9000, 'a')) == TokenRejected::malformed);
    }

    TEST_CASE("jwt: minted tokens round-trip; claims are checked after the signature") {
        const Principal agent{"agent-7", Role::agent, "", {"P-1", "P-2"}};
        auto back = verify_token(mint_token(agent, secret, now_s + 60), secret, now_s);
        REQUIRE(back.ok());
        CHECK(back.value().subject == "agent-7");
        CHECK(back.value().partners == agent.partners);
        CHECK(refusal(mint_token(Principal{"a", Role::agent, "", {}}, secret, now_s + 60)) ==
              TokenRejected::missing_partner);
        CHECK(refusal(mint_token(Principal{"r", Role::reseller, "", {}}, secret, now_s + 60)) ==
              TokenRejected::missing_partner);
        CHECK(refusal(mint_token(Principal{"f", Role::finance, "", {}}, secret, now_s)) ==
              TokenRejected::expired);
        CHECK(verify_token(mint_token(Principal{"f", Role::finance, "", {}}, secret, now_s + 1),
                           secret, now_s)
                  .ok());
    }

}  // TEST_SUITE
