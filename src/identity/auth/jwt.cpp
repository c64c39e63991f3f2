#include <oe/auth/jwt.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace oe::auth {

namespace {

constexpr char base64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() * 4 + 2) / 3);
    std::uint32_t buffer = 0;
    int bits = 0;
    for (const char c : bytes) {
        buffer = (buffer << 8) | static_cast<unsigned char>(c);
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out.push_back(base64url_alphabet[(buffer >> bits) & 0x3F]);
        }
    }
    if (bits > 0) {
        out.push_back(base64url_alphabet[(buffer << (6 - bits)) & 0x3F]);
    }
    return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size() * 3 / 4);
    std::uint32_t buffer = 0;
    int bits = 0;
    for (const char c : text) {
        int value = -1;
        if (c >= 'A' && c <= 'Z') {
            value = c - 'A';
        } else if (c >= 'a' && c <= 'z') {
            value = c - 'a' + 26;
        } else if (c >= '0' && c <= '9') {
            value = c - '0' + 52;
        } else if (c == '-') {
            value = 62;
        } else if (c == '_') {
            value = 63;
        } else {
            return std::nullopt;  // Padding and the standard alphabet are not base64url.
        }
        buffer = (buffer << 6) | static_cast<std::uint32_t>(value);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((buffer >> bits) & 0xFF));
        }
    }
    if (bits >= 6) {
        return std::nullopt;  // A length no encoder produces.
    }
    return out;
}

std::string hmac_sha256(std::string_view secret, std::string_view message) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest.data(),
         &length);
    return std::string(reinterpret_cast<const char*>(digest.data()), length);
}

std::optional<boost::json::object> json_object(std::string_view text) {
    boost::json::parse_options options;
    options.max_depth = 8;
    boost::system::error_code ec;
    auto value = boost::json::parse(text, ec, {}, options);
    if (ec || !value.is_object()) {
        return std::nullopt;
    }
    return std::move(value.as_object());
}

}  // namespace

std::string_view to_string(TokenRejected reason) {
    switch (reason) {
        case TokenRejected::malformed:
            return "malformed token";
        case TokenRejected::wrong_algorithm:
            return "wrong algorithm";
        case TokenRejected::bad_signature:
            return "bad signature";
        case TokenRejected::expired:
            return "token expired";
        case TokenRejected::unknown_role:
            return "unknown role";
        case TokenRejected::missing_partner:
            return "token names no partner";
    }
    return "malformed token";
}

Result<Principal, TokenRejected> verify_token(std::string_view token, std::string_view secret,
                                              std::int64_t now_s) {
    if (token.empty() || token.size() > token_bytes_max) {
        return TokenRejected::malformed;
    }
    const auto first_dot = token.find('.');
    const auto second_dot =
        first_dot == std::string_view::npos ? first_dot : token.find('.', first_dot + 1);
    if (second_dot == std::string_view::npos || token.find('.', second_dot + 1) != token.npos) {
        return TokenRejected::malformed;
    }
    const auto header_text = base64url_decode(token.substr(0, first_dot));
    const auto payload_text =
        base64url_decode(token.substr(first_dot + 1, second_dot - first_dot - 1));
    const auto signature = base64url_decode(token.substr(second_dot + 1));
    if (!header_text || !payload_text || !signature) {
        return TokenRejected::malformed;
    }
    const auto header = json_object(*header_text);
    if (!header) {
        return TokenRejected::malformed;
    }
    // The algorithm is fixed by us, never taken from the token: "none", RS256 and friends are
    // refused before any signature is looked at.
    const auto* alg = header->if_contains("alg");
    if (alg == nullptr || !alg->is_string() || alg->get_string() != "HS256") {
        return TokenRejected::wrong_algorithm;
    }
    const auto* typ = header->if_contains("typ");
    if (typ != nullptr && (!typ->is_string() || typ->get_string() != "JWT")) {
        return TokenRejected::malformed;
    }
    const std::string expected = hmac_sha256(secret, token.substr(0, second_dot));
    if (signature->size() != expected.size() ||
        CRYPTO_memcmp(signature->data(), expected.data(), expected.size()) != 0) {
        return TokenRejected::bad_signature;
    }
    const auto claims = json_object(*payload_text);
    if (!claims) {
        return TokenRejected::malformed;
    }
    const auto* sub = claims->if_contains("sub");
    const auto* role = claims->if_contains("role");
    const auto* exp = claims->if_contains("exp");
    if (sub == nullptr || !sub->is_string() || sub->get_string().empty() || role == nullptr ||
        !role->is_string() || exp == nullptr || !(exp->is_int64() || exp->is_uint64())) {
        return TokenRejected::malformed;
    }
    const auto exp_s = exp->is_int64() ? exp->get_int64() : INT64_MAX;
    if (exp_s <= now_s) {
        return TokenRejected::expired;
    }
    const auto parsed_role = parse_role(role->get_string());
    if (!parsed_role) {
        return TokenRejected::unknown_role;
    }
    Principal principal;
    principal.subject = std::string(sub->get_string());
    principal.role = *parsed_role;
    if (const auto* partner = claims->if_contains("partner_id");
        partner != nullptr && partner->is_string()) {
        principal.partner_id = std::string(partner->get_string());
    }
    if (const auto* partners = claims->if_contains("partners");
        partners != nullptr && partners->is_array()) {
        if (partners->get_array().size() > agent_partners_max) {
            return TokenRejected::malformed;
        }
        for (const auto& p : partners->get_array()) {
            if (!p.is_string()) {
                return TokenRejected::malformed;
            }
            principal.partners.emplace_back(p.get_string());
        }
    }
    if ((principal.role == Role::reseller && principal.partner_id.empty()) ||
        (principal.role == Role::agent && principal.partners.empty())) {
        return TokenRejected::missing_partner;
    }
    return principal;
}

std::string mint_token(const Principal& principal, std::string_view secret, std::int64_t exp_s) {
    boost::json::object claims;
    claims["sub"] = principal.subject;
    claims["role"] = std::string(to_string(principal.role));
    if (!principal.partner_id.empty()) {
        claims["partner_id"] = principal.partner_id;
    }
    if (!principal.partners.empty()) {
        boost::json::array partners;
        for (const auto& p : principal.partners) {
            partners.emplace_back(p);
        }
        claims["partners"] = std::move(partners);
    }
    claims["exp"] = exp_s;
    const std::string signing_input = base64url_encode(R"({"alg":"HS256","typ":"JWT"})") + "." +
                                      base64url_encode(boost::json::serialize(claims));
    return signing_input + "." + base64url_encode(hmac_sha256(secret, signing_input));
}

}  // namespace oe::auth
