#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <oe/kernel/event.hpp>

namespace oe {

class EventStore;

/// Reads the global log from a checkpoint: first it catches up in pages, then it follows new
/// commits live (LISTEN/NOTIFY on PostgreSQL, the writer's signal or polling on SQLite).
/// Pull-based so the caller decides when a batch is applied and checkpointed.
class CatchUpSubscription {
  public:
    CatchUpSubscription(EventStore& store, std::int64_t after_position,
                        std::size_t batch_max = 1000);

    /// The next batch in global order, waiting up to `wait` for one when caught up.
    /// Empty when nothing arrived in time or stop() was called.
    std::vector<RecordedEvent> next(std::chrono::milliseconds wait);

    /// The position of the last event handed out.
    [[nodiscard]] std::int64_t position() const noexcept { return position_; }

    /// Makes next() return promptly; safe to call from another thread.
    void stop();
    [[nodiscard]] bool stopped() const noexcept { return stopped_.load(); }

  private:
    EventStore& store_;
    std::int64_t position_;
    std::size_t batch_max_;
    std::atomic<bool> stopped_{false};
};

}  // namespace oe
