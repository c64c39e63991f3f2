// How rm_orders keeps an order's lines, and the order view's lines rendered from that: the
// view must be byte for byte what the API showed before the column was shortened (and what
// POST /api/orders answers from the event), and anything else must be refused, not guessed.

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <oe/events/order.hpp>
#include <oe/projections/order_lines.hpp>

using oe::events::PricedLine;
using oe::projections::order_lines_view;
using oe::projections::stored_order_lines;

TEST_CASE("lines are stored positionally and rendered back as the order view") {
    const std::vector<PricedLine> lines{
        {"SERUM-30", 10, 100001, 90001, 1000, 900010},
        {"TONER_100", 1, 55000, 55000, 0, 55000},
        {"X", 100000, 9223372036854775807, 0, 10000, 0},
    };
    const auto stored = stored_order_lines(lines);
    CHECK(stored == R"([["SERUM-30",10,100001,90001,1000,900010],["TONER_100",1,55000,55000,0,)"
                    R"(55000],["X",100000,9223372036854775807,0,10000,0]])");
    CHECK(order_lines_view(stored) ==
          R"([{"sku":"SERUM-30","qty":10,"base_price":100001,"unit_price":90001,)"
          R"("discount_bps":1000,"line_total":900010},{"sku":"TONER_100","qty":1,)"
          R"("base_price":55000,"unit_price":55000,"discount_bps":0,"line_total":55000},)"
          R"({"sku":"X","qty":100000,"base_price":9223372036854775807,"unit_price":0,)"
          R"("discount_bps":10000,"line_total":0}])");
    CHECK(stored_order_lines({}) == "[]");
    CHECK(order_lines_view("[]") == "[]");
}

TEST_CASE("a sku that needs escaping and a negative number survive the round trip") {
    const std::vector<PricedLine> lines{{"A\"B\\C", -1, 2, 3, -4, 5}};
    const auto stored = stored_order_lines(lines);
    CHECK(stored == R"([["A\"B\\C",-1,2,3,-4,5]])");
    CHECK(order_lines_view(stored) ==
          R"([{"sku":"A\"B\\C","qty":-1,"base_price":2,"unit_price":3,"discount_bps":-4,)"
          R"("line_total":5}])");
}

TEST_CASE("the widest numbers fit, in every position") {
    constexpr std::int64_t least = std::numeric_limits<std::int64_t>::min();
    const std::vector<PricedLine> lines{{"S", least, least, least, -2147483647 - 1, least}};
    const auto stored = stored_order_lines(lines);
    CHECK(stored == R"([["S",-9223372036854775808,-9223372036854775808,-9223372036854775808,)"
                    R"(-2147483648,-9223372036854775808]])");
    CHECK(order_lines_view(stored) ==
          R"([{"sku":"S","qty":-9223372036854775808,"base_price":-9223372036854775808,)"
          R"("unit_price":-9223372036854775808,"discount_bps":-2147483648,)"
          R"("line_total":-9223372036854775808}])");
}

TEST_CASE("the view's own form (rows written before migration 5) passes unchanged") {
    const std::string old = R"([{"sku":"SERUM-30","qty":10,"base_price":100001,"unit_price":90001,)"
                            R"("discount_bps":1000,"line_total":900010}])";
    CHECK(order_lines_view(old) == old);
}

TEST_CASE("anything else is refused with where it went wrong") {
    for (const char* bad : {"",
                            "[",
                            "]",
                            "[[",
                            "[[]]",
                            R"([["A"]])",
                            R"([["A",1,2,3,4]])",
                            R"([["A",1,2,3,4,5,6]])",
                            R"([["A",1,2,3,4,5]")",
                            R"([["A",1,2,3,4,5]] )",
                            R"([["A",1,2,3,4,5],])",
                            R"([["A",1,2,x,4,5]])",
                            R"([["A",1,2,-,4,5]])",
                            R"([["A\"]])",
                            R"([[A,1,2,3,4,5]])",
                            R"([["A",1,2,3,4,5]][])",
                            "null",
                            R"([["A\)",
                            R"([["A\)",
                            R"([["A",1,2,3,4,5)"}) {
        CAPTURE(bad);
        CHECK_THROWS_AS((void)order_lines_view(bad), std::invalid_argument);
    }
    try {
        (void)order_lines_view(R"([["A",1,2,x,4,5]])");
        FAIL("accepted");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()).find("at character 10") != std::string::npos);
    }
}
