#include <oe/projections/order_lines.hpp>

#include <array>
#include <charconv>
#include <stdexcept>

#include <fmt/format.h>

#include <oe/events/order.hpp>
#include <oe/kernel/json_text.hpp>

namespace oe::projections {

namespace {

/// The numbers of a line, in the order both forms give them.
constexpr std::array<std::string_view, 5> number_keys{R"(,"qty":)", R"(,"base_price":)",
                                                      R"(,"unit_price":)", R"(,"discount_bps":)",
                                                      R"(,"line_total":)"};

[[noreturn]] void malformed(std::string_view stored, std::size_t at) {
    constexpr std::size_t shown = 60;
    throw std::invalid_argument(
        fmt::format("rm_orders.lines is in no known form at character {}: {}{}", at,
                    stored.substr(0, shown), stored.size() > shown ? "…" : ""));
}

}  // namespace

std::string stored_order_lines(const std::vector<events::PricedLine>& lines) {
    std::string out = "[";
    out.reserve(lines.size() * 48 + 2);
    // Appended piece by piece: a rebuild writes ~1.5M lines for 500k orders, and fmt's
    // format-string path cost ~1,900 instructions a line (callgrind).
    std::array<char, 5 * 21 + 1> numbers{};  // Five of ",-9223372036854775808", then "]".
    for (const auto& line : lines) {
        out += out.size() > 1 ? std::string_view(",[") : std::string_view("[");
        append_json_string(out, line.sku);
        char* at = numbers.data();
        for (const std::int64_t value : {line.qty, line.base_price_idr, line.unit_price_idr,
                                         std::int64_t{line.discount_bps}, line.line_total_idr}) {
            *at++ = ',';
            at = std::to_chars(at, numbers.data() + numbers.size(), value).ptr;
        }
        *at++ = ']';
        out.append(numbers.data(), static_cast<std::size_t>(at - numbers.data()));
    }
    out.push_back(']');
    return out;
}

std::string order_lines_view(std::string_view stored) {
    if (stored.size() >= 2 && stored[0] == '[' && stored[1] == '{') {
        return std::string(stored);  // The view's form already.
    }
    std::size_t at = 0;
    const auto expect = [&](char c) {
        if (at >= stored.size() || stored[at] != c) {
            malformed(stored, at);
        }
        ++at;
    };
    std::string view = "[";
    view.reserve(stored.size() * 3 + 2);  // ~40 bytes stored, ~110 shown a line.
    expect('[');
    if (at < stored.size() && stored[at] == ']') {
        ++at;
    } else {
        for (bool more = true; more;) {
            expect('[');
            // The sku: a JSON string, copied as it is (escapes included).
            const std::size_t sku_at = at;
            expect('"');
            while (at < stored.size() && stored[at] != '"') {
                at += stored[at] == '\\' ? 2 : 1;
            }
            expect('"');
            view += view.size() > 1 ? R"(,{"sku":)" : R"({"sku":)";
            view.append(stored.substr(sku_at, at - sku_at));
            for (const auto key : number_keys) {
                expect(',');
                const std::size_t number_at = at;
                if (at < stored.size() && stored[at] == '-') {
                    ++at;
                }
                const std::size_t digits_at = at;
                while (at < stored.size() && stored[at] >= '0' && stored[at] <= '9') {
                    ++at;
                }
                if (at == digits_at) {
                    malformed(stored, at);
                }
                view += key;
                view.append(stored.substr(number_at, at - number_at));
            }
            expect(']');
            view.push_back('}');
            if (at < stored.size() && stored[at] == ',') {
                ++at;
            } else {
                more = false;
            }
        }
        expect(']');
    }
    if (at != stored.size()) {
        malformed(stored, at);
    }
    view.push_back(']');
    return view;
}

}  // namespace oe::projections
