#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>
#include <thread>

namespace oe::projections {

/// The machine's CPU time since boot, all cores together, in clock ticks: the first line of
/// /proc/stat. `busy` counts user, nice, system, irq, softirq and steal (time the hypervisor
/// gave to someone else is time nobody here could use); `total` adds idle and iowait.
struct CpuTimes {
    std::uint64_t busy = 0;
    std::uint64_t total = 0;
};

/// Reads the "cpu " line of /proc/stat's text; nothing when it is not there or not numbers.
[[nodiscard]] std::optional<CpuTimes> parse_cpu_times(std::string_view proc_stat);

/// The machine's CPU times now; nothing where /proc/stat cannot be read (not Linux).
[[nodiscard]] std::optional<CpuTimes> read_cpu_times();

/// The share of the wall-clock time (percent, 5–100) a rebuild beside a server may work,
/// given the fraction of the machine's cores (0–1) that everything else keeps busy.
///
/// What a rebuild adds queues ahead of checkout, and the closer the cores are to full, the
/// more a little costs: on the bench machine (two cores, ~60 % busy at ~500 orders/s) a
/// rebuild working a fifth of the time raised checkout's p99 by +16 % to +47 % from run to run
/// (bench/README.md, eighth session). So the share falls with the cube of what is left:
/// (1 − busy) / 0.85, cubed — everything up to 15 % busy (a quiet server: the rebuild runs flat
/// out and takes seconds), about half at 30 %, a tenth at 60 %, and no less than a twentieth
/// (from 75 % up) so that a rebuild always ends.
[[nodiscard]] int share_for_load(double others_busy);

/// Keeps a rebuild's work to a share of the wall-clock time: pace(), called after each unit of
/// work (a batch of the fold, a chunk of the shadow write, a catch-up commit), sleeps in
/// proportion to the time worked since the previous call (at a fifth, four times as long).
///
/// Fixed, the share is given; adaptive (`Pacer::adaptive()`), it follows the machine: every
/// half second it reads /proc/stat, takes away the CPU time its own calling threads used
/// (CLOCK_THREAD_CPUTIME_ID: not the wall-clock time they worked, which also holds waits for a
/// disk, a lock or the database server), and sets the share from what the rest keeps busy
/// (share_for_load). The database server's process answering the rebuild counts as the rest:
/// on PostgreSQL the share comes out lower than the load alone would give. Where /proc/stat
/// cannot be read it stays at a tenth.
class Pacer {
  public:
    using Clock = std::chrono::steady_clock;

    explicit Pacer(int percent);
    /// `most`: the highest share it takes, however idle the machine looks.
    [[nodiscard]] static Pacer adaptive(int most = 100);

    void pace();
    /// The next unit of work starts now: what ran since the last pace() — work paced by other
    /// means (a cost-delayed VACUUM), or left unpaced on purpose (a rebuild's checksums, its
    /// holds) — is not slept for.
    void restart() { since_ = Clock::now(); }
    /// The share now, in percent (never below the floor).
    [[nodiscard]] int percent() const { return std::max(percent_, floor_); }
    /// The least share from now on, whatever the machine's load (0: none).
    void set_floor(int percent) { floor_ = std::clamp(percent, 0, 100); }

    /// One adaptive step, exposed for tests: over `wall`, in which the pacer's threads used
    /// `own_cpu`, the machine's `cores` went from `before` to `after`; returns the new share.
    [[nodiscard]] static int share_from_sample(CpuTimes before, CpuTimes after,
                                               std::chrono::nanoseconds wall,
                                               std::chrono::nanoseconds own_cpu, unsigned cores);

  private:
    void resample(Clock::time_point now);

    int percent_;
    int most_ = 100;
    int floor_ = 0;
    bool adaptive_ = false;
    Clock::time_point since_ = Clock::now();
    // The adaptive window: when it began, the machine's CPU times then, and how long this
    // pacer has worked since.
    Clock::time_point window_start_ = since_;
    std::optional<CpuTimes> window_times_;
    std::chrono::nanoseconds window_cpu_{0};
    // The thread that called pace() last, and its CPU time then.
    std::thread::id cpu_thread_;
    std::chrono::nanoseconds thread_cpu_{0};
    unsigned cores_ = 1;
};

}  // namespace oe::projections
