#!/usr/bin/env bash
# HTTP benchmark (issue 4's targets): GET /api/catalog and POST /api/orders over keep-alive
# connections with wrk, against `orderengine serve --demo` on a fresh SQLite file or PostgreSQL
# database (OE_TEST_PG_ADMIN_URL, as scripts/with-test-services sets it). The ordering partner
# gets a credit limit and stock (through the simulated ERP) that never run out, so every order
# goes through credit, stock and routing. Prints a table.
#   bench/http_bench.sh <path-to-orderengine> [seconds] [connections] [sqlite|postgresql]
set -euo pipefail
bin=${1:?usage: http_bench.sh <orderengine> [seconds] [connections] [sqlite|postgresql]}
seconds=${2:-10}
connections=${3:-16}
backend=${4:-sqlite}
command -v wrk >/dev/null || { echo "http_bench: wrk is not installed (apt-get install wrk)"; exit 2; }
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
port=$(free_port)
erp_port=$(free_port)
if [[ "$backend" == postgresql ]]; then
    pg_db="oe_http_bench_$$"
    psql -q "${OE_TEST_PG_ADMIN_URL:?run through scripts/with-test-services}" -c "CREATE DATABASE $pg_db" >/dev/null
    db_url="${OE_TEST_PG_ADMIN_URL%/*}/$pg_db"
else
    db_url="sqlite://$work/bench.db"
fi
DATABASE_URL="$db_url" PORT=$port ERP_SIM_PORT=$erp_port "$bin" serve --demo 2>"$work/serve.log" &
server=$!
until curl -fs "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.05; done
token=$("$bin" token --role reseller --partner P-004)  # PLATINUM, ID-JI: WH-SBY.
admin=$("$bin" token --role admin)
curl -fs -X PATCH -H "Authorization: Bearer $admin" -H "Idempotency-Key: b-1" \
    -d '{"credit_limit":1000000000000000}' "http://127.0.0.1:$port/api/admin/partners/P-004" >/dev/null
curl -fs -X PUT "http://127.0.0.1:$erp_port/_sim/stock" -d '[
    {"sku":"SNS-SPF50-50","warehouse_id":"WH-SBY","on_hand":100000000},
    {"sku":"MSK-SHEET-5","warehouse_id":"WH-SBY","on_hand":100000000}]' >/dev/null
curl -fs -X POST -H "Authorization: Bearer $admin" -H "Idempotency-Key: b-2" \
    "http://127.0.0.1:$port/api/admin/erp/sync" >/dev/null

# Every request a fresh Idempotency-Key: wrk's threads each number their own requests.
cat >"$work/order.lua" <<LUA
local threads = 0
function setup(thread)
    threads = threads + 1
    thread:set("id", threads)
end
local counter = 0
request = function()
    counter = counter + 1
    local key = string.format("bench-%d-%d", id, counter)
    return wrk.format("POST", "/api/orders", {
        ["Authorization"] = "Bearer $token",
        ["Content-Type"] = "application/json",
        ["Idempotency-Key"] = key,
    }, '{"lines":[{"sku":"SNS-SPF50-50","qty":3},{"sku":"MSK-SHEET-5","qty":10}]}')
end
LUA

run() {  # run <name> <wrk args...>
    local name=$1
    shift
    local out="$work/run.txt"
    wrk -t2 -c"$connections" -d"${seconds}s" --latency "$@" >"$out" 2>&1
    local rps p50 p99
    rps=$(awk '/Requests\/sec/ {print $2}' "$out")
    p50=$(awk '$1=="50%" {print $2}' "$out")
    p99=$(awk '$1=="99%" {print $2}' "$out")
    local non2xx
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$out")
    printf '| %-34s | %12s | %9s | %9s | %8s |\n' "$name" "$rps" "$p50" "$p99" "${non2xx:-0}"
}

printf '| %-34s | %12s | %9s | %9s | %8s |\n' "scenario ($connections conns, ${seconds}s)" "req/s" "p50" "p99" "non-2xx"
printf '|------------------------------------|--------------|-----------|-----------|----------|\n'
run "GET /api/catalog" -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/catalog"
run "POST /api/orders (new key each)" -s "$work/order.lua" "http://127.0.0.1:$port"
# About 500 orders/s: each connection waits `delay` ms before its next request (wrk's own
# pacing; wrk2 is not in Debian), so the rate is measured, not promised.
sed 's/^request = function()/function delay()\n    return 30\nend\nrequest = function()/' \
    "$work/order.lua" | sed 's/bench-%d-%d/steady-%d-%d/' >"$work/steady.lua"
run "POST /api/orders at ~500/s (paced)" -s "$work/steady.lua" "http://127.0.0.1:$port"
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
echo
echo "backend: $backend; server RSS after the runs: $((rss_kb / 1024)) MB"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^orders_placed_total|^order_failures_total' || true
