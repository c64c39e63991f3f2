#include <oe/kernel/group_commit.hpp>

#include <oe/kernel/invariant.hpp>

namespace oe {

GroupCommitter::GroupCommitter(CommitBatch commit, std::size_t batch_events_max,
                               std::size_t batch_bytes_max)
    : commit_(std::move(commit)),
      batch_events_max_(batch_events_max),
      batch_bytes_max_(batch_bytes_max) {}

Result<AppendResult, AppendError> GroupCommitter::submit(std::vector<StreamAppend> streams) {
    PendingAppend mine;
    for (const auto& stream : streams) {
        mine.event_count += stream.events.size();
        for (const auto& event : stream.events) {
            mine.byte_count += event.data.size() + event.type.size() + stream.stream_id.size();
        }
    }
    mine.streams = std::move(streams);
    return run(mine);
}

Result<AppendResult, AppendError> GroupCommitter::submit_decision(DecisionState& state,
                                                                  Decide decide) {
    PendingAppend mine;
    mine.state = &state;
    mine.decide = std::move(decide);
    mine.event_count = 1;  // Unknown until decided; decisions are small.
    return run(mine);
}

Result<AppendResult, AppendError> GroupCommitter::run(PendingAppend& mine) {
    std::unique_lock lock(mutex_);
    queue_.push_back(&mine);
    arrivals_.notify_one();
    while (!mine.done) {
        if (leader_active_) {
            done_.wait(lock);
            continue;
        }
        // Become the leader: take what is queued (ours included, it is still queued because
        // nobody else committed since we pushed it) and commit it outside the lock.
        leader_active_ = true;
        std::vector<PendingAppend*> batch;
        try {
            // The callers of the previous batch are just waking up to submit again; a moment's
            // wait for them turns alternating full and near-empty batches into full ones. A
            // lone writer (previous batch of one) never waits.
            if (queue_.size() < previous_batch_size_) {
                arrivals_.wait_for(lock, gather_wait_max,
                                   [&] { return queue_.size() >= previous_batch_size_; });
            }
            batch.reserve(queue_.size());
        } catch (...) {
            leader_active_ = false;
            std::erase(queue_, &mine);
            done_.notify_all();
            throw;
        }
        std::size_t events = 0;
        std::size_t bytes = 0;
        DecisionState* state = nullptr;
        while (!queue_.empty() &&
               (batch.empty() || (events + queue_.front()->event_count <= batch_events_max_ &&
                                  bytes + queue_.front()->byte_count <= batch_bytes_max_))) {
            if (queue_.front()->state != nullptr) {
                if (state != nullptr && state != queue_.front()->state) {
                    break;  // Another write model: next batch.
                }
                state = queue_.front()->state;
            }
            events += queue_.front()->event_count;
            bytes += queue_.front()->byte_count;
            batch.push_back(queue_.front());  // Never reallocates: reserved above.
            queue_.pop_front();
        }
        previous_batch_size_ = batch.size();
        lock.unlock();
        std::exception_ptr failure;
        try {
            commit_(batch);
        } catch (...) {
            failure = std::current_exception();
        }
        lock.lock();
        for (PendingAppend* pending : batch) {
            if (failure) {
                pending->failure = failure;
            } else if (!pending->result.has_value() && !pending->failure) {
                // A commit function that forgets an entry is a bug; fail that caller alone.
                pending->failure = std::make_exception_ptr(
                    InvariantViolation("group commit left an append without a result"));
            }
            pending->done = true;
        }
        leader_active_ = false;
        done_.notify_all();
    }
    lock.unlock();
    if (mine.failure) {
        std::rethrow_exception(mine.failure);
    }
    return std::move(*mine.result);
}

}  // namespace oe
