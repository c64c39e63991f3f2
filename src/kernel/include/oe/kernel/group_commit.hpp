#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include <oe/kernel/decision_state.hpp>
#include <oe/kernel/event.hpp>
#include <oe/kernel/result.hpp>

namespace oe {

/// One append waiting in a group commit.
struct PendingAppend {
    std::vector<StreamAppend> streams;  // The append, or what `decide` returns.
    DecisionState* state = nullptr;     // Set for a decision: decide against this state.
    Decide decide;
    std::size_t event_count = 0;
    std::size_t byte_count = 0;
    std::optional<Result<AppendResult, AppendError>> result;  // Set by the commit function.
    std::exception_ptr failure;                               // Set when the batch failed.
    bool done = false;
};

/// Group commit without a thread of its own: the first caller that finds no commit running
/// becomes the leader, takes everything queued (up to `batch_events_max`), commits it in one
/// transaction with one durable flush, and hands each caller its own result. Callers that
/// arrive while a commit runs queue up for the next one. One writer pays no hand-off; many
/// writers share each flush.
class GroupCommitter {
  public:
    /// Commits the batch in one transaction. Must set `result` on every entry (a rejection for
    /// one entry never affects another) or throw, in which case nothing was committed and every
    /// caller of the batch receives the exception.
    using CommitBatch = std::function<void(std::vector<PendingAppend*>& batch)>;

    GroupCommitter(CommitBatch commit, std::size_t batch_events_max,
                   std::size_t batch_bytes_max = 32 * 1024 * 1024);

    /// Queues the append, waits for its batch to commit and returns its result.
    Result<AppendResult, AppendError> submit(std::vector<StreamAppend> streams);

    /// Queues a decision against `state`; a batch never mixes two different states.
    Result<AppendResult, AppendError> submit_decision(DecisionState& state, Decide decide);

  private:
    Result<AppendResult, AppendError> run(PendingAppend& mine);

    CommitBatch commit_;
    std::size_t batch_events_max_;
    std::size_t batch_bytes_max_;
    std::mutex mutex_;
    std::condition_variable done_;
    std::condition_variable arrivals_;
    std::size_t previous_batch_size_ = 1;
    static constexpr std::chrono::microseconds gather_wait_max{200};
    std::deque<PendingAppend*> queue_;
    bool leader_active_ = false;
};

}  // namespace oe
