#include <oe/projections/runner.hpp>

#include <algorithm>

#include <oe/kernel/log.hpp>
#include <oe/kernel/thread_name.hpp>

namespace oe::projections {

namespace {

constexpr std::size_t batch_events_max = 2'000;
constexpr std::chrono::milliseconds conflict_backoff{100};

}  // namespace

ProjectionRunner::ProjectionRunner(EventStore& store,
                                   std::vector<std::unique_ptr<Projection>> projections)
    : store_(store),
      projections_(std::move(projections)),
      asynchronous_commit_(store.backend_name() == "postgresql") {
    restart();
}

ProjectionRunner::~ProjectionRunner() {
    stop();
}

void ProjectionRunner::restart() {
    // The shared state is rebuilt from the start of the log; projections observe only what
    // lies past their own checkpoint.
    state_.clear();
    for (auto& projection : projections_) {
        projection->discard();
    }
    std::vector<std::int64_t> positions;
    positions.reserve(projections_.size());
    for (const auto& projection : projections_) {
        positions.push_back(store_.load_checkpoint(projection->name()));
    }
    {
        std::lock_guard lock(mutex_);
        positions_ = std::move(positions);
    }
    subscription_ = std::make_unique<CatchUpSubscription>(store_, 0, batch_events_max);
}

bool ProjectionRunner::step(std::chrono::milliseconds wait) {
    std::lock_guard one_at_a_time(step_mutex_);
    auto batch = subscription_->next(wait);
    if (batch.empty()) {
        return false;
    }
    const std::int64_t to = batch.back().global_position;
    std::vector<std::int64_t> from;
    {
        std::lock_guard lock(mutex_);
        from = positions_;
    }
    for (const auto& event : batch) {
        // Decoded once, for the write model and the projections alike.
        const auto decoded = events::decode(event);
        state_.apply(event, decoded);
        if (!decoded.ok()) {
            continue;  // Not ours (the state already refused a corrupt event of ours).
        }
        for (std::size_t i = 0; i < projections_.size(); ++i) {
            if (event.global_position > from[i]) {
                projections_[i]->observe(event, decoded.value(), state_);
            }
        }
    }
    // Every projection that is behind moves in one transaction: one commit per batch, however
    // many read models there are (on PostgreSQL not waiting for its flush: below).
    std::vector<CheckpointMove> moves;
    std::vector<std::size_t> moving;
    for (std::size_t i = 0; i < projections_.size(); ++i) {
        if (from[i] < to) {
            moves.push_back({projections_[i]->name(), from[i], to});
            moving.push_back(i);
        }
    }
    if (!moves.empty()) {
        try {
            store_.commit_projections(moves, [&](SqlTx& tx) {
                if (asynchronous_commit_) {
                    // Read models are derived from the log, and a batch's rows commit with its
                    // checkpoints: a crash that loses the last commits loses both together,
                    // and the projector applies those events again. So the commit does not
                    // wait for its WAL flush (checkout's appends still do, for theirs).
                    tx.exec("SET LOCAL synchronous_commit TO off");
                }
                for (const auto i : moving) {
                    projections_[i]->flush(tx, state_);
                }
            });
        } catch (const CheckpointConflict&) {
            // Another instance moved a checkpoint. What we noted for (from, to] cannot be
            // trusted against its new value, so observe again from the stored checkpoints,
            // after letting the other instance get ahead.
            std::this_thread::sleep_for(conflict_backoff);
            restart();
            return true;
        }
        std::lock_guard lock(mutex_);
        for (const auto i : moving) {
            positions_[i] = to;
        }
    }
    advanced_.notify_all();
    return true;
}

std::int64_t ProjectionRunner::catch_up() {
    if (running_.load()) {
        // The thread owns the stepping; stepping here too would fight it for the step mutex
        // (and could starve). Wait for it to reach what is committed now.
        (void)wait_for(store_.head_position(), std::chrono::seconds(30));
    } else {
        while (step(std::chrono::milliseconds(0))) {
        }
    }
    std::lock_guard lock(mutex_);
    return positions_.empty() ? 0 : *std::min_element(positions_.begin(), positions_.end());
}

void ProjectionRunner::start() {
    stopping_ = false;
    running_ = true;
    thread_ = std::thread([this] {
        name_this_thread("oe-projector");
        while (!stopping_.load()) {
            try {
                step(std::chrono::milliseconds(500));
            } catch (const std::exception& e) {
                // A failed commit: the state and what projections had noted are no longer in
                // step with the checkpoints. Start over from the stored checkpoints.
                log(LogLevel::error, "projection batch failed; restarting from checkpoints",
                    {{"error", e.what()}});
                std::this_thread::sleep_for(std::chrono::milliseconds(500));
                try {
                    std::lock_guard one_at_a_time(step_mutex_);
                    restart();
                } catch (const std::exception& again) {
                    log(LogLevel::error, "projection restart failed", {{"error", again.what()}});
                }
            }
        }
    });
}

void ProjectionRunner::stop() {
    stopping_ = true;
    {
        // A step may be replacing the subscription (restart); wait for it (≤ one batch).
        std::lock_guard one_at_a_time(step_mutex_);
        if (subscription_) {
            subscription_->stop();
        }
    }
    if (thread_.joinable()) {
        thread_.join();
    }
    running_ = false;
}

bool ProjectionRunner::wait_for(std::int64_t position, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return advanced_.wait_for(lock, timeout, [&] {
        return std::all_of(positions_.begin(), positions_.end(),
                           [&](std::int64_t p) { return p >= position; });
    });
}

std::map<std::string, std::int64_t> ProjectionRunner::checkpoints() const {
    std::lock_guard lock(mutex_);
    std::map<std::string, std::int64_t> out;
    for (std::size_t i = 0; i < projections_.size(); ++i) {
        out[std::string(projections_[i]->name())] = positions_[i];
    }
    return out;
}

}  // namespace oe::projections
