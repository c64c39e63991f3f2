#include <oe/kernel/head_signal.hpp>

namespace oe {

void HeadSignal::raise(std::int64_t head) {
    if (head <= head_.load()) {
        return;
    }
    std::lock_guard lock(mutex_);
    if (head > head_.load()) {
        head_.store(head);
        changed_.notify_all();
    }
}

void HeadSignal::reset(std::int64_t head) {
    std::lock_guard lock(mutex_);
    const bool forward = head > head_.load();
    head_.store(head);
    if (forward) {
        changed_.notify_all();
    }
}

void HeadSignal::interrupt() {
    std::lock_guard lock(mutex_);
    ++interrupts_;
    changed_.notify_all();
}

bool HeadSignal::wait(std::int64_t after_position, std::chrono::steady_clock::time_point until,
                      const std::atomic<bool>* cancel) {
    std::unique_lock lock(mutex_);
    const std::uint64_t interrupts = interrupts_;
    for (;;) {
        if (head_.load() > after_position) {
            return true;
        }
        if ((cancel != nullptr && cancel->load()) || interrupts_ != interrupts) {
            return false;
        }
        if (changed_.wait_until(lock, until) == std::cv_status::timeout) {
            return head_.load() > after_position;
        }
    }
}

}  // namespace oe
