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

-- Appends a batch of appends in the caller's transaction. The batch comes as parallel arrays
-- (no JSON to re-parse per event): append a owns stream slots up to p_append_slot_end[a]
-- (exclusive, 1-based), slot s owns events up to p_slot_event_end[s] (and p_event_slot names
-- each event's slot); p_expected[s] is -1 (any),
-- 0 (no stream) or N. One row per append, in order: ok with first/last position and the new
-- version of each of its streams, or not ok with the conflicting stream and its actual version
-- (that append wrote nothing; the others are unaffected).
-- The transaction-level advisory lock makes positions follow commit order: it is released
-- only after the transaction is visible, so a reader that sees position N sees all below N
-- (docs/design/gap-free-global-order.md).
CREATE FUNCTION oe_append_batch(
    p_append_slot_end int[], p_slot_event_end int[], p_stream_id text[], p_expected bigint[],
    p_event_slot int[], p_type text[], p_schema_version int[], p_data json[],
    p_metadata json[])
RETURNS TABLE (ok boolean, first_position bigint, last_position bigint, versions bigint[],
               conflict_stream text, expected bigint, actual bigint, recorded_at_us bigint)
-- Runs as the schema owner: the application role may append only through this function, so
-- every writer takes the lock below.
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
DECLARE
    v_head        bigint;
    v_last_at     timestamptz;
    v_now         timestamptz;
    v_appends     int := COALESCE(array_length(p_append_slot_end, 1), 0);
    v_slot_start  int[];     -- Per slot: index of its first event.
    v_slot_base   bigint[];  -- Per slot: the stream's version before the append.
    v_slot_pos    bigint[];  -- Per slot: position before its first event; NULL when rejected.
    v_seen        jsonb := '{}';  -- Streams written earlier in this batch -> their new version.
    v_ok          boolean[];
    v_first       bigint[];
    v_last        bigint[];
    v_versions    text[];
    v_cstream     text[];
    v_cexpected   bigint[];
    v_cactual     bigint[];
    v_slot        int := 1;
    v_slot_end    int;
    v_actual      bigint;
    v_conflict    int;
    v_count       bigint;
    v_append_head bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(7236051342785921001);
    SELECT e.global_position, e.recorded_at INTO v_head, v_last_at
        FROM oe_events e ORDER BY e.global_position DESC LIMIT 1;
    v_head := COALESCE(v_head, 0);
    -- Time never goes backwards along the log, so an as-of instant maps to a prefix of it.
    v_now := GREATEST(clock_timestamp(), COALESCE(v_last_at, '-infinity'::timestamptz));
    FOR a IN 1 .. v_appends LOOP
        v_slot_end := p_append_slot_end[a];
        v_conflict := NULL;
        FOR s IN v_slot .. v_slot_end - 1 LOOP
            v_actual := (v_seen ->> p_stream_id[s])::bigint;
            IF v_actual IS NULL THEN
                SELECT COALESCE(MAX(e.stream_version), 0) INTO v_actual
                    FROM oe_events e WHERE e.stream_id = p_stream_id[s];
            END IF;
            IF p_expected[s] <> -1 AND p_expected[s] <> v_actual THEN
                v_conflict := s;
                EXIT;
            END IF;
            v_slot_base[s] := v_actual;
        END LOOP;
        IF v_conflict IS NOT NULL THEN
            v_ok[a] := false;
            v_cstream[a] := p_stream_id[v_conflict];
            v_cexpected[a] := p_expected[v_conflict];
            v_cactual[a] := v_actual;
        ELSE
            v_append_head := v_head;
            v_versions[a] := '';
            FOR s IN v_slot .. v_slot_end - 1 LOOP
                v_slot_start[s] := CASE WHEN s = 1 THEN 1 ELSE p_slot_event_end[s - 1] END;
                v_count := p_slot_event_end[s] - v_slot_start[s];
                v_slot_pos[s] := v_head;
                v_head := v_head + v_count;
                v_seen := v_seen || jsonb_build_object(p_stream_id[s], v_slot_base[s] + v_count);
                v_versions[a] := v_versions[a] || CASE WHEN s = v_slot THEN '' ELSE ',' END
                                 || (v_slot_base[s] + v_count)::text;
            END LOOP;
            v_ok[a] := true;
            v_first[a] := v_append_head + 1;
            v_last[a] := v_head;
        END IF;
        v_slot := v_slot_end;
    END LOOP;
    -- One insert for every accepted append of the batch. Event i of slot s gets position
    -- pos[s] + (i - start[s] + 1) and version base[s] + (i - start[s] + 1).
    INSERT INTO oe_events (global_position, stream_id, stream_version, type, schema_version,
                           data, metadata, recorded_at)
    SELECT v_slot_pos[u.slot] + (u.n - v_slot_start[u.slot] + 1), p_stream_id[u.slot],
           v_slot_base[u.slot] + (u.n - v_slot_start[u.slot] + 1), u.t, u.v, u.d, u.m, v_now
      FROM unnest(p_event_slot, p_type, p_schema_version, p_data, p_metadata)
           WITH ORDINALITY AS u(slot, t, v, d, m, n)
     WHERE v_slot_pos[u.slot] IS NOT NULL;
    PERFORM pg_notify('oe_events', v_head::text);
    RETURN QUERY
        SELECT v_ok[a], v_first[a], v_last[a], ('{' || v_versions[a] || '}')::bigint[],
               v_cstream[a], v_cexpected[a], v_cactual[a],
               (extract(epoch FROM v_now) * 1000000)::bigint
          FROM generate_series(1, v_appends) a ORDER BY a;
END
$fn$;
)sql"},
        {2, "read models: partners, warehouses, pricing, credit, stock, orders, system_config",
         R"sql(
CREATE TABLE rm_partners (
    partner_id TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    tier       TEXT NOT NULL,
    region     TEXT NOT NULL
);
CREATE TABLE rm_warehouses (
    warehouse_id TEXT PRIMARY KEY,
    sla_hours    TEXT NOT NULL
);
CREATE TABLE rm_pricing (
    tier               TEXT    NOT NULL,
    sku                TEXT    NOT NULL,
    name               TEXT    NOT NULL,
    base_price         BIGINT  NOT NULL,
    unit_price         BIGINT  NOT NULL,
    discount_bps       INTEGER NOT NULL,
    loyalty_multiplier TEXT    NOT NULL,
    PRIMARY KEY (tier, sku)
);
CREATE TABLE rm_credit (
    partner_id        TEXT   PRIMARY KEY,
    credit_limit      BIGINT NOT NULL,
    erp_debt          BIGINT NOT NULL,
    open_orders_total BIGINT NOT NULL,
    available_credit  BIGINT NOT NULL,
    debt_synced_at    TEXT
);
CREATE TABLE rm_stock (
    sku          TEXT   NOT NULL,
    warehouse_id TEXT   NOT NULL,
    on_hand      BIGINT NOT NULL,
    reserved     BIGINT NOT NULL,
    buffer_qty   BIGINT NOT NULL,
    available    BIGINT NOT NULL,
    as_of        TEXT,
    PRIMARY KEY (sku, warehouse_id)
);
CREATE TABLE rm_orders (
    order_id        TEXT   PRIMARY KEY,
    partner_id      TEXT   NOT NULL,
    status          TEXT   NOT NULL,
    tier            TEXT   NOT NULL,
    lines           TEXT   NOT NULL,
    subtotal        BIGINT NOT NULL,
    loyalty_points  BIGINT NOT NULL,
    warehouse       TEXT,
    placed_at       TEXT   NOT NULL,
    placed_by       TEXT   NOT NULL,
    on_behalf_of    TEXT,
    erp_order_ref   TEXT,
    placed_position BIGINT NOT NULL
);
CREATE INDEX rm_orders_partner ON rm_orders (partner_id, order_id);
CREATE TABLE rm_system_config (
    key        TEXT   PRIMARY KEY,
    value      TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    updated_by TEXT,
    updated_at TEXT
);
)sql"},
        {3, "shadow tables a zero-downtime rebuild writes before it swaps them in", R"sql(
CREATE TABLE rm_partners_rebuild (LIKE rm_partners INCLUDING ALL);
CREATE TABLE rm_warehouses_rebuild (LIKE rm_warehouses INCLUDING ALL);
CREATE TABLE rm_pricing_rebuild (LIKE rm_pricing INCLUDING ALL);
CREATE TABLE rm_credit_rebuild (LIKE rm_credit INCLUDING ALL);
CREATE TABLE rm_stock_rebuild (LIKE rm_stock INCLUDING ALL);
CREATE TABLE rm_orders_rebuild (LIKE rm_orders INCLUDING ALL);
CREATE TABLE rm_system_config_rebuild (LIKE rm_system_config INCLUDING ALL);
)sql"},
        {4, "appends record their transaction's time, so a batch of decisions knows it ahead",
         R"sql(
-- oe_append_batch stamped events with GREATEST(clock_timestamp(), the last recorded_at); with
-- now() (the transaction's start) every append of a transaction gets the same, predictable
-- time, and it still never goes backwards along the log. Only that expression changes.
DO $migration$
DECLARE
    v_definition text := pg_get_functiondef('oe_append_batch(int[], int[], text[], bigint[], '
        'int[], text[], int[], json[], json[])'::regprocedure);
BEGIN
    IF position('GREATEST(clock_timestamp(),' IN v_definition) = 0 THEN
        RAISE EXCEPTION 'oe_append_batch is not the version migration 1 created';
    END IF;
    EXECUTE replace(v_definition, 'GREATEST(clock_timestamp(),', 'GREATEST(now(),');
END
$migration$;
)sql"},
        {5,
         "rm_orders keeps each order line positionally: [sku, qty, base_price, unit_price, "
         "discount_bps, line_total]",
         R"sql(
-- The order view's form named every field on every line: two thirds of the column, and the
-- column half of each row. The API renders the view's form from this one
-- (projections/order_lines.hpp). Rows already converted (or written by this version) start
-- with '[[' and are left alone. A line missing a field makes its row's value NULL, which the
-- column refuses, and a number that is not an integer fails its cast: the migration fails
-- rather than drop or change the line. (500k orders: ~25 s on the
-- project's 2-core machine.)
UPDATE rm_orders o SET lines = (
    SELECT CASE WHEN count(line) = count(*)
                THEN '[' || COALESCE(string_agg(line, ',' ORDER BY n), '') || ']' END
    FROM (SELECT n, '[' || to_json(sku)::text || ',' || qty || ',' || base_price || ','
                    || unit_price || ',' || discount_bps || ',' || line_total || ']' AS line
          FROM ROWS FROM (json_to_recordset(o.lines::json) AS (sku text, qty bigint,
                          base_price bigint, unit_price bigint, discount_bps bigint,
                          line_total bigint))
               WITH ORDINALITY AS l(sku, qty, base_price, unit_price, discount_bps, line_total,
                                    n)) AS each_line)
WHERE o.lines LIKE '[{%';
-- The shadow table holds what the last rebuild swapped out, which nothing reads and the next
-- rebuild empties first anyway.
TRUNCATE rm_orders_rebuild;
)sql"},
        {6,
         "appends are planned once per connection: the append lock in a function, the "
         "append function's answer without a query",
         R"sql(
-- Under checkout each of these was planned anew on every call (bench/README.md, prepared
-- statements): oe_append_batch's answer, a query over generate_series whose plan PostgreSQL
-- redid for each number of appends, becomes a loop; and the lock a batch of decisions takes
-- first, with the time its appends record, sent as two statements of text each time, becomes
-- a function the writer calls as a prepared statement. The rest of oe_append_batch is
-- unchanged. Run again (its version deleted), it changes nothing.
DO $migration$
DECLARE
    v_definition text := pg_get_functiondef('oe_append_batch(int[], int[], text[], bigint[], '
        'int[], text[], int[], json[], json[])'::regprocedure);
    v_query text := $old$    RETURN QUERY
        SELECT v_ok[a], v_first[a], v_last[a], ('{' || v_versions[a] || '}')::bigint[],
               v_cstream[a], v_cexpected[a], v_cactual[a],
               (extract(epoch FROM v_now) * 1000000)::bigint
          FROM generate_series(1, v_appends) a ORDER BY a;
$old$;
    v_loop text := $new$    recorded_at_us := (extract(epoch FROM v_now) * 1000000)::bigint;
    FOR a IN 1 .. v_appends LOOP
        ok := v_ok[a];
        first_position := v_first[a];
        last_position := v_last[a];
        versions := ('{' || v_versions[a] || '}')::bigint[];
        conflict_stream := v_cstream[a];
        expected := v_cexpected[a];
        actual := v_cactual[a];
        RETURN NEXT;
    END LOOP;
$new$;
BEGIN
    IF position(v_query IN v_definition) > 0 THEN
        EXECUTE replace(v_definition, v_query, v_loop);
    ELSIF position(v_loop IN v_definition) = 0 THEN
        RAISE EXCEPTION 'oe_append_batch is not the version migration 4 left';
    END IF;
END
$migration$;

-- Takes the append lock (oe_append_batch's) and answers the time every append of the
-- caller's transaction records: GREATEST(now(), the last recorded_at), in microseconds since
-- 1970. Volatile: the read after the lock runs on a snapshot of its own, so it sees every
-- append committed before the lock was granted.
CREATE OR REPLACE FUNCTION oe_lock_appends() RETURNS bigint LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock(7236051342785921001);
    RETURN GREATEST((extract(epoch FROM now()) * 1000000)::bigint,
                    COALESCE((SELECT (extract(epoch FROM e.recorded_at) * 1000000)::bigint
                                FROM oe_events e ORDER BY e.global_position DESC LIMIT 1), 0));
END
$fn$;
)sql"},
    };
    return all;
}

}  // namespace oe::postgres
