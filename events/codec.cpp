#include <charconv>
#include <concepts>
#include <cstring>
#include <exception>
#include <limits>
#include <optional>
#include <type_traits>
#include <utility>

#include <fmt/format.h>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <oe/events/events.hpp>
#include <oe/kernel/invariant.hpp>
#include <oe/kernel/json_text.hpp>
#include <oe/kernel/time.hpp>

// One field list per event, walked by a Writer (encode) or a Reader (decode), so the JSON keys,
// their order and each field's range are written down exactly once.

namespace oe::events {

namespace {

/// Inclusive bounds of an integer field. Encode asserts them, decode reports them.
struct Range {
    std::int64_t min;
    std::int64_t max;
};

constexpr std::int64_t int64_max = std::numeric_limits<std::int64_t>::max();
constexpr Range any_int64{std::numeric_limits<std::int64_t>::min(), int64_max};
constexpr Range non_negative{0, int64_max};
constexpr Range positive{1, int64_max};
constexpr Range non_negative_int32{0, std::numeric_limits<std::int32_t>::max()};
constexpr Range basis_points{0, 10'000};

// "0000-01-01T00:00:00.000000Z" and "9999-12-31T23:59:59.999999Z": the instants a four-digit
// ISO 8601 year can write, so every timestamp we encode parses back.
constexpr std::int64_t timestamp_us_min = -62'167'219'200'000'000;
constexpr std::int64_t timestamp_us_max = 253'402'300'799'999'999;

// Our events nest three levels; the rest is room for fields a newer writer may add.
constexpr unsigned json_depth_max = 64;

// Decode errors quote names and values from untrusted input; keep them short.
constexpr std::size_t quoted_bytes_max = 64;

std::string_view shorten(std::string_view text) {
    return text.substr(0, quoted_bytes_max);
}

std::string describe(Range range) {
    if (range.max == int64_max) {
        return fmt::format(">= {}", range.min);
    }
    return fmt::format("within {}..{}", range.min, range.max);
}

void append_integer(std::string& out, std::int64_t value) {
    char buffer[24];
    const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
    OE_INVARIANT(ec == std::errc{}, "int64 fits 24 characters");
    out.append(buffer, end);
}

/// Writes one JSON object's fields, compact, in call order.
class Writer {
  public:
    Writer(std::string& out, std::string_view type, std::string prefix)
        : out_(out), type_(type), prefix_(std::move(prefix)) {}

    void text(std::string_view key, const std::string& value) {
        append_key(key);
        append_json_string(out_, value);
    }

    void nullable_text(std::string_view key, const std::string& value) {
        append_key(key);
        if (value.empty()) {
            out_ += "null";
        } else {
            append_json_string(out_, value);
        }
    }

    template <std::integral Int>
    void integer(std::string_view key, Int value, Range range) {
        const auto wide = static_cast<std::int64_t>(value);
        OE_INVARIANT(wide >= range.min && wide <= range.max,
                     what(key, fmt::format("is {}, must be {}", wide, describe(range))));
        append_key(key);
        append_integer(out_, wide);
    }

    void tier(std::string_view key, Tier value) {
        append_key(key);
        append_json_string(out_, to_string(value));
    }

    /// Hundredths as a two-place decimal string: 175 -> "1.75".
    void hundredths(std::string_view key, std::int32_t value) {
        OE_INVARIANT(value >= 0, what(key, fmt::format("is {}, must be >= 0", value)));
        append_key(key);
        append_json_string(out_, fmt::format("{}.{:02}", value / 100, value % 100));
    }

    void erp_action(std::string_view key, ErpAction value) {
        append_key(key);
        append_json_string(out_, to_string(value));
    }

    void cancellable_status(std::string_view key, OrderStatus value) {
        OE_INVARIANT(is_cancellable(value),
                     what(key, fmt::format("is {}, not a cancellable status", to_string(value))));
        append_key(key);
        append_json_string(out_, to_string(value));
    }

    void timestamp(std::string_view key, std::int64_t us) {
        OE_INVARIANT(us >= timestamp_us_min && us <= timestamp_us_max,
                     what(key, fmt::format("is {} us, outside years 0000..9999", us)));
        append_key(key);
        append_json_string(out_, format_iso8601_us(us));
    }

    void config_value(std::string_view key, const ConfigValue& value) {
        append_key(key);
        if (const auto* number = std::get_if<std::int64_t>(&value)) {
            append_integer(out_, *number);
            return;
        }
        const auto& decimal = std::get<std::string>(value);
        OE_INVARIANT(is_two_place_decimal(decimal), what(key, "is not a two-place decimal"));
        append_json_string(out_, decimal);
    }

    void hours_by_region(std::string_view key, const std::map<std::string, std::int32_t>& hours) {
        append_key(key);
        out_.push_back('{');
        bool first = true;
        for (const auto& [region, value] : hours) {
            OE_INVARIANT(value >= 0, what(key, fmt::format("has {} hours for {}", value, region)));
            if (!first) {
                out_.push_back(',');
            }
            first = false;
            append_json_string(out_, region);
            out_.push_back(':');
            append_integer(out_, value);
        }
        out_.push_back('}');
    }

    template <typename T, typename Fields>
    void objects(std::string_view key, const std::vector<T>& items, Fields item_fields) {
        append_key(key);
        out_.push_back('[');
        for (std::size_t i = 0; i < items.size(); ++i) {
            if (i > 0) {
                out_.push_back(',');
            }
            out_.push_back('{');
            Writer item(out_, type_, fmt::format("{}{}[{}].", prefix_, key, i));
            item_fields(item, items[i]);
            out_.push_back('}');
        }
        out_.push_back(']');
    }

  private:
    void append_key(std::string_view key) {
        if (!first_) {
            out_.push_back(',');
        }
        first_ = false;
        append_json_string(out_, key);
        out_.push_back(':');
    }

    std::string what(std::string_view key, std::string_view problem) const {
        return fmt::format("{}: field '{}{}' {}", type_, prefix_, key, problem);
    }

    std::string& out_;
    std::string_view type_;
    std::string prefix_;  // Path of the enclosing array element, e.g. "lines[2]."
    bool first_ = true;
};

/// Reads one JSON object's fields into a struct. Stops at the first problem and records it;
/// later calls do nothing, so a field list reads straight through without checks.
class Reader {
  public:
    Reader(const boost::json::object& object, std::string_view type, std::string prefix,
           std::optional<std::string>& error)
        : object_(object), type_(type), prefix_(std::move(prefix)), error_(error) {}

    void text(std::string_view key, std::string& value) {
        const auto* found = field(key);
        if (found == nullptr) {
            return;
        }
        if (!found->is_string()) {
            fail(key, "must be a string");
            return;
        }
        value = std::string(found->get_string());
    }

    void nullable_text(std::string_view key, std::string& value) {
        const auto* found = field(key);
        if (found == nullptr) {
            return;
        }
        if (found->is_null()) {
            value.clear();
        } else if (found->is_string()) {
            value = std::string(found->get_string());
        } else {
            fail(key, "must be a string or null");
        }
    }

    template <std::integral Int>
    void integer(std::string_view key, Int& value, Range range) {
        const auto* found = field(key);
        if (found == nullptr) {
            return;
        }
        const std::optional<std::int64_t> number = whole_number(key, *found);
        if (!number) {
            return;
        }
        if (*number < range.min || *number > range.max) {
            fail(key, fmt::format("must be {} (got {})", describe(range), *number));
            return;
        }
        value = static_cast<Int>(*number);
    }

    void tier(std::string_view key, Tier& value) {
        const auto parsed = parse_string(key, parse_tier);
        if (!parsed) {
            return;
        }
        if (!*parsed) {
            fail(key, "must be one of BRONZE, SILVER, GOLD, PLATINUM");
            return;
        }
        value = **parsed;
    }

    void hundredths(std::string_view key, std::int32_t& value) {
        const auto* found = field(key);
        if (found == nullptr) {
            return;
        }
        if (!found->is_string() || !is_two_place_decimal(found->get_string())) {
            fail(key, "must be a decimal string with exactly two places");
            return;
        }
        const std::string_view text = found->get_string();
        const auto dot = text.find('.');
        std::int64_t whole = 0;
        for (const char c : text.substr(0, dot)) {
            whole = whole * 10 + (c - '0');
            if (whole > std::numeric_limits<std::int32_t>::max() / 100) {
                fail(key, "is too large");
                return;
            }
        }
        value = static_cast<std::int32_t>(whole * 100 + (text[dot + 1] - '0') * 10 +
                                          (text[dot + 2] - '0'));
    }

    void erp_action(std::string_view key, ErpAction& value) {
        const auto parsed = parse_string(key, parse_erp_action);
        if (!parsed) {
            return;
        }
        if (!*parsed) {
            fail(key, "must be one of create, cancel");
            return;
        }
        value = **parsed;
    }

    void cancellable_status(std::string_view key, OrderStatus& value) {
        const auto parsed = parse_string(key, parse_order_status);
        if (!parsed) {
            return;
        }
        if (!*parsed || !is_cancellable(**parsed)) {
            fail(key, "must be one of placed, credit_hold, sent_to_erp");
            return;
        }
        value = **parsed;
    }

    void timestamp(std::string_view key, std::int64_t& us) {
        const auto parsed = parse_string(key, parse_iso8601_us);
        if (!parsed) {
            return;
        }
        if (!*parsed) {
            fail(key, "must be an ISO 8601 UTC timestamp");
            return;
        }
        us = **parsed;
    }

    void config_value(std::string_view key, ConfigValue& value) {
        const auto* found = field(key);
        if (found == nullptr) {
            return;
        }
        if (found->is_string()) {
            std::string decimal(found->get_string());
            if (!is_two_place_decimal(decimal)) {
                fail(key, "must be a decimal string with exactly two places");
                return;
            }
            value = std::move(decimal);
            return;
        }
        if (!found->is_number()) {
            fail(key, "must be a number or a decimal string with exactly two places");
            return;
        }
        if (const auto number = whole_number(key, *found)) {
            value = *number;
        }
    }

    void hours_by_region(std::string_view key, std::map<std::string, std::int32_t>& hours) {
        const auto* found = field(key);
        if (found == nullptr) {
            return;
        }
        if (!found->is_object()) {
            fail(key, "must be an object of region -> hours");
            return;
        }
        hours.clear();
        for (const auto& entry : found->get_object()) {
            const std::string region(entry.key());
            const std::string path = fmt::format("{}[\"{}\"]", key, shorten(region));
            const auto number = whole_number(path, entry.value());
            if (!number) {
                return;
            }
            if (*number < 0 || *number > non_negative_int32.max) {
                fail(path,
                     fmt::format("must be {} (got {})", describe(non_negative_int32), *number));
                return;
            }
            hours[region] = static_cast<std::int32_t>(*number);
        }
    }

    template <typename T, typename Fields>
    void objects(std::string_view key, std::vector<T>& items, Fields item_fields) {
        const auto* found = field(key);
        if (found == nullptr) {
            return;
        }
        if (!found->is_array()) {
            fail(key, "must be an array");
            return;
        }
        const auto& array = found->get_array();
        items.clear();
        items.reserve(array.size());
        for (std::size_t i = 0; i < array.size(); ++i) {
            if (!array[i].is_object()) {
                fail(fmt::format("{}[{}]", key, i), "must be an object");
                return;
            }
            Reader item(array[i].get_object(), type_, fmt::format("{}{}[{}].", prefix_, key, i),
                        error_);
            T value{};
            item_fields(item, value);
            if (error_) {
                return;
            }
            items.push_back(std::move(value));
        }
    }

  private:
    const boost::json::value* field(std::string_view key) {
        if (error_) {
            return nullptr;
        }
        const auto* found = object_.if_contains(key);
        if (found == nullptr) {
            fail(key, "is missing");
        }
        return found;
    }

    /// Boost.JSON keeps integers that fit int64 as int64; anything else numeric (a fraction,
    /// an exponent, above int64) arrives as uint64 or double and is refused, never rounded.
    std::optional<std::int64_t> whole_number(std::string_view key, const boost::json::value& v) {
        if (v.is_int64()) {
            return v.get_int64();
        }
        if (v.is_uint64() || v.is_double()) {
            fail(key, "must be a whole number within the int64 range");
        } else {
            fail(key, "must be a number");
        }
        return std::nullopt;
    }

    /// Outer nothing: the field is missing or not a string (already reported). Inner nothing:
    /// `parse` refused the string (the caller reports it with its own wording).
    template <typename Parse>
    auto parse_string(std::string_view key, Parse parse)
        -> std::optional<decltype(parse(std::string_view{}))> {
        const auto* found = field(key);
        if (found == nullptr) {
            return std::nullopt;
        }
        if (!found->is_string()) {
            fail(key, "must be a string");
            return std::nullopt;
        }
        const auto& text = found->get_string();
        return parse(std::string_view(text.data(), text.size()));
    }

    void fail(std::string_view key, std::string_view problem) {
        if (!error_) {
            error_ = fmt::format("{}: field '{}{}' {}", type_, prefix_, key, problem);
        }
    }

    const boost::json::object& object_;
    std::string_view type_;
    std::string prefix_;  // Path of the enclosing array element, e.g. "lines[2]."
    std::optional<std::string>& error_;
};

/// The fast path of decode: reads data exactly as Writer writes it — compact, keys in the
/// field list's order, nothing else — straight into the struct, with no JSON tree. Anything
/// else, however valid (whitespace, another key order, extra fields, escapes, non-ASCII
/// text, fractions, a value out of range), makes it give up, and the general Reader decodes
/// the data from the start; so it changes how fast an event decodes, never what decoding
/// gives. Folding the log decodes every event: this is the hot path of replays and rebuilds.
class ExactReader {
  public:
    /// Where a read stands; `ok` turns false at the first surprise and stays false.
    struct Cursor {
        const char* at;
        const char* end;
        bool ok = true;
    };

    /// Call with the cursor just past an object's '{'.
    explicit ExactReader(Cursor& cursor) : c_(cursor) {}

    /// The object's closing '}'.
    void close() { expect('}'); }

    [[gnu::always_inline]] void text(std::string_view key, std::string& value) {
        if (const auto text = string_field(key)) {
            value.assign(text->data(), text->size());
        }
    }

    [[gnu::always_inline]] void nullable_text(std::string_view key, std::string& value) {
        if (!open_field(key)) {
            return;
        }
        if (literal("null")) {
            value.clear();
        } else if (const auto text = string_value()) {
            value.assign(text->data(), text->size());
        }
    }

    template <std::integral Int>
    [[gnu::always_inline]] void integer(std::string_view key, Int& value, Range range) {
        if (!open_field(key)) {
            return;
        }
        const auto number = integer_value();
        if (!number || *number < range.min || *number > range.max) {
            give_up();
            return;
        }
        value = static_cast<Int>(*number);
    }

    void tier(std::string_view key, Tier& value) { parsed(key, value, parse_tier); }

    void erp_action(std::string_view key, ErpAction& value) {
        parsed(key, value, parse_erp_action);
    }

    void cancellable_status(std::string_view key, OrderStatus& value) {
        OrderStatus status{};
        parsed(key, status, parse_order_status);
        if (!c_.ok || !is_cancellable(status)) {
            give_up();
            return;
        }
        value = status;
    }

    void timestamp(std::string_view key, std::int64_t& us) { parsed(key, us, parse_iso8601_us); }

    // Rare events (tier and system config, warehouses): the general Reader reads them.
    void hundredths(std::string_view, std::int32_t&) { give_up(); }
    void config_value(std::string_view, ConfigValue&) { give_up(); }
    void hours_by_region(std::string_view, std::map<std::string, std::int32_t>&) { give_up(); }

    template <typename T, typename Fields>
    void objects(std::string_view key, std::vector<T>& items, Fields item_fields) {
        if (!open_field(key) || !expect('[')) {
            return;
        }
        items.clear();
        if (peek(']')) {
            ++c_.at;
            return;
        }
        items.reserve(4);  // An order's lines: one allocation for the usual few, not three.
        while (expect('{')) {
            T value{};
            ExactReader item(c_);
            item_fields(item, value);
            item.close();
            if (!c_.ok) {
                return;
            }
            items.push_back(std::move(value));
            if (!peek(',')) {
                break;
            }
            ++c_.at;
        }
        expect(']');
    }

  private:
    void give_up() { c_.ok = false; }

    [[gnu::always_inline]] bool peek(char wanted) const {
        return c_.ok && c_.at != c_.end && *c_.at == wanted;
    }

    [[gnu::always_inline]] bool expect(char wanted) {
        if (!peek(wanted)) {
            give_up();
            return false;
        }
        ++c_.at;
        return true;
    }

    [[gnu::always_inline]] bool literal(std::string_view word) {
        if (c_.ok && static_cast<std::size_t>(c_.end - c_.at) >= word.size() &&
            std::string_view(c_.at, word.size()) == word) {
            c_.at += word.size();
            return true;
        }
        return false;
    }

    /// `,"key":` (no comma before the first field). Compared in one go against the bytes
    /// ahead: every field of every event passes here (~30 per OrderPlaced), and five separate
    /// checks of the cursor cost ~140 instructions a field (callgrind).
    [[gnu::always_inline]] bool open_field(std::string_view key) {
        const std::size_t comma = first_ ? 0 : 1;
        const std::size_t length = comma + key.size() + 3;
        const char* const at = c_.at;
        if (!c_.ok || static_cast<std::size_t>(c_.end - at) < length ||
            (comma == 1 && at[0] != ',') || at[comma] != '"' ||
            std::memcmp(at + comma + 1, key.data(), key.size()) != 0 ||
            at[comma + 1 + key.size()] != '"' || at[comma + 2 + key.size()] != ':') {
            give_up();
            return false;
        }
        first_ = false;
        c_.at = at + length;
        return true;
    }

    /// A string of printable ASCII without escapes, as it stands in the data.
    [[gnu::always_inline]] std::optional<std::string_view> string_value() {
        if (!expect('"')) {
            return std::nullopt;
        }
        const char* const start = c_.at;
        while (c_.at != c_.end) {
            const auto byte = static_cast<unsigned char>(*c_.at);
            if (byte == '"') {
                const std::string_view text(start, static_cast<std::size_t>(c_.at - start));
                ++c_.at;
                return text;
            }
            if (byte < 0x20 || byte >= 0x80 || byte == '\\') {
                break;
            }
            ++c_.at;
        }
        give_up();
        return std::nullopt;
    }

    [[gnu::always_inline]] std::optional<std::string_view> string_field(std::string_view key) {
        if (!open_field(key)) {
            return std::nullopt;
        }
        return string_value();
    }

    /// A JSON integer within int64: no fraction, exponent, leading zero or "-0".
    [[gnu::always_inline]] std::optional<std::int64_t> integer_value() {
        if (!c_.ok) {
            return std::nullopt;
        }
        const char* p = c_.at;
        const bool negative = p != c_.end && *p == '-';
        p += negative ? 1 : 0;
        const char* const digits = p;
        while (p != c_.end && *p >= '0' && *p <= '9') {
            ++p;
        }
        const auto count = p - digits;
        const bool more_number = p != c_.end && (*p == '.' || *p == 'e' || *p == 'E');
        if (count == 0 || count > 18 || more_number ||
            (digits[0] == '0' && (count > 1 || negative))) {
            return std::nullopt;  // Up to 18 digits always fit; longer ones are left to Boost.
        }
        std::int64_t value = 0;
        for (const char* d = digits; d != p; ++d) {
            value = value * 10 + (*d - '0');
        }
        c_.at = p;
        return negative ? -value : value;
    }

    template <typename Value, typename Parse>
    void parsed(std::string_view key, Value& value, Parse parse) {
        const auto text = string_field(key);
        if (!text) {
            return;
        }
        const auto result = parse(*text);
        if (!result) {
            give_up();
            return;
        }
        value = *result;
    }

    Cursor& c_;
    bool first_ = true;
};

/// Matches an event type with or without const, so one field list serves encode and decode.
template <typename E, typename T>
concept event_of = std::same_as<std::remove_const_t<E>, T>;

// The published field lists. Key order is the JSON order; never reorder, rename or retype a
// field of a shipped schema_version.

void fields(auto& v, event_of<PartnerRegistered> auto& e) {
    v.text("partner_id", e.partner_id);
    v.text("name", e.name);
    v.tier("tier", e.tier);
    v.text("region", e.region);
    v.integer("credit_limit", e.credit_limit_idr, non_negative);
}

void fields(auto& v, event_of<PartnerDetailsChanged> auto& e) {
    v.text("partner_id", e.partner_id);
    v.text("name", e.name);
    v.text("region", e.region);
}

void fields(auto& v, event_of<PartnerTierChanged> auto& e) {
    v.text("partner_id", e.partner_id);
    v.tier("tier", e.tier);
}

void fields(auto& v, event_of<CreditLimitSet> auto& e) {
    v.text("partner_id", e.partner_id);
    v.integer("credit_limit", e.credit_limit_idr, non_negative);
}

void fields(auto& v, event_of<ProductRegistered> auto& e) {
    v.text("sku", e.sku);
    v.text("name", e.name);
    v.integer("base_price", e.base_price_idr, non_negative);
    v.integer("buffer_qty", e.buffer_qty, non_negative);
}

void fields(auto& v, event_of<ProductPriceChanged> auto& e) {
    v.text("sku", e.sku);
    v.integer("base_price", e.base_price_idr, non_negative);
}

void fields(auto& v, event_of<WarehouseRegistered> auto& e) {
    v.text("warehouse_id", e.warehouse_id);
    v.hours_by_region("sla_hours", e.sla_hours);
}

void fields(auto& v, event_of<TierConfigChanged> auto& e) {
    v.tier("tier", e.tier);
    v.integer("discount_bps", e.discount_bps, basis_points);
    v.hundredths("loyalty_multiplier", e.loyalty_multiplier_hundredths);
    v.timestamp("changed_at", e.changed_at_us);
}

void fields(auto& v, event_of<SystemConfigChanged> auto& e) {
    v.text("key", e.key);
    v.config_value("value", e.value);
    v.timestamp("changed_at", e.changed_at_us);
}

void fields(auto& v, event_of<SystemConfigReset> auto& e) {
    v.text("key", e.key);
    v.timestamp("changed_at", e.changed_at_us);
}

void fields(auto& v, event_of<StockLevelsSynced> auto& e) {
    v.timestamp("as_of", e.as_of_us);
    v.objects("levels", e.levels, [](auto& lv, auto& level) {
        lv.text("sku", level.sku);
        lv.text("warehouse_id", level.warehouse_id);
        lv.integer("on_hand", level.on_hand, non_negative);
    });
}

void fields(auto& v, event_of<PartnerDebtSynced> auto& e) {
    v.text("partner_id", e.partner_id);
    v.integer("outstanding", e.outstanding_idr, non_negative);
    v.timestamp("as_of", e.as_of_us);
}

void fields(auto& v, event_of<OrderPlaced> auto& e) {
    v.text("order_id", e.order_id);
    v.text("partner_id", e.partner_id);
    v.tier("tier", e.tier);
    v.text("region", e.region);
    v.integer("discount_bps", e.discount_bps, basis_points);
    v.integer("loyalty_multiplier_hundredths", e.loyalty_multiplier_hundredths, non_negative_int32);
    v.objects("lines", e.lines, [](auto& lv, auto& line) {
        lv.text("sku", line.sku);
        lv.integer("qty", line.qty, non_negative);
        lv.integer("base_price", line.base_price_idr, non_negative);
        lv.integer("unit_price", line.unit_price_idr, non_negative);
        lv.integer("discount_bps", line.discount_bps, basis_points);
        lv.integer("line_total", line.line_total_idr, non_negative);
    });
    v.integer("subtotal", e.subtotal_idr, non_negative);
    v.integer("loyalty_points", e.loyalty_points, non_negative);
    v.integer("config_position", e.config_position, non_negative);
    v.text("note", e.note);
    v.text("placed_by", e.placed_by);
    v.nullable_text("on_behalf_of", e.on_behalf_of);
    v.timestamp("placed_at", e.placed_at_us);
}

void fields(auto& v, event_of<OrderCreditHeld> auto& e) {
    v.text("order_id", e.order_id);
    v.text("partner_id", e.partner_id);
    v.integer("subtotal", e.subtotal_idr, non_negative);
    v.integer("available_credit", e.available_credit_idr, any_int64);
}

void fields(auto& v, event_of<OrderCreditReleased> auto& e) {
    v.text("order_id", e.order_id);
    v.text("released_by", e.released_by);
}

void fields(auto& v, event_of<OrderRouted> auto& e) {
    v.text("order_id", e.order_id);
    v.text("warehouse_id", e.warehouse_id);
    v.objects("lines", e.lines, [](auto& lv, auto& line) {
        lv.text("sku", line.sku);
        lv.integer("qty", line.qty, non_negative);
    });
}

void fields(auto& v, event_of<OrderCancelled> auto& e) {
    v.text("order_id", e.order_id);
    v.cancellable_status("previous_status", e.previous_status);
    v.text("cancelled_by", e.cancelled_by);
}

void fields(auto& v, event_of<OrderSentToErp> auto& e) {
    v.text("order_id", e.order_id);
}

void fields(auto& v, event_of<OrderAcceptedByErp> auto& e) {
    v.text("order_id", e.order_id);
    v.text("erp_order_ref", e.erp_order_ref);
}

void fields(auto& v, event_of<OrderRejectedByErp> auto& e) {
    v.text("order_id", e.order_id);
    v.text("reason", e.reason);
}

void fields(auto& v, event_of<ErpDeliveryParked> auto& e) {
    v.integer("dead_letter_id", e.dead_letter_id, positive);
    v.text("order_id", e.order_id);
    v.erp_action("action", e.action);
    v.integer("attempts", e.attempts, positive);
    v.text("last_error", e.last_error);
}

void fields(auto& v, event_of<ErpDeliveryRetryRequested> auto& e) {
    v.integer("dead_letter_id", e.dead_letter_id, positive);
    v.text("requested_by", e.requested_by);
}

void fields(auto& v, event_of<ErpDeliveryResolved> auto& e) {
    v.integer("dead_letter_id", e.dead_letter_id, positive);
}

template <typename E>
std::string write_json(const E& event) {
    std::string out = "{";
    Writer writer(out, E::type_name, {});
    fields(writer, event);
    out.push_back('}');
    return out;
}

/// Writer's exact output, read by ExactReader; nothing if the data is anything else.
template <typename E>
std::optional<E> read_exact(std::string_view data) {
    if (data.empty() || data.front() != '{') {
        return std::nullopt;
    }
    ExactReader::Cursor cursor{data.data() + 1, data.data() + data.size()};
    E event{};
    ExactReader reader(cursor);
    fields(reader, event);
    reader.close();
    if (!cursor.ok || cursor.at != cursor.end) {
        return std::nullopt;
    }
    return event;
}

/// Any JSON object, through a Boost.JSON tree; says what is wrong with data that is not an E.
template <typename E>
Result<DomainEvent, DecodeError> read_general(std::string_view data) {
    boost::json::parse_options options;
    options.max_depth = json_depth_max;
    boost::system::error_code ec;
    // The parsed tree lives only until the fields are copied out: one stack buffer (heap
    // beyond it) instead of an allocation per node, freed all at once.
    unsigned char scratch[4096];
    boost::json::monotonic_resource arena(scratch, sizeof scratch);
    const boost::json::value value = boost::json::parse(data, ec, &arena, options);
    if (ec || !value.is_object()) {
        return DecodeError{fmt::format("{}: data is not a JSON object", E::type_name)};
    }
    std::optional<std::string> error;
    E event{};
    Reader reader(value.get_object(), E::type_name, {}, error);
    fields(reader, event);
    if (error) {
        return DecodeError{std::move(*error)};
    }
    return DomainEvent{std::move(event)};
}

template <typename E>
Result<DomainEvent, DecodeError> read_json(std::uint16_t schema_version, std::string_view data,
                                           detail::DecodePath path) {
    // Old shapes are upcast before they get here (oe::UpcasterRegistry); any other version is
    // one this build does not know.
    if (schema_version != E::schema_version) {
        return DecodeError{fmt::format("{}: schema_version {} is not supported (expected {})",
                                       E::type_name, schema_version, E::schema_version)};
    }
    if (path != detail::DecodePath::general_only) {
        if (auto event = read_exact<E>(data)) {
            return DomainEvent{std::move(*event)};
        }
        if (path == detail::DecodePath::exact_only) {
            return DecodeError{
                fmt::format("{}: not in the exact form encode writes", E::type_name)};
        }
    }
    return read_general<E>(data);
}

template <std::size_t... I>
std::optional<Result<DomainEvent, DecodeError>> read_known(std::string_view type,
                                                           std::uint16_t schema_version,
                                                           std::string_view data,
                                                           detail::DecodePath path,
                                                           std::index_sequence<I...>) {
    std::optional<Result<DomainEvent, DecodeError>> result;
    const auto try_one = [&]<typename E>(std::type_identity<E>) {
        if (type != E::type_name) {
            return false;
        }
        result.emplace(read_json<E>(schema_version, data, path));
        return true;
    };
    (try_one(std::type_identity<std::variant_alternative_t<I, DomainEvent>>{}) || ...);
    return result;
}

}  // namespace

std::string to_json(const PartnerRegistered& event) {
    return write_json(event);
}
std::string to_json(const PartnerDetailsChanged& event) {
    return write_json(event);
}
std::string to_json(const PartnerTierChanged& event) {
    return write_json(event);
}
std::string to_json(const CreditLimitSet& event) {
    return write_json(event);
}
std::string to_json(const PartnerDebtSynced& event) {
    return write_json(event);
}
std::string to_json(const ProductRegistered& event) {
    return write_json(event);
}
std::string to_json(const ProductPriceChanged& event) {
    return write_json(event);
}
std::string to_json(const WarehouseRegistered& event) {
    return write_json(event);
}
std::string to_json(const StockLevelsSynced& event) {
    return write_json(event);
}
std::string to_json(const TierConfigChanged& event) {
    return write_json(event);
}
std::string to_json(const SystemConfigChanged& event) {
    return write_json(event);
}
std::string to_json(const SystemConfigReset& event) {
    return write_json(event);
}
std::string to_json(const OrderPlaced& event) {
    return write_json(event);
}
std::string to_json(const OrderCreditHeld& event) {
    return write_json(event);
}
std::string to_json(const OrderCreditReleased& event) {
    return write_json(event);
}
std::string to_json(const OrderRouted& event) {
    return write_json(event);
}
std::string to_json(const OrderCancelled& event) {
    return write_json(event);
}
std::string to_json(const OrderSentToErp& event) {
    return write_json(event);
}
std::string to_json(const OrderAcceptedByErp& event) {
    return write_json(event);
}
std::string to_json(const OrderRejectedByErp& event) {
    return write_json(event);
}

std::string to_json(const ErpDeliveryParked& event) {
    return write_json(event);
}
std::string to_json(const ErpDeliveryRetryRequested& event) {
    return write_json(event);
}
std::string to_json(const ErpDeliveryResolved& event) {
    return write_json(event);
}

std::string to_json(const DomainEvent& event) {
    return std::visit([](const auto& e) { return write_json(e); }, event);
}

std::string_view type_name_of(const DomainEvent& event) {
    return std::visit([](const auto& e) { return std::decay_t<decltype(e)>::type_name; }, event);
}

oe::NewEvent encode(const DomainEvent& event) {
    return std::visit(
        [](const auto& e) {
            using E = std::decay_t<decltype(e)>;
            oe::NewEvent out;
            out.type = std::string(E::type_name);
            out.schema_version = E::schema_version;
            out.data = write_json(e);
            return out;
        },
        event);
}

oe::Result<DomainEvent, DecodeError> decode(std::string_view type, std::uint16_t schema_version,
                                            std::string_view data) {
    return detail::decode(type, schema_version, data, detail::DecodePath::exact_first);
}

oe::Result<DomainEvent, DecodeError> detail::decode(std::string_view type,
                                                    std::uint16_t schema_version,
                                                    std::string_view data, DecodePath path) {
    // Boost.JSON reports parse errors through the error_code; what can still escape is an
    // allocation failure, which becomes a DecodeError so decode keeps its no-throw promise.
    try {
        auto result = read_known(type, schema_version, data, path,
                                 std::make_index_sequence<std::variant_size_v<DomainEvent>>{});
        if (result) {
            return std::move(*result);
        }
        return DecodeError{fmt::format("unknown event type {}", shorten(type))};
    } catch (const std::exception& failure) {
        return DecodeError{fmt::format("{}: cannot decode: {}", shorten(type), failure.what())};
    }
}

oe::Result<DomainEvent, DecodeError> decode(const oe::RecordedEvent& event) {
    return decode(event.type, event.schema_version, event.data);
}

}  // namespace oe::events
