#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <oe/kernel/event.hpp>

namespace oe {

/// State a command's decision needs, folded from the event log (the write model).
///
/// The store keeps it exact for EventStore::decide_and_append: under its write lock it applies
/// every event committed since position() — by this process or any other — then runs the
/// decision, writes its events and applies them too, before the next decision of the batch.
/// So a decision never sees stale state, however many instances share the database.
class DecisionState {
  public:
    virtual ~DecisionState() = default;

    /// The global position of the last event applied (0 when nothing was).
    [[nodiscard]] virtual std::int64_t position() const = 0;

    /// Folds one committed event. Called in global order, each event exactly once, always
    /// under the store's write lock (never concurrently with a decision).
    virtual void apply(const RecordedEvent& event) = 0;

    /// Forgets everything (back to position 0). The store calls it when a batch whose events
    /// it had already applied failed to commit; the next decision rebuilds from the log.
    virtual void clear() = 0;
};

/// A decision: reads the (current) state it closes over and returns the appends to make. An
/// empty result appends nothing (a rejected command). Must be quick, must not call the store,
/// and may throw only for bugs (the exception then fails this one caller).
using Decide = std::function<std::vector<StreamAppend>()>;

}  // namespace oe
