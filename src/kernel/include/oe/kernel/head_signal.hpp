#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace oe {

/// What a store knows about its head, and the waiters that want to hear when it moves. Shared
/// by both backends: the writer (or LISTEN/NOTIFY, or a poll) reports the head, subscribers
/// wait for it to pass their position.
class HeadSignal {
  public:
    /// The last head reported. A hint: a reader must still read to find out what is there.
    [[nodiscard]] std::int64_t hint() const noexcept { return head_.load(); }

    /// A head that can only have moved forward (our own commit, a notification).
    void raise(std::int64_t head);

    /// The head as just read from the database; may lower a hint that was wrong (a forged
    /// notification, a database restored under a running process).
    void reset(std::int64_t head);

    /// Wakes every waiter; each returns false.
    void interrupt();

    /// Waits until the hint passes `after_position` (true), `until` passes, `cancel` is set or
    /// interrupt() is called (false). `cancel` is checked under the same lock interrupt() takes,
    /// so setting it and then calling interrupt() can never be missed.
    bool wait(std::int64_t after_position, std::chrono::steady_clock::time_point until,
              const std::atomic<bool>* cancel);

  private:
    std::mutex mutex_;
    std::condition_variable changed_;
    std::atomic<std::int64_t> head_{0};
    std::uint64_t interrupts_ = 0;
};

}  // namespace oe
