// How a rebuild beside a server shares the machine (projections/pacer.hpp).
#include <chrono>
#include <cmath>
#include <limits>
#include <thread>

#include <doctest/doctest.h>

#include <oe/projections/pacer.hpp>

using namespace oe::projections;
using namespace std::chrono_literals;

TEST_CASE("the machine's CPU times come from /proc/stat's first line") {
    // user nice system idle iowait irq softirq steal guest guest_nice
    const auto t = parse_cpu_times("cpu  10 20 30 400 50 6 7 8 90 100\ncpu0 1 2 3 4 5 6 7 8 0 0\n");
    REQUIRE(t);
    CHECK(t->busy == 10 + 20 + 30 + 6 + 7 + 8);  // Guest time is inside user and nice already.
    CHECK(t->total == t->busy + 400 + 50);

    // An old kernel's four columns are enough.
    const auto old = parse_cpu_times("cpu 1 2 3 4");
    REQUIRE(old);
    CHECK(old->busy == 6);
    CHECK(old->total == 10);

    CHECK_FALSE(parse_cpu_times(""));
    CHECK_FALSE(parse_cpu_times("cpu0 1 2 3 4 5 6 7 8\n"));  // A single core's line, not the sum.
    CHECK_FALSE(parse_cpu_times("intr 12 13\n"));
    CHECK_FALSE(parse_cpu_times("cpu  1 2 3\n"));  // Too few columns.
    CHECK_FALSE(parse_cpu_times("cpu  1 2 x 4 5\n"));
    CHECK_FALSE(parse_cpu_times("cpu  1 2 -3 4 5\n"));
    CHECK_FALSE(parse_cpu_times("cpu  1 2 3 99999999999999999999999 5\n"));  // Overflows.
}

TEST_CASE("this machine's CPU times can be read and only grow") {
    const auto before = read_cpu_times();
    REQUIRE(before);  // Linux: CI and the servers.
    CHECK(before->busy <= before->total);
    const auto spin_until = std::chrono::steady_clock::now() + 50ms;
    volatile std::uint64_t n = 0;
    while (std::chrono::steady_clock::now() < spin_until) {
        n = n + 1;
    }
    const auto after = read_cpu_times();
    REQUIRE(after);
    CHECK(after->total > before->total);
    CHECK(after->busy > before->busy);  // The spinning above, at least.
}

TEST_CASE("the share falls with how busy the rest of the machine is") {
    CHECK(share_for_load(0.0) == 100);
    CHECK(share_for_load(0.15) == 100);
    CHECK(share_for_load(0.30) == 56);  // (0.70 / 0.85)^3
    CHECK(share_for_load(0.45) == 27);
    CHECK(share_for_load(0.60) == 10);  // The bench machine at ~500 orders/s.
    CHECK(share_for_load(0.75) == 5);   // Never less than a twentieth: a rebuild ends.
    CHECK(share_for_load(1.0) == 5);
    CHECK(share_for_load(1.5) == 5);
    CHECK(share_for_load(-0.2) == 100);
    CHECK(share_for_load(std::numeric_limits<double>::quiet_NaN()) == 100);
    int last = 100;
    for (int busy = 0; busy <= 100; ++busy) {
        const int share = share_for_load(busy / 100.0);
        CHECK(share <= last);
        CHECK(share >= 5);
        last = share;
    }
}

TEST_CASE("an adaptive step leaves out the rebuild's own work") {
    const CpuTimes before{1'000, 10'000};
    // Two cores, one second: 200 ticks in all, 120 of them busy (60 %).
    const CpuTimes after{1'120, 10'200};
    CHECK(Pacer::share_from_sample(before, after, 1s, 0s, 2) == 10);
    // The rebuild's threads used 0.2 s of CPU, a tenth of the machine: the rest keeps 50 %.
    CHECK(Pacer::share_from_sample(before, after, 1s, 200ms, 2) == 20);
    // Its own work is all there is: flat out.
    CHECK(Pacer::share_from_sample(before, CpuTimes{1'100, 10'200}, 1s, 1s, 2) == 100);
    // More own CPU than the machine's ticks show (they count in hundredths) is none left.
    CHECK(Pacer::share_from_sample(before, CpuTimes{1'010, 10'200}, 1s, 1s, 2) == 100);
    // No tick went by, or the counters went backwards: the cautious tenth.
    CHECK(Pacer::share_from_sample(before, before, 1s, 0s, 2) == 10);
    CHECK(Pacer::share_from_sample(after, before, 1s, 0s, 2) == 10);
    CHECK(Pacer::share_from_sample(before, after, 0s, 0s, 2) == 10);
}

TEST_CASE("a pacer sleeps in proportion to the work it was given") {
    Pacer fifth(20);
    CHECK(fifth.percent() == 20);
    fifth.pace();                       // Starts a unit now.
    std::this_thread::sleep_for(10ms);  // "Work" of 10 ms...
    const auto before = std::chrono::steady_clock::now();
    fifth.pace();  // ...is followed by four times as long asleep.
    CHECK(std::chrono::steady_clock::now() - before >= 40ms);
    // What ran before a restart is not slept for (it would be 200 ms here).
    std::this_thread::sleep_for(50ms);
    fifth.restart();
    const auto restarted = std::chrono::steady_clock::now();
    fifth.pace();
    CHECK(std::chrono::steady_clock::now() - restarted < 100ms);

    // Before its first look at the machine an adaptive pacer works a tenth of the time.
    auto adaptive = Pacer::adaptive();
    CHECK(adaptive.percent() == 10);
    // A floor (a catch-up that must outrun checkout) overrides a lower share, not a higher one.
    adaptive.set_floor(40);
    CHECK(adaptive.percent() == 40);
    adaptive.set_floor(0);
    CHECK(adaptive.percent() == 10);
    Pacer flat_out(100);
    flat_out.set_floor(40);
    CHECK(flat_out.percent() == 100);
    flat_out.set_floor(250);
    CHECK(flat_out.percent() == 100);
    // A cap (SQLite: a tenth at most) holds before the first look at the machine too.
    CHECK(Pacer::adaptive(5).percent() == 5);
    CHECK(Pacer::adaptive(50).percent() == 10);
}
