#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <oe/kernel/result.hpp>

namespace oe::http {

/// A request body that cannot be taken: the SPEC §6 code (invalid_json or invalid_request)
/// and a message for the client.
struct BodyError {
    std::string code;
    std::string message;
};

/// Limits on request JSON, units last.
inline constexpr std::size_t json_depth_max = 16;

/// A strictly parsed JSON request object. Parsing refuses what a lenient parser would guess
/// at: nesting deeper than json_depth_max, duplicate keys (which value would count?), a
/// top-level value that is not an object. Field access refuses unknown fields, wrong types,
/// non-integers where integers belong and numbers outside the field's range — so a client can
/// never sneak in a field (a price) the server did not ask for.
class JsonObject {
  public:
    /// Parses a body. Errors: invalid_json (syntax, depth, duplicates, not an object).
    [[nodiscard]] static Result<JsonObject, BodyError> parse(std::string_view body);

    JsonObject();
    ~JsonObject();
    JsonObject(JsonObject&&) noexcept;
    JsonObject& operator=(JsonObject&&) noexcept;

    /// invalid_request naming the first field outside `allowed`, if any.
    [[nodiscard]] std::optional<BodyError> only(
        std::initializer_list<std::string_view> allowed) const;

    [[nodiscard]] bool has(std::string_view field) const;

    /// A required (or, with the optional variants, present-or-absent) field of a given type.
    [[nodiscard]] Result<std::string, BodyError> string(std::string_view field,
                                                        std::size_t bytes_max) const;
    [[nodiscard]] Result<std::optional<std::string>, BodyError> optional_string(
        std::string_view field, std::size_t bytes_max) const;
    [[nodiscard]] Result<std::int64_t, BodyError> integer(std::string_view field, std::int64_t min,
                                                          std::int64_t max) const;
    [[nodiscard]] Result<std::optional<std::int64_t>, BodyError> optional_integer(
        std::string_view field, std::int64_t min, std::int64_t max) const;
    /// An array of objects (each strictly an object), at most `items_max` of them.
    [[nodiscard]] Result<std::vector<JsonObject>, BodyError> objects(std::string_view field,
                                                                     std::size_t items_max) const;
    /// An object of string keys to integers in range (e.g. sla_hours).
    [[nodiscard]] Result<std::vector<std::pair<std::string, std::int64_t>>, BodyError> integer_map(
        std::string_view field, std::int64_t min, std::int64_t max, std::size_t items_max) const;
    /// The raw JSON of a field (for values whose type depends on something else), if present.
    [[nodiscard]] std::optional<std::string> raw(std::string_view field) const;

  private:
    struct Impl;
    explicit JsonObject(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace oe::http
