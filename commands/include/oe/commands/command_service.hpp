#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <oe/commands/commands.hpp>
#include <oe/kernel/event_store.hpp>
#include <oe/kernel/time.hpp>
#include <oe/model/commerce_state.hpp>
#include <type_traits>

namespace oe::commands {

/// What an accepted command did.
struct Outcome {
    AppendResult append;                 // Positions and versions; first_position 0 when a no-op.
    std::vector<StreamAppend> appended;  // The events, as appended.
};

/// The thin handlers: load state → decide → append → (projections and the bus follow the
/// log). Every command of a process goes through one CommerceState and the store's serialised
/// decide_and_append, so a decision always sees every committed event, from any instance.
class CommandService {
  public:
    explicit CommandService(EventStore& store) : store_(store) {}

    /// Decides `command` against the current state and appends the result atomically.
    /// Throws StoreError (and AppendOutcomeUnknown) on I/O failure; nothing else.
    /// What to append beside a command's own events, in the same transaction, given its
    /// decision (the appends, or the rejection) and the state it was decided against — e.g.
    /// the stored response of an idempotent request. Runs under the store's write lock.
    using Companion = std::function<std::optional<StreamAppend>(const Decision& decision,
                                                                const CommerceState& state)>;

    template <typename Command>
    Result<Outcome, Rejection> execute(Command command, const EventMetadata& metadata,
                                       const Companion& companion = {}) {
        // The handler supplies the clock; decisions stay pure.
        if constexpr (std::is_same_v<Command, PlaceOrder>) {
            if (command.placed_at_us == 0) {
                command.placed_at_us = now_us();
            }
        }
        if constexpr (requires { command.changed_at_us; }) {
            if (command.changed_at_us == 0) {
                command.changed_at_us = now_us();
            }
        }
        std::optional<Rejection> rejection;
        std::vector<StreamAppend> appended;
        auto result = store_.decide_and_append(state_, [&]() -> std::vector<StreamAppend> {
            // A store may run a decision again (PostgreSQL, when a staged batch did not land
            // as decided): only the last run counts.
            rejection.reset();
            appended.clear();
            auto decision = decide(command, state_, metadata);
            std::optional<StreamAppend> extra;
            if (companion) {
                extra = companion(decision, state_);
            }
            std::vector<StreamAppend> streams;
            if (decision.ok()) {
                appended = decision.value();
                streams = std::move(decision).value();
            } else {
                rejection = decision.error();
            }
            if (extra) {
                streams.push_back(std::move(*extra));
            }
            return streams;
        });
        if (!result.ok()) {
            return store_rejection(result.error());
        }
        if (rejection) {
            return std::move(*rejection);
        }
        return Outcome{std::move(result).value(), std::move(appended)};
    }

    /// Runs `read` against the write model brought up to date with every committed event,
    /// under the store's write lock: a consistent view for background workers. Keep it short
    /// (it holds up decisions). Throws StoreError on I/O failure.
    template <typename Read>
    void with_state(Read&& read) {
        auto result = store_.decide_and_append(state_, [&]() -> std::vector<StreamAppend> {
            read(static_cast<const CommerceState&>(state_));
            return {};
        });
        if (!result.ok()) {
            throw StoreError("reading the write model failed");
        }
    }

    /// A new order id: "O-" + a ULID (time-ordered, 80 random bits).
    [[nodiscard]] static std::string new_order_id();

  private:
    static Rejection store_rejection(const AppendError& error);

    EventStore& store_;
    CommerceState state_;
};

}  // namespace oe::commands
