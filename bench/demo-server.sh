# Sourced by the HTTP benchmarks: starts `orderengine serve --demo` on a fresh SQLite file or a
# fresh PostgreSQL database (OE_TEST_PG_ADMIN_URL, as scripts/with-test-services sets it), and
# gives partner P-004 (PLATINUM, ID-JI: WH-SBY) a credit limit and stock (through the simulated
# ERP) that never run out, so every order goes through credit, stock and SLA routing.
#   start_demo_server <path-to-orderengine> <sqlite|postgresql> <database-name-prefix>
# Sets: work (a temp dir), server (pid), port, erp_port, base (URL), token (P-004 reseller),
# admin. Stops the server and drops the database on exit. SEED_DB=<file>: SQLite only, start
# from a copy of that log instead of an empty file (the demo data is loaded only into an empty
# log, so the seed must hold it, as rebuild_bench's does).
work=$(mktemp -d)
server=""
pg_db=""
cleanup() {
    [[ -n "$server" ]] && kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null
    [[ -n "$pg_db" ]] && psql -q "$OE_TEST_PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
export AUTH_JWT_SECRET=bench-secret
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_demo_server() {
    local bin=$1 backend=$2 prefix=$3 db_url
    port=$(free_port)
    erp_port=$(free_port)
    base="http://127.0.0.1:$port"
    if [[ "$backend" == postgresql ]]; then
        pg_db="${prefix}_$$"
        # SEED_PG_DB: start from a copy of an existing database (rebuild_bench
        # --keep-pg-database), copied by PostgreSQL as a template, file by file (no WAL).
        psql -q "${OE_TEST_PG_ADMIN_URL:?run through scripts/with-test-services}" \
            -c "CREATE DATABASE $pg_db${SEED_PG_DB:+ TEMPLATE $SEED_PG_DB STRATEGY FILE_COPY}" >/dev/null
        db_url="${OE_TEST_PG_ADMIN_URL%/*}/$pg_db"
    else
        db_url="sqlite://$work/bench.db"
        # SEED_DB: start from a copy of an existing SQLite log (e.g. rebuild_bench --keep).
        if [[ -n "${SEED_DB:-}" ]]; then
            cp "$SEED_DB" "$work/bench.db"
        fi
    fi
    DATABASE_URL="$db_url" PORT=$port ERP_SIM_PORT=$erp_port "$bin" serve --demo 2>"$work/serve.log" &
    server=$!
    until curl -fs "$base/health" >/dev/null; do
        if ! kill -0 "$server" 2>/dev/null; then
            echo "the server exited before it answered /health:" >&2
            tail -5 "$work/serve.log" >&2
            return 1
        fi
        sleep 0.05
    done
    token=$("$bin" token --role reseller --partner P-004)
    admin=$("$bin" token --role admin)
    curl -fs -X PATCH -H "Authorization: Bearer $admin" -H "Idempotency-Key: bench-credit" \
        -d '{"credit_limit":1000000000000000}' "$base/api/admin/partners/P-004" >/dev/null
    curl -fs -X PUT "http://127.0.0.1:$erp_port/_sim/stock" -d '[
        {"sku":"SNS-SPF50-50","warehouse_id":"WH-SBY","on_hand":100000000},
        {"sku":"MSK-SHEET-5","warehouse_id":"WH-SBY","on_hand":100000000}]' >/dev/null
    curl -fs -X POST -H "Authorization: Bearer $admin" -H "Idempotency-Key: bench-sync" \
        "$base/api/admin/erp/sync" >/dev/null
}
