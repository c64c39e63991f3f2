#include <oe/kernel/time.hpp>

#include <chrono>

#include <fmt/format.h>

namespace oe {

std::int64_t now_us() {
    using namespace std::chrono;
    return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

std::string format_iso8601_us(std::int64_t us) {
    using namespace std::chrono;
    const sys_time<microseconds> tp{microseconds{us}};
    const auto day = floor<days>(tp);
    const year_month_day ymd{day};
    const hh_mm_ss<microseconds> tod{tp - day};
    const int year = static_cast<int>(ymd.year());
    if (year < 0 || year > 9999) {
        return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", year,
                           static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                           tod.hours().count(), tod.minutes().count(), tod.seconds().count(),
                           tod.subseconds().count());
    }
    // Written digit by digit: a read model row or an API answer carries one per order, and
    // fmt's format-string path cost ~4,500 instructions a call (callgrind).
    std::string out = "0000-00-00T00:00:00.000000Z";
    const auto put = [&out](std::size_t at, std::size_t width, std::int64_t value) {
        for (std::size_t i = at + width; i-- > at; value /= 10) {
            out[i] = static_cast<char>('0' + value % 10);
        }
    };
    put(0, 4, year);
    put(5, 2, static_cast<unsigned>(ymd.month()));
    put(8, 2, static_cast<unsigned>(ymd.day()));
    put(11, 2, tod.hours().count());
    put(14, 2, tod.minutes().count());
    put(17, 2, tod.seconds().count());
    put(20, 6, tod.subseconds().count());
    return out;
}

namespace {

bool read_int(std::string_view text, std::size_t at, std::size_t width, int& out) {
    if (at + width > text.size()) {
        return false;
    }
    int value = 0;
    for (std::size_t i = at; i < at + width; ++i) {
        if (text[i] < '0' || text[i] > '9') {
            return false;
        }
        value = value * 10 + (text[i] - '0');
    }
    out = value;
    return true;
}

}  // namespace

std::optional<std::int64_t> parse_iso8601_us(std::string_view text) {
    using namespace std::chrono;
    int y = 0;
    int mo = 0;
    int d = 0;
    if (!read_int(text, 0, 4, y) || text.size() < 10 || text[4] != '-' ||
        !read_int(text, 5, 2, mo) || text[7] != '-' || !read_int(text, 8, 2, d)) {
        return std::nullopt;
    }
    const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)},
                             day{static_cast<unsigned>(d)}};
    if (!ymd.ok()) {
        return std::nullopt;
    }
    std::int64_t us = duration_cast<microseconds>(sys_days{ymd}.time_since_epoch()).count();
    if (text.size() == 10) {
        return us;
    }
    int h = 0;
    int mi = 0;
    int s = 0;
    if ((text[10] != 'T' && text[10] != ' ') || !read_int(text, 11, 2, h) || text.size() < 19 ||
        text[13] != ':' || !read_int(text, 14, 2, mi) || text[16] != ':' ||
        !read_int(text, 17, 2, s) || h > 23 || mi > 59 || s > 59) {
        return std::nullopt;
    }
    us += ((h * 60LL + mi) * 60LL + s) * 1'000'000LL;
    std::size_t at = 19;
    if (at < text.size() && text[at] == '.') {
        ++at;
        std::int64_t fraction = 0;
        std::size_t digits = 0;
        while (at < text.size() && text[at] >= '0' && text[at] <= '9') {
            if (digits < 6) {
                fraction = fraction * 10 + (text[at] - '0');
            }
            ++digits;
            ++at;
        }
        if (digits == 0 || digits > 9) {
            return std::nullopt;
        }
        for (std::size_t i = digits; i < 6; ++i) {
            fraction *= 10;
        }
        us += fraction;
    }
    const std::string_view zone = text.substr(at);
    if (zone != "Z" && zone != "+00:00" && zone != "+00") {
        return std::nullopt;
    }
    return us;
}

}  // namespace oe
