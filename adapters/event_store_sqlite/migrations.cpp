#include "migrations.hpp"

namespace oe::sqlite {

// Append-only list: a shipped migration is never edited; a change is a new entry.
const std::vector<Migration>& migrations() {
    static const std::vector<Migration> all = {
        {1, "event log, checkpoints, immutability triggers", R"sql(
CREATE TABLE oe_events (
    global_position INTEGER PRIMARY KEY,
    stream_id       TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL CHECK (stream_version >= 1),
    type            TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL CHECK (schema_version >= 1),
    data            TEXT    NOT NULL CHECK (json_valid(data)),
    metadata        TEXT    NOT NULL CHECK (json_valid(metadata)),
    recorded_at_us  INTEGER NOT NULL,
    UNIQUE (stream_id, stream_version)
);
CREATE TRIGGER oe_events_no_update BEFORE UPDATE ON oe_events
BEGIN SELECT RAISE(ABORT, 'oe_events is append-only: UPDATE refused'); END;
CREATE TRIGGER oe_events_no_delete BEFORE DELETE ON oe_events
BEGIN SELECT RAISE(ABORT, 'oe_events is append-only: DELETE refused'); END;
CREATE TABLE oe_checkpoints (
    projection    TEXT    PRIMARY KEY,
    position      INTEGER NOT NULL,
    updated_at_us INTEGER NOT NULL
);
)sql"},
    };
    return all;
}

}  // namespace oe::sqlite
