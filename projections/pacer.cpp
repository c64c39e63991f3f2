#include <oe/projections/pacer.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <fstream>
#include <string>
#include <thread>

#include <time.h>
#include <unistd.h>

namespace oe::projections {

namespace {

/// How often an adaptive pacer looks at the machine again: long enough for /proc/stat's ticks
/// (a hundredth of a second) to say something, short enough to follow checkout's bursts.
constexpr std::chrono::milliseconds sample_every{500};

/// Before the first sample, and where /proc/stat cannot be read.
constexpr int unknown_load_percent = 10;

}  // namespace

std::optional<CpuTimes> parse_cpu_times(std::string_view text) {
    // "cpu  user nice system idle iowait irq softirq steal guest guest_nice" (guest time is
    // already counted in user and nice).
    if (text.substr(0, 4) != "cpu ") {
        return std::nullopt;
    }
    const auto end_of_line = text.find('\n');
    std::string_view rest = text.substr(
        4, end_of_line == std::string_view::npos ? std::string_view::npos : end_of_line - 4);
    std::array<std::uint64_t, 8> field{};
    std::size_t read = 0;
    for (; read < field.size(); ++read) {
        const auto start = rest.find_first_not_of(' ');
        if (start == std::string_view::npos) {
            break;
        }
        rest.remove_prefix(start);
        const auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), field[read]);
        if (ec != std::errc{} || (ptr != rest.data() + rest.size() && *ptr != ' ')) {
            return std::nullopt;
        }
        rest.remove_prefix(static_cast<std::size_t>(ptr - rest.data()));
    }
    // Kernels before 2.6.11 had no steal column; before 2.6 no iowait/irq/softirq. Four fields
    // (user nice system idle) are the least that says anything.
    if (read < 4) {
        return std::nullopt;
    }
    const auto [user, nice, system, idle, iowait, irq, softirq, steal] = field;
    CpuTimes t;
    t.busy = user + nice + system + irq + softirq + steal;
    t.total = t.busy + idle + iowait;
    return t;
}

std::optional<CpuTimes> read_cpu_times() {
    std::ifstream in("/proc/stat");
    std::string line;
    if (!in || !std::getline(in, line)) {
        return std::nullopt;
    }
    return parse_cpu_times(line);
}

int share_for_load(double others_busy) {
    if (!(others_busy >= 0.0)) {  // NaN counts as idle, like a negative estimate.
        others_busy = 0.0;
    }
    const double left = std::max(0.0, 1.0 - others_busy) / 0.85;
    const double share = left * left * left;
    return std::clamp(static_cast<int>(std::lround(share * 100.0)), 5, 100);
}

Pacer::Pacer(int percent) : percent_(std::clamp(percent, 1, 100)) {}

Pacer Pacer::adaptive(int most) {
    Pacer p(unknown_load_percent);
    p.adaptive_ = true;
    p.most_ = std::clamp(most, 1, 100);
    p.percent_ = std::min(p.percent_, p.most_);
    p.window_times_ = read_cpu_times();
    const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
    p.cores_ = online > 0 ? static_cast<unsigned>(online) : 1U;
    return p;
}

int Pacer::share_from_sample(CpuTimes before, CpuTimes after, std::chrono::nanoseconds wall,
                             std::chrono::nanoseconds own_cpu, unsigned cores) {
    if (after.total <= before.total || after.busy < before.busy || wall.count() <= 0) {
        return unknown_load_percent;  // No tick went by, or the counters went backwards.
    }
    const double busy = static_cast<double>(after.busy - before.busy) /
                        static_cast<double>(after.total - before.total);
    const double own = std::chrono::duration<double>(own_cpu).count() /
                       (std::chrono::duration<double>(wall).count() * std::max(cores, 1U));
    return share_for_load(busy - std::min(own, busy));
}

void Pacer::resample(Clock::time_point now) {
    const auto times = read_cpu_times();
    if (times && window_times_) {
        percent_ = std::min(most_, share_from_sample(*window_times_, *times, now - window_start_,
                                                     window_cpu_, cores_));
    }
    window_times_ = times;
    window_start_ = now;
    window_cpu_ = std::chrono::nanoseconds{0};
}

void Pacer::pace() {
    const auto worked = Clock::now() - since_;
    if (adaptive_) {
        // The CPU this thread used since its last call (a rebuild's steps run one after another,
        // on threads of their own: a new thread's first call only sets where it starts).
        timespec cpu{};
        if (::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu) == 0) {
            const auto now_cpu =
                std::chrono::seconds(cpu.tv_sec) + std::chrono::nanoseconds(cpu.tv_nsec);
            if (cpu_thread_ == std::this_thread::get_id()) {
                window_cpu_ += now_cpu - thread_cpu_;
            }
            cpu_thread_ = std::this_thread::get_id();
            thread_cpu_ = now_cpu;
        }
        const auto now = Clock::now();
        if (now - window_start_ >= sample_every) {
            resample(now);
        }
    }
    if (const int share = percent(); share < 100) {
        std::this_thread::sleep_for(worked * (100 - share) / share);
    }
    since_ = Clock::now();
}

}  // namespace oe::projections
