#pragma once

#include <vector>

namespace oe::postgres {

struct Migration {
    int version;
    const char* name;
    const char* sql;
};

/// Append-only: a shipped migration is never edited; a change is a new entry.
const std::vector<Migration>& migrations();

/// Key of the transaction-level advisory lock every append takes (commit-order serialisation,
/// docs/design/gap-free-global-order.md). The SQL functions oe_append_batch and oe_lock_appends
/// take it (migrations 1 and 6).
inline constexpr long long append_lock_key = 7236051342785921001LL;
/// Key of the session-level advisory lock that serialises migrations across instances.
inline constexpr long long migration_lock_key = 7236051342785921002LL;

}  // namespace oe::postgres
