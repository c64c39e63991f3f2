#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <oe/events/events.hpp>
#include <oe/kernel/event_store.hpp>
#include <oe/model/commerce_state.hpp>

namespace oe::projections {

/// A read model kept from the global log. The runner folds every event into one shared
/// model::CommerceState first (the same fold decisions use, so what users read and what
/// commands decide never disagree), then lets each projection observe the events past its
/// checkpoint, then asks it to write what changed in the transaction that moves its checkpoint.
class Projection {
  public:
    virtual ~Projection() = default;

    /// The checkpoint name: "pricing", "credit", "stock", "orders", "system_config", …
    [[nodiscard]] virtual std::string_view name() const = 0;

    /// Notes what `event` changes. `state` has already applied it.
    virtual void observe(const RecordedEvent& event, const events::DomainEvent& decoded,
                         const model::CommerceState& state) = 0;

    /// Writes every row noted since the last flush, as `state` has them now, then forgets them.
    virtual void flush(SqlTx& tx, const model::CommerceState& state) = 0;

    /// flush() for a rebuild's catch-up of its shadow tables, where throughput counts more
    /// than what a single event costs: the same rows, written in bulk where that is cheaper
    /// (rm_orders: every touched order's row rewritten from `state`). Default: flush().
    virtual void flush_in_bulk(SqlTx& tx, const model::CommerceState& state) { flush(tx, state); }

    /// Forgets what was noted (the transaction that would have written it failed).
    virtual void discard() = 0;

    /// The tables it writes, by their live names ("rm_pricing", …).
    [[nodiscard]] virtual std::vector<std::string> tables() const = 0;

    /// Writes every row `state` implies into its (empty) tables, in bulk: what a rebuild does
    /// instead of replaying flushes. Must give exactly the rows observe/flush would have.
    virtual void write_all(SqlTx& tx, const model::CommerceState& state) = 0;
};

/// Every row of one live read-model table ("rm_credit", …) as `state` implies it, in key
/// order: what a rebuild writes and what a point-in-time replay shows. Throws
/// std::invalid_argument for a table no projection writes.
struct ReadModelRows {
    std::string table;
    std::vector<std::string> columns;
    std::vector<std::vector<SqlValue>> rows;
};
[[nodiscard]] ReadModelRows read_model_rows(std::string_view table,
                                            const model::CommerceState& state);
/// The same rows handed to `row` one at a time (nothing held); returns the columns.
std::vector<std::string> for_each_read_model_row(
    std::string_view table, const model::CommerceState& state,
    const std::function<void(std::vector<SqlValue>)>& row);

/// The read models of SPEC §1: partners (directory), pricing, credit, stock, orders and
/// system_config, in that order. `table_suffix` names the tables they write: "" for the live
/// read models, "_rebuild" for the shadow tables of a rebuild.
[[nodiscard]] std::vector<std::unique_ptr<Projection>> make_read_models(
    std::string_view table_suffix = "");

}  // namespace oe::projections
