#include <oe/erp/wire.hpp>

#include <fmt/format.h>
#include <boost/json.hpp>

#include <oe/kernel/json_text.hpp>
#include <oe/kernel/time.hpp>

namespace oe::erp::wire {

namespace {

constexpr std::size_t quoted_bytes_max = 120;

[[noreturn]] void unusable(std::string_view what, std::string_view body) {
    throw ErpFailure(ErpFailure::Kind::failed,
                     fmt::format("ERP answer unusable ({}): {}", what,
                                 body.substr(0, std::min(body.size(), quoted_bytes_max))));
}

boost::json::object parse_object(std::string_view body) {
    boost::json::parse_options options;
    options.max_depth = 16;
    boost::system::error_code ec;
    auto value = boost::json::parse(body, ec, {}, options);
    if (ec) {
        unusable("not JSON", body);
    }
    if (!value.is_object()) {
        unusable("not a JSON object", body);
    }
    return std::move(value.as_object());
}

std::string text_field(const boost::json::object& object, std::string_view key,
                       std::string_view body) {
    const auto* found = object.if_contains(key);
    if (found == nullptr || !found->is_string()) {
        unusable(fmt::format("'{}' is not a string", key), body);
    }
    return std::string(found->get_string());
}

std::int64_t integer_field(const boost::json::object& object, std::string_view key,
                           std::string_view body) {
    const auto* found = object.if_contains(key);
    if (found == nullptr || !(found->is_int64() || found->is_uint64())) {
        unusable(fmt::format("'{}' is not an integer", key), body);
    }
    if (found->is_uint64()) {
        unusable(fmt::format("'{}' is out of range", key), body);
    }
    return found->get_int64();
}

/// The envelope every ERP answer has: "result" is "OK" (or a documented alternative);
/// "ERROR" — sent with HTTP 200 by this ERP — is a failure like a 500.
boost::json::object answer(std::string_view body) {
    auto object = parse_object(body);
    const auto result = text_field(object, "result", body);
    if (result == "ERROR") {
        const auto* message = object.if_contains("message");
        throw ErpFailure(
            ErpFailure::Kind::failed,
            fmt::format("ERP reported an error: {}", message != nullptr && message->is_string()
                                                         ? std::string(message->get_string())
                                                         : std::string("(no message)")));
    }
    return object;
}

std::int64_t as_of(const boost::json::object& object, std::string_view body) {
    const auto parsed = parse_iso8601_us(text_field(object, "as_of", body));
    if (!parsed) {
        unusable("'as_of' is not an ISO 8601 timestamp", body);
    }
    return *parsed;
}

const boost::json::array& rows(const boost::json::object& object, std::string_view body) {
    const auto* found = object.if_contains("rows");
    if (found == nullptr || !found->is_array()) {
        unusable("'rows' is not an array", body);
    }
    return found->get_array();
}

}  // namespace

std::string sales_order_request(const SalesOrder& order) {
    std::string out = R"({"order_ref":)";
    append_json_string(out, order.order_id);
    out += R"(,"customer":)";
    append_json_string(out, order.partner_id);
    out += R"(,"warehouse":)";
    append_json_string(out, order.warehouse_id);
    out += R"(,"lines":[)";
    for (std::size_t i = 0; i < order.lines.size(); ++i) {
        const auto& line = order.lines[i];
        out += i == 0 ? R"({"item":)" : R"(,{"item":)";
        append_json_string(out, line.sku);
        out += fmt::format(R"(,"qty":{},"unit_price":{}}})", line.qty, line.unit_price_idr);
    }
    out += fmt::format(R"(],"total":{}}})", order.total_idr);
    return out;
}

SalesOrderAnswer read_sales_order_answer(std::string_view body) {
    const auto object = answer(body);
    const auto result = text_field(object, "result", body);
    if (result == "OK") {
        auto ref = text_field(object, "so_number", body);
        if (ref.empty() || ref.size() > 64) {
            unusable("'so_number' must be 1..64 characters", body);
        }
        return SalesOrderAnswer{true, std::move(ref), {}};
    }
    if (result == "REJECTED") {
        return SalesOrderAnswer{false, {}, text_field(object, "reason", body)};
    }
    unusable("unknown result", body);
}

void read_cancel_answer(std::string_view body) {
    const auto object = answer(body);
    const auto result = text_field(object, "result", body);
    if (result != "OK" && result != "NOT_FOUND") {
        unusable("unknown result", body);
    }
}

StockReport read_stock(std::string_view body) {
    const auto object = answer(body);
    if (text_field(object, "result", body) != "OK") {
        unusable("unknown result", body);
    }
    StockReport report;
    report.as_of_us = as_of(object, body);
    for (const auto& row : rows(object, body)) {
        if (!row.is_object()) {
            unusable("a row is not an object", body);
        }
        const auto& r = row.get_object();
        report.figures.push_back({text_field(r, "item", body), text_field(r, "warehouse", body),
                                  integer_field(r, "on_hand", body)});
    }
    return report;
}

DebtReport read_receivables(std::string_view body) {
    const auto object = answer(body);
    if (text_field(object, "result", body) != "OK") {
        unusable("unknown result", body);
    }
    DebtReport report;
    report.as_of_us = as_of(object, body);
    for (const auto& row : rows(object, body)) {
        if (!row.is_object()) {
            unusable("a row is not an object", body);
        }
        const auto& r = row.get_object();
        report.figures.push_back(
            {text_field(r, "customer", body), integer_field(r, "outstanding", body)});
    }
    return report;
}

}  // namespace oe::erp::wire
