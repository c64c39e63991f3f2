#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <oe/kernel/event_store.hpp>

namespace oe::projections {

/// The projection names a rebuild accepts: partners, pricing, credit, stock, orders,
/// system_config.
[[nodiscard]] std::vector<std::string> projection_names();

/// Where a rebuild is (GET /api/admin/projections shows it).
struct RebuildStatus {
    std::string job_id;
    std::vector<std::string> projections;
    std::string state;          // "running", "swapping", "done", "failed"
    std::int64_t position = 0;  // Events folded so far.
    std::int64_t target = 0;    // The head when it last looked.
    std::int64_t events_per_s = 0;
    std::int64_t eta_ms = 0;
    // Rows written into the shadow tables in bulk so far (the write after the fold; beside a
    // server it takes minutes, and this is what moves meanwhile).
    std::int64_t written_rows = 0;
    // The share of the time it works (percent): 100 alone; beside a server it follows how
    // busy the machine is (Pacer::adaptive, pacer.hpp), from 5 to 100.
    int share_percent = 100;
    std::int64_t started_at_us = 0;
    std::int64_t finished_at_us = 0;
    std::int64_t swapped_at = 0;  // The position the new tables took over at.
    // Where the time went (ms): folding the log, writing the shadow tables, catching up,
    // checksumming and swapping (the copy included).
    std::int64_t fold_ms = 0;
    std::int64_t write_ms = 0;
    std::int64_t swap_ms = 0;
    // Of swap_ms: the checksums of both sides (outside any hold); how long the live
    // checkpoints were held, in all (their projector waited, nothing else did: twice, to take
    // the checksums' snapshot and to swap), and of that, the final transaction that renamed
    // the tables (on SQLite it holds the database's one write lock, so checkout waited).
    std::int64_t checksum_ms = 0;
    std::int64_t held_ms = 0;
    std::int64_t locked_ms = 0;
    struct Checksum {
        std::string projection;
        std::string live;     // Of the live tables, at `live_at`.
        std::string rebuilt;  // Of the shadow tables that replaced them, caught up to the
                              // same moment (and later carried on to `swapped_at`).
        std::int64_t rows = 0;
        std::int64_t live_at = 0;  // Where the live tables were when both sides were read:
                                   // the rebuild's position too, unless no live projector
                                   // was running (then the live tables were behind).
    };
    std::vector<Checksum> checksums;
    std::string error;
};

/// A zero-downtime rebuild (issue 6): folds the whole log into a fresh write model, writes
/// every row of the chosen projections into their shadow tables (`rm_*_rebuild`) in bulk,
/// catches up with what checkout wrote meanwhile, checksums both sides as they stood at one
/// position (read through snapshots after a short hold of the live checkpoints, so the live
/// projector waits only for the last few events), and then, in one transaction that checks
/// the live checkpoints have not moved since it read them (so it cannot race the live
/// projector, in this process or another), replaces the live tables' rows with the shadow's.
/// Readers see the old rows or the new, never a mix; a crash before the swap leaves the live
/// read models untouched and the next rebuild starts over.
///
/// How much of the machine a rebuild may take.
enum class RebuildCores {
    /// Every core: the fold reads ahead on a second thread, the old shadow rows are emptied
    /// while it runs, the shadow tables are written by a thread of their own, both sides are
    /// checksummed at once. When nothing else needs the machine.
    all,
    /// Beside a server taking orders: one thread at a time; the fold and the shadow write on
    /// a thread at SCHED_IDLE, working only a share of the time that follows how busy the
    /// machine is (pacer.hpp: flat out on a quiet machine, a tenth when the cores are 60 %
    /// busy; it sleeps in proportion to each batch of the fold or chunk of the shadow write),
    /// the fold going on to what checkout appended meanwhile, each 500-row bulk insert
    /// (100 rows on SQLite, whose one write lock checkout's appends wait for) committed on its
    /// own (on PostgreSQL asynchronously, then the shadow tables vacuumed, cost-limited), and so
    /// is the catch-up; the checksums at SCHED_IDLE but not paced (a long snapshot of the live
    /// tables costs checkout more than the scans: rebuild.cpp); the two holds at the caller's
    /// priority and not paced, since the live projector waits for them. Beside ~500 orders/s a
    /// 1M-event PostgreSQL log takes minutes, not seconds (bench/README.md).
    /// A server runs it in a process of its own (`orderengine rebuild --beside-server`).
    one,
};

/// Runs on the calling thread. Throws std::invalid_argument for an unknown projection name,
/// StoreError on I/O failure.
/// Setting `cancel` stops it before the swap (StoreError "cancelled"; nothing live changed).
RebuildStatus rebuild(EventStore& store, std::vector<std::string> names,
                      const std::function<void(const RebuildStatus&)>& progress = {},
                      const std::atomic<bool>* cancel = nullptr,
                      RebuildCores cores = RebuildCores::all);

/// The JSON object GET /api/admin/projections shows for a rebuild (SPEC §6), on one line.
[[nodiscard]] std::string to_json(const RebuildStatus& status);

/// Runs one rebuild for RebuildJobs, somewhere else than on the job's thread (the server runs
/// each in a process of its own: src/app/rebuild_process.hpp): the names (empty: all), a
/// callback for its progress, and a flag that asks it to stop before the swap. Returns the
/// final status; throws (std::exception) when the rebuild failed or was cancelled. It takes the
/// store's lease "rebuild" itself.
using RebuildRunner = std::function<RebuildStatus(
    const std::vector<std::string>& names,
    const std::function<void(const RebuildStatus&)>& progress, const std::atomic<bool>& cancel)>;

/// One rebuild at a time, in the background (POST /api/admin/projections/{name}/rebuild), on
/// one core (RebuildCores::one: the server is taking orders): by `runner`, or, without one, on
/// a thread of this process. Across processes the store's lease "rebuild" keeps it to one.
class RebuildJobs {
  public:
    explicit RebuildJobs(EventStore& store, RebuildRunner runner = {});
    ~RebuildJobs();
    RebuildJobs(const RebuildJobs&) = delete;
    RebuildJobs& operator=(const RebuildJobs&) = delete;

    /// Starts a job. Nothing (and `running` set) when one is running already; throws
    /// std::invalid_argument for an unknown name.
    std::optional<RebuildStatus> start(const std::vector<std::string>& names,
                                       RebuildStatus* running);
    /// The running job, or the last one; nothing before the first.
    [[nodiscard]] std::optional<RebuildStatus> latest() const;
    /// Cancels the running job (the live read models stay as they are) and waits for it.
    void stop();

  private:
    EventStore& store_;
    RebuildRunner runner_;
    mutable std::mutex mutex_;
    std::optional<RebuildStatus> latest_;
    bool running_ = false;
    std::atomic<bool> cancel_{false};
    std::thread thread_;
};

}  // namespace oe::projections
