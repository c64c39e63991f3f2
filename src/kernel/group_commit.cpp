#include <oe/kernel/group_commit.hpp>

#include <oe/kernel/invariant.hpp>

namespace oe {

GroupCommitter::GroupCommitter(CommitBatch commit, std::size_t batch_events_max)
    : commit_(std::move(commit)), batch_events_max_(batch_events_max) {}

Result<AppendResult, AppendError> GroupCommitter::submit(std::vector<StreamAppend> streams) {
    PendingAppend mine;
    for (const auto& stream : streams) {
        mine.event_count += stream.events.size();
    }
    mine.streams = std::move(streams);

    std::unique_lock lock(mutex_);
    queue_.push_back(&mine);
    while (!mine.done) {
        if (leader_active_) {
            done_.wait(lock);
            continue;
        }
        // Become the leader: take what is queued (ours included, it is still queued because
        // nobody else committed since we pushed it) and commit it outside the lock.
        leader_active_ = true;
        std::vector<PendingAppend*> batch;
        std::size_t events = 0;
        while (!queue_.empty() &&
               (batch.empty() || events + queue_.front()->event_count <= batch_events_max_)) {
            events += queue_.front()->event_count;
            batch.push_back(queue_.front());
            queue_.pop_front();
        }
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
            }
            OE_INVARIANT(pending->failure || pending->result.has_value(),
                         "group commit left an append without a result");
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
