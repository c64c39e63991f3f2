#include <oe/http/json_request.hpp>

#include <set>

#include <fmt/format.h>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace oe::http {

namespace {

BodyError invalid_json(std::string message) {
    return {"invalid_json", std::move(message)};
}
BodyError invalid_request(std::string message) {
    return {"invalid_request", std::move(message)};
}

/// A SAX pass before building anything: depth and duplicate keys, which boost::json::parse
/// would otherwise accept (keeping the last duplicate).
struct StrictCheck {
    static constexpr std::size_t max_object_size = 10'000;
    static constexpr std::size_t max_array_size = 10'000;
    static constexpr std::size_t max_key_size = 256;
    static constexpr std::size_t max_string_size = 1024 * 1024;
    std::vector<std::set<std::string>> keys;  // One set per open object.
    std::vector<bool> is_object;              // The open containers, innermost last.
    std::string key_part;
    std::string duplicate;
    bool top_object = false;

    bool open(bool object, boost::system::error_code& ec) {
        if (is_object.empty()) {
            top_object = object;
        }
        is_object.push_back(object);
        if (is_object.size() > json_depth_max) {
            ec = boost::json::error::too_deep;
            return false;
        }
        if (object) {
            keys.emplace_back();
        }
        return true;
    }
    bool close(bool object) {
        is_object.pop_back();
        if (object) {
            keys.pop_back();
        }
        return true;
    }
    bool on_document_begin(boost::system::error_code&) { return true; }
    bool on_document_end(boost::system::error_code&) { return true; }
    bool on_object_begin(boost::system::error_code& ec) { return open(true, ec); }
    bool on_object_end(std::size_t, boost::system::error_code&) { return close(true); }
    bool on_array_begin(boost::system::error_code& ec) { return open(false, ec); }
    bool on_array_end(std::size_t, boost::system::error_code&) { return close(false); }
    bool on_key_part(std::string_view part, std::size_t, boost::system::error_code&) {
        key_part.append(part);
        return true;
    }
    bool on_key(std::string_view part, std::size_t, boost::system::error_code& ec) {
        key_part.append(part);
        if (!keys.back().insert(key_part).second) {
            duplicate = key_part;
            ec = boost::json::error::syntax;
            return false;
        }
        key_part.clear();
        return true;
    }
    bool on_string_part(std::string_view, std::size_t, boost::system::error_code&) { return true; }
    bool on_string(std::string_view, std::size_t, boost::system::error_code&) { return true; }
    bool on_number_part(std::string_view, boost::system::error_code&) { return true; }
    bool on_int64(std::int64_t, std::string_view, boost::system::error_code&) { return true; }
    bool on_uint64(std::uint64_t, std::string_view, boost::system::error_code&) { return true; }
    bool on_double(double, std::string_view, boost::system::error_code&) { return true; }
    bool on_bool(bool, boost::system::error_code&) { return true; }
    bool on_null(boost::system::error_code&) { return true; }
    bool on_comment_part(std::string_view, boost::system::error_code&) { return true; }
    bool on_comment(std::string_view, boost::system::error_code&) { return true; }
};

}  // namespace

struct JsonObject::Impl {
    boost::json::object object;
};

