#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <oe/kernel/event_store.hpp>
#include <oe/kernel/subscription.hpp>
#include <oe/model/commerce_state.hpp>
#include <oe/projections/projection.hpp>

namespace oe::projections {

/// Keeps projections up to date with the log: catch up, then follow live. Each projection has
/// its own checkpoint, committed with its rows (EventStore::commit_projection), so a crash
/// never applies an event twice or loses one. Another instance that got there first makes a
/// commit conflict; the runner then starts over from the stored checkpoints (rebuilding its
/// state from the log), so no event is ever skipped. Two instances running projectors at once
/// are correct but waste work; electing one runner per database is the ERP/worker issue's.
class ProjectionRunner {
  public:
    ProjectionRunner(EventStore& store, std::vector<std::unique_ptr<Projection>> projections);
    ~ProjectionRunner();
    ProjectionRunner(const ProjectionRunner&) = delete;
    ProjectionRunner& operator=(const ProjectionRunner&) = delete;

    /// Applies what is committed now, batch by batch, and returns the position reached. While
    /// the background thread runs, waits (up to 30 s) for it to get there instead.
    std::int64_t catch_up();

    /// Follows the log on a background thread until stop().
    void start();
    /// Stops following and returns after the batch in progress has committed.
    void stop();

    /// Blocks until every projection has reached `position` (true) or the timeout passes.
    bool wait_for(std::int64_t position, std::chrono::milliseconds timeout);

    /// Each projection's checkpoint, by name.
    [[nodiscard]] std::map<std::string, std::int64_t> checkpoints() const;

  private:
    /// One batch: waits up to `wait` for events; false when none came.
    bool step(std::chrono::milliseconds wait);
    void restart();

    EventStore& store_;
    std::vector<std::unique_ptr<Projection>> projections_;
    bool asynchronous_commit_;  // PostgreSQL: batch commits do not wait for their WAL flush.
    model::CommerceState state_;
    std::unique_ptr<CatchUpSubscription> subscription_;
    std::vector<std::int64_t> positions_;
    mutable std::mutex mutex_;  // Guards positions_ for readers on other threads.
    std::condition_variable advanced_;
    std::mutex step_mutex_;  // One step at a time (catch_up() and the thread).
    std::atomic<bool> stopping_{false};
    std::atomic<bool> running_{false};  // The background thread owns stepping.
    std::thread thread_;
};

}  // namespace oe::projections
