#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <oe/kernel/event.hpp>
#include <oe/kernel/invariant.hpp>

namespace oe {

class EventStore;
class CatchUpSubscription;

/// In-process publish/subscribe fed from the committed event log: contexts react to each
/// other's events through it without including each other (SPEC §2). Because it reads the
/// log, a subscriber never sees an event that was rolled back, and sees every committed one —
/// including those written by other instances — in global order, once.
class EventBus {
  public:
    /// Called on the bus's thread, one event at a time, in global order. An exception is
    /// logged and the bus moves on (one faulty subscriber must not stop the others).
    using Handler = std::function<void(const RecordedEvent&)>;

    explicit EventBus(EventStore& store);
    ~EventBus();
    EventBus(const EventBus&) = delete;
    EventBus& operator=(const EventBus&) = delete;

    /// Subscribes to events of `type`, or to every event when `type` is empty. Subscribe
    /// before start().
    void subscribe(std::string type, Handler handler);

    /// Delivers events committed after `after_position` (by default: the head now) until
    /// stop().
    void start(std::optional<std::int64_t> after_position = std::nullopt);
    void stop();

    /// The position of the last event delivered.
    [[nodiscard]] std::int64_t position() const noexcept { return position_.load(); }

  private:
    struct Subscriber {
        std::string type;
        Handler handler;
    };

    EventStore& store_;
    std::vector<Subscriber> subscribers_;
    std::unique_ptr<CatchUpSubscription> subscription_;
    std::atomic<std::int64_t> position_{0};
    std::atomic<bool> stopping_{false};
    std::thread thread_;
};

}  // namespace oe
