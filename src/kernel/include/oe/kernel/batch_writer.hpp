#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include <oe/kernel/event.hpp>
#include <oe/kernel/group_commit.hpp>
#include <oe/kernel/result.hpp>

namespace oe {

/// What a backend offers inside one write transaction, while it holds the write lock.
class WriteTransaction {
  public:
    virtual ~WriteTransaction() = default;

    /// Committed events after `position` in global order (upcast), at most `max_count`.
    [[nodiscard]] virtual std::vector<RecordedEvent> read_after(std::int64_t position,
                                                                std::size_t max_count) = 0;

    /// Checks the expected versions and writes one (already validated) append. On success and
    /// when `written` is given, fills it with the events exactly as stored.
    [[nodiscard]] virtual Result<AppendResult, AppendError> write(
        const std::vector<StreamAppend>& streams, std::vector<RecordedEvent>* written) = 0;

    /// A backend whose round trips are dear may stage a decision's append instead of writing
    /// it: when it can predict the outcome exactly (positions follow `head`, the log's head
    /// once the earlier appends are in; every stream has an exact or no-stream expectation),
    /// it returns that outcome and fills `written`, and sends the staged appends later, all in
    /// one go, at flush_staged(). Nothing: write() it (after flush_staged()).
    [[nodiscard]] virtual std::optional<Result<AppendResult, AppendError>> stage(
        const std::vector<StreamAppend>& /*streams*/, std::int64_t /*head*/,
        std::vector<RecordedEvent>* /*written*/) {
        return std::nullopt;
    }
    /// Sends what stage() kept. Throws when the store's outcome differs from a prediction
    /// (a stream the decision thought new exists, say); the caller then rolls back, clears the
    /// state and runs the batch again without staging.
    virtual void flush_staged() {}
};

/// Runs a group-commit batch inside `tx` (the backend begins and commits it): when the batch
/// carries decisions, first brings their DecisionState up to date with the log, then decides,
/// writes and applies entry by entry, so each decision sees every earlier one. Sets a result
/// (or a failure) on every entry. If it throws, nothing may be committed, and the caller must
/// clear() the batch's state, which may already hold events of the failed transaction.
void run_batch(WriteTransaction& tx, std::vector<PendingAppend*>& batch);

/// The DecisionState of a batch, or nullptr when it carries only plain appends.
[[nodiscard]] DecisionState* batch_state(const std::vector<PendingAppend*>& batch);

}  // namespace oe