JsonObject::JsonObject() : impl_(std::make_unique<Impl>()) {}
JsonObject::JsonObject(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
JsonObject::~JsonObject() = default;
JsonObject::JsonObject(JsonObject&&) noexcept = default;
JsonObject& JsonObject::operator=(JsonObject&&) noexcept = default;

Result<JsonObject, BodyError> JsonObject::parse(std::string_view body) {
    boost::json::basic_parser<StrictCheck> check(boost::json::parse_options{});
    boost::system::error_code ec;
    const auto used = check.write_some(false, body.data(), body.size(), ec);
    if (!check.handler().duplicate.empty()) {
        return invalid_json(fmt::format("duplicate key '{}'", check.handler().duplicate));
    }
    if (ec == boost::json::error::too_deep) {
        return invalid_json(fmt::format("JSON nested deeper than {} levels", json_depth_max));
    }
    if (ec || used != body.size() || !check.done()) {
        return invalid_json("malformed JSON");
    }
    if (!check.handler().top_object) {
        return invalid_json("the body must be a JSON object");
    }
    boost::json::parse_options options;
    options.max_depth = json_depth_max + 1;
    auto value = boost::json::parse(body, ec, {}, options);
    if (ec || !value.is_object()) {
        return invalid_json("malformed JSON");
    }
    auto impl = std::make_unique<Impl>();
    impl->object = std::move(value.as_object());
    return JsonObject(std::move(impl));
}

std::optional<BodyError> JsonObject::only(std::initializer_list<std::string_view> allowed) const {
    for (const auto& [key, value] : impl_->object) {
        bool known = false;
        for (const auto name : allowed) {
            known = known || key == name;
        }
        if (!known) {
            return invalid_request(fmt::format("unknown field '{}'", std::string_view(key)));
        }
    }
    return std::nullopt;
}

bool JsonObject::has(std::string_view field) const {
    return impl_->object.if_contains(field) != nullptr;
}

Result<std::optional<std::string>, BodyError> JsonObject::optional_string(
    std::string_view field, std::size_t bytes_max) const {
    const auto* value = impl_->object.if_contains(field);
    if (value == nullptr || value->is_null()) {
        return std::optional<std::string>{};
    }
    if (!value->is_string()) {
        return invalid_request(fmt::format("field '{}' must be a string", field));
    }
    if (value->get_string().size() > bytes_max) {
        return invalid_request(fmt::format("field '{}' is longer than {} bytes", field, bytes_max));
    }
    return std::optional<std::string>(std::string(value->get_string()));
}

Result<std::string, BodyError> JsonObject::string(std::string_view field,
                                                  std::size_t bytes_max) const {
    auto value = optional_string(field, bytes_max);
    if (!value.ok()) {
        return value.error();
    }
    if (!value.value()) {
        return invalid_request(fmt::format("field '{}' is required", field));
    }
    return std::move(*value.value());
}

Result<std::optional<std::int64_t>, BodyError> JsonObject::optional_integer(
    std::string_view field, std::int64_t min, std::int64_t max) const {
    const auto* value = impl_->object.if_contains(field);
    if (value == nullptr || value->is_null()) {
        return std::optional<std::int64_t>{};
    }
    // Only JSON integers: 5.0, 5e0, "5" and numbers beyond int64 are refused, not converted.
    if (!value->is_int64()) {
        return invalid_request(
            fmt::format("field '{}' must be an integer between {} and {}", field, min, max));
    }
    const auto number = value->get_int64();
    if (number < min || number > max) {
        return invalid_request(
            fmt::format("field '{}' must be an integer between {} and {}", field, min, max));
    }
    return std::optional<std::int64_t>(number);
}

Result<std::int64_t, BodyError> JsonObject::integer(std::string_view field, std::int64_t min,
                                                    std::int64_t max) const {
    auto value = optional_integer(field, min, max);
    if (!value.ok()) {
        return value.error();
    }
    if (!value.value()) {
        return invalid_request(fmt::format("field '{}' is required", field));
    }
    return *value.value();
}

Result<std::vector<JsonObject>, BodyError> JsonObject::objects(std::string_view field,
                                                               std::size_t items_max) const {
    const auto* value = impl_->object.if_contains(field);
    if (value == nullptr || !value->is_array()) {
        return invalid_request(fmt::format("field '{}' must be an array", field));
    }
    const auto& array = value->get_array();
    if (array.size() > items_max) {
        return invalid_request(fmt::format("field '{}' holds at most {} items", field, items_max));
    }
    std::vector<JsonObject> items;
    items.reserve(array.size());
    for (const auto& item : array) {
        if (!item.is_object()) {
            return invalid_request(fmt::format("every item of '{}' must be an object", field));
        }
        auto impl = std::make_unique<Impl>();
        impl->object = item.get_object();
        items.push_back(JsonObject(std::move(impl)));
    }
    return items;
}

Result<std::vector<std::pair<std::string, std::int64_t>>, BodyError> JsonObject::integer_map(
    std::string_view field, std::int64_t min, std::int64_t max, std::size_t items_max) const {
    const auto* value = impl_->object.if_contains(field);
    if (value == nullptr || !value->is_object()) {
        return invalid_request(fmt::format("field '{}' must be an object", field));
    }
    const auto& object = value->get_object();
    if (object.size() > items_max) {
        return invalid_request(
            fmt::format("field '{}' holds at most {} entries", field, items_max));
    }
    std::vector<std::pair<std::string, std::int64_t>> entries;
    for (const auto& [key, item] : object) {
        if (!item.is_int64() || item.get_int64() < min || item.get_int64() > max) {
            return invalid_request(
                fmt::format("values of '{}' must be integers between {} and {}", field, min, max));
        }
        entries.emplace_back(std::string(key), item.get_int64());
    }
    return entries;
}

std::optional<std::string> JsonObject::raw(std::string_view field) const {
    const auto* value = impl_->object.if_contains(field);
    if (value == nullptr) {
        return std::nullopt;
    }
    return boost::json::serialize(*value);
}

}  // namespace oe::http
