#include <oe/kernel/batch_writer.hpp>

#include <exception>

namespace oe {

namespace {

constexpr std::size_t catch_up_page = 10'000;

}  // namespace

DecisionState* batch_state(const std::vector<PendingAppend*>& batch) {
    for (const PendingAppend* pending : batch) {
        if (pending->state != nullptr) {
            return pending->state;
        }
    }
    return nullptr;
}

void run_batch(WriteTransaction& tx, std::vector<PendingAppend*>& batch) {
    DecisionState* state = batch_state(batch);
    if (state != nullptr) {
        // Under the write lock nothing can commit behind our back: after this loop the state
        // has seen every committed event, whichever process wrote it.
        for (;;) {
            const auto events = tx.read_after(state->position(), catch_up_page);
            for (const auto& event : events) {
                state->apply(event);
            }
            if (events.size() < catch_up_page) {
                break;
            }
        }
    }
    std::vector<RecordedEvent> written;
    for (PendingAppend* pending : batch) {
        if (pending->decide) {
            std::vector<StreamAppend> streams;
            try {
                streams = pending->decide();
            } catch (...) {
                pending->failure = std::current_exception();  // This caller's bug alone.
                continue;
            }
            if (streams.empty()) {
                pending->result.emplace(AppendResult{});
                continue;
            }
            if (auto invalid = validate_append(streams)) {
                pending->result.emplace(std::move(*invalid));
                continue;
            }
            pending->streams = std::move(streams);
        }
        written.clear();
        // Only decisions are staged: their expectations come from the exact state, so they
        // hold but for streams the state does not track. A plain append's expectation is its
        // caller's guess, and a wrong one is an ordinary conflict, not a reason to decide the
        // batch again.
        auto staged = state != nullptr && pending->decide
                          ? tx.stage(pending->streams, state->position(), &written)
                          : std::nullopt;
        if (!staged) {
            tx.flush_staged();  // What was staged goes first: positions follow the order.
            written.clear();
            staged = tx.write(pending->streams, state != nullptr ? &written : nullptr);
        }
        if (staged->ok() && state != nullptr) {
            for (const auto& event : written) {
                state->apply(event);
            }
        }
        pending->result.emplace(std::move(*staged));
    }
    tx.flush_staged();
}

}  // namespace oe
