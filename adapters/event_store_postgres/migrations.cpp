#include "migrations.hpp"

namespace oe::postgres {

const std::vector<Migration>& migrations() {
    static const std::vector<Migration> all = {
        {1, "event log, checkpoints, immutability triggers, append function", R"sql(
CREATE TABLE oe_events (
    global_position bigint      PRIMARY KEY,
    stream_id       text        NOT NULL,
    stream_version  bigint      NOT NULL CHECK (stream_version >= 1),
    type            text        NOT NULL,
    schema_version  integer     NOT NULL CHECK (schema_version >= 1),
    data            json        NOT NULL,
    metadata        json        NOT NULL,
    recorded_at     timestamptz NOT NULL,
    UNIQUE (stream_id, stream_version)
);
CREATE INDEX oe_events_recorded_at ON oe_events (recorded_at);

CREATE FUNCTION oe_refuse_event_mutation() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'oe_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$fn$;
CREATE TRIGGER oe_events_no_update_delete BEFORE UPDATE OR DELETE ON oe_events
    FOR EACH STATEMENT EXECUTE FUNCTION oe_refuse_event_mutation();
CREATE TRIGGER oe_events_no_truncate BEFORE TRUNCATE ON oe_events
    FOR EACH STATEMENT EXECUTE FUNCTION oe_refuse_event_mutation();

CREATE TABLE oe_checkpoints (
    projection text        PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Appends a batch of appends in the caller's transaction. Input:
--   [{"s":[{"id":stream,"e":expected,"ev":[{"t":type,"v":schema_version,"d":data,"m":metadata}]}]}]
-- where expected is -1 (any), 0 (no stream) or N. Output, one entry per append, in order:
--   {"ok":true,"first":N,"last":M,"versions":[...]} or
--   {"ok":false,"stream":id,"expected":E,"actual":A} (that append wrote nothing).
-- The transaction-level advisory lock makes positions follow commit order: it is released
-- only after the transaction is visible, so a reader that sees position N sees all below N.
CREATE FUNCTION oe_append_batch(p_batch json) RETURNS json LANGUAGE plpgsql AS $fn$
DECLARE
    v_head      bigint;
    v_last_at   timestamptz;
    v_now       timestamptz;
    v_append    json;
    v_stream    json;
    v_actual    bigint;
    v_expected  bigint;
    v_versions  bigint[];
    v_results   json[] := ARRAY[]::json[];
    v_conflict  json;
    v_first     bigint;
    v_count     bigint;
    v_i         integer;
BEGIN
    PERFORM pg_advisory_xact_lock(7236051342785921001);
    SELECT global_position, recorded_at INTO v_head, v_last_at
        FROM oe_events ORDER BY global_position DESC LIMIT 1;
    v_head := COALESCE(v_head, 0);
    -- Time never goes backwards along the log, so an as-of instant maps to a prefix of it.
    v_now := GREATEST(clock_timestamp(), COALESCE(v_last_at, '-infinity'::timestamptz));
    FOR v_append IN SELECT value FROM json_array_elements(p_batch) LOOP
        v_conflict := NULL;
        v_versions := ARRAY[]::bigint[];
        FOR v_stream IN SELECT value FROM json_array_elements(v_append->'s') LOOP
            SELECT COALESCE(MAX(stream_version), 0) INTO v_actual
                FROM oe_events WHERE stream_id = v_stream->>'id';
            v_expected := (v_stream->>'e')::bigint;
            IF v_expected <> -1 AND v_expected <> v_actual THEN
                v_conflict := json_build_object('ok', false, 'stream', v_stream->>'id',
                                                'expected', v_expected, 'actual', v_actual);
                EXIT;
            END IF;
            v_versions := v_versions || v_actual;
        END LOOP;
        IF v_conflict IS NOT NULL THEN
            v_results := v_results || v_conflict;
            CONTINUE;
        END IF;
        v_first := v_head + 1;
        v_i := 0;
        FOR v_stream IN SELECT value FROM json_array_elements(v_append->'s') LOOP
            v_i := v_i + 1;
            INSERT INTO oe_events (global_position, stream_id, stream_version, type,
                                   schema_version, data, metadata, recorded_at)
            SELECT v_head + e.n, v_stream->>'id', v_versions[v_i] + e.n, e.value->>'t',
                   (e.value->>'v')::integer, e.value->'d', e.value->'m', v_now
              FROM json_array_elements(v_stream->'ev') WITH ORDINALITY AS e(value, n);
            GET DIAGNOSTICS v_count = ROW_COUNT;
            v_head := v_head + v_count;
            v_versions[v_i] := v_versions[v_i] + v_count;
        END LOOP;
        v_results := v_results || json_build_object('ok', true, 'first', v_first, 'last', v_head,
                                                    'versions', to_json(v_versions));
    END LOOP;
    PERFORM pg_notify('oe_events', v_head::text);
    RETURN to_json(v_results);
END
$fn$;
)sql"},
    };
    return all;
}

}  // namespace oe::postgres
