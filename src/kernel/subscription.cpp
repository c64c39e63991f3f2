#include <oe/kernel/subscription.hpp>

#include <oe/kernel/event_store.hpp>

namespace oe {

CatchUpSubscription::CatchUpSubscription(EventStore& store, std::int64_t after_position,
                                         std::size_t batch_max)
    : store_(store), position_(after_position), batch_max_(batch_max) {}

std::vector<RecordedEvent> CatchUpSubscription::next(std::chrono::milliseconds wait) {
    const auto deadline = std::chrono::steady_clock::now() + wait;
    bool claimed_news = false;
    for (;;) {
        if (stopped_.load()) {
            return {};
        }
        auto events = store_.read_all(position_, batch_max_);
        if (!events.empty()) {
            position_ = events.back().global_position;
            return events;
        }
        if (claimed_news) {
            // The head hint claimed news that is not there (a forged notification, a restored
            // database): re-read the real head so the next wait does not spin.
            (void)store_.head_position();
        }
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) {
            return {};
        }
        claimed_news = store_.wait_for_events(
            position_, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now),
            &stopped_);
    }
}

void CatchUpSubscription::stop() {
    stopped_.store(true);
    store_.interrupt_waiters();
}

}  // namespace oe
