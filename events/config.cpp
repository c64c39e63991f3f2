#include <oe/events/config.hpp>

namespace oe::events {

bool is_two_place_decimal(std::string_view text) {
    // Sixteen integer digits plus two decimals stay below 10^18, inside int64 as hundredths.
    constexpr std::size_t integer_digits_max = 16;
    const std::size_t dot = text.find('.');
    if (dot == std::string_view::npos || dot == 0 || dot > integer_digits_max ||
        text.size() != dot + 3) {
        return false;
    }
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (i != dot && (text[i] < '0' || text[i] > '9')) {
            return false;
        }
    }
    return true;
}

}  // namespace oe::events
