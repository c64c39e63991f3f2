#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <oe/auth/identity.hpp>
#include <oe/kernel/result.hpp>

namespace oe::auth {

/// Why a bearer token was refused. All of them answer 401 `unauthenticated`; the reason is for
/// logs. Numbers are stable.
enum class TokenRejected : std::uint8_t {
    malformed = 1,        // Not three base64url parts, bad JSON, missing or mistyped claims.
    wrong_algorithm = 2,  // Anything but HS256 — "none" included.
    bad_signature = 3,
    expired = 4,
    unknown_role = 5,
    missing_partner = 6,  // A reseller without partner_id, an agent without partners.
};

[[nodiscard]] std::string_view to_string(TokenRejected reason);

/// Limits on what a token may be, units last.
inline constexpr std::size_t token_bytes_max = 8 * 1024;
inline constexpr std::size_t agent_partners_max = 1'000;

/// Validates an HS256 JWT signed with `secret` (SPEC §6: claims sub, role, partner_id,
/// partners, exp) at `now_s` (seconds since the epoch) and returns the principal. The signature
/// is compared in constant time; the header must say alg HS256 (typ, when present, JWT).
[[nodiscard]] Result<Principal, TokenRejected> verify_token(std::string_view token,
                                                            std::string_view secret,
                                                            std::int64_t now_s);

/// Mints an HS256 token for `principal` expiring at `exp_s` (orderengine token).
[[nodiscard]] std::string mint_token(const Principal& principal, std::string_view secret,
                                     std::int64_t exp_s);

}  // namespace oe::auth
