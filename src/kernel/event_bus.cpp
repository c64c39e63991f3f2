#include <oe/kernel/event_bus.hpp>

#include <chrono>

#include <oe/kernel/event_store.hpp>
#include <oe/kernel/log.hpp>
#include <oe/kernel/subscription.hpp>
#include <oe/kernel/thread_name.hpp>

namespace oe {

EventBus::EventBus(EventStore& store) : store_(store) {}

EventBus::~EventBus() {
    stop();
}

void EventBus::subscribe(std::string type, Handler handler) {
    OE_INVARIANT(!thread_.joinable(), "subscribe before the bus starts");
    subscribers_.push_back({std::move(type), std::move(handler)});
}

void EventBus::start(std::optional<std::int64_t> after_position) {
    OE_INVARIANT(!thread_.joinable(), "the bus starts once");
    const std::int64_t from = after_position.value_or(store_.head_position());
    position_ = from;
    subscription_ = std::make_unique<CatchUpSubscription>(store_, from);
    thread_ = std::thread([this] {
        name_this_thread("oe-event-bus");
        while (!stopping_.load()) {
            std::vector<RecordedEvent> batch;
            try {
                batch = subscription_->next(std::chrono::milliseconds(500));
            } catch (const std::exception& e) {
                log(LogLevel::error, "event bus cannot read the log", {{"error", e.what()}});
                std::this_thread::sleep_for(std::chrono::milliseconds(500));
                continue;
            }
            for (const auto& event : batch) {
                for (const auto& subscriber : subscribers_) {
                    if (!subscriber.type.empty() && subscriber.type != event.type) {
                        continue;
                    }
                    try {
                        subscriber.handler(event);
                    } catch (const std::exception& e) {
                        log(LogLevel::error, "event bus subscriber failed",
                            {{"type", event.type},
                             {"position", std::to_string(event.global_position)},
                             {"error", e.what()}});
                    }
                }
                position_ = event.global_position;
            }
        }
    });
}

void EventBus::stop() {
    stopping_ = true;
    if (subscription_) {
        subscription_->stop();
    }
    if (thread_.joinable()) {
        thread_.join();
    }
}

}  // namespace oe
