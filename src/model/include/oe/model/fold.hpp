#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>

namespace oe {
class EventStore;
}

namespace oe::model {

class CommerceState;

/// Where a fold stopped: the last event applied and when it was recorded (0, 0: none).
struct FoldEnd {
    std::int64_t position = 0;
    std::int64_t recorded_at_us = 0;
};

/// Which prefix of the log a fold covers.
struct FoldLimits {
    std::int64_t last_position = 0;        ///< Fold up to and including this position.
    std::optional<std::int64_t> until_us;  ///< Stop before the first event recorded after it.
    std::size_t batch_events = 20'000;     ///< Events per read.
    /// Read and decode the next batch on a second thread while this one applies (false: one
    /// thread, for folds that must leave the other cores to checkout).
    bool read_ahead = true;
};

/// Called after each batch with the position reached; may throw to abandon the fold
/// (a cancelled rebuild does).
using FoldProgress = std::function<void(std::int64_t position)>;

/// Applies the events after `state.position()` up to `limits` to `state`, in order. Uses two
/// cores (unless `limits.read_ahead` is false): while this thread applies one batch, a second
/// reads the next from the store and decodes its JSON (the store is called from one thread at
/// a time). Shared by the
/// point-in-time replay, the audit and the read-model rebuild.
FoldEnd fold_log(EventStore& store, CommerceState& state, const FoldLimits& limits,
                 const FoldProgress& progress = {});

}  // namespace oe::model
