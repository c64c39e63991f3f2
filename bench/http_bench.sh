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
source "$(dirname "$0")/demo-server.sh"
start_demo_server "$bin" "$backend" oe_http_bench

source "$(dirname "$0")/order-lua.sh"
write_order_lua "$work/order.lua" bench

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
run "GET /api/catalog" -H "Authorization: Bearer $token" "$base/api/catalog"
run "POST /api/orders (new key each)" -s "$work/order.lua" "$base"
# About 500 orders/s: each connection waits 30 ms before its next request.
write_order_lua "$work/steady.lua" steady 30
run "POST /api/orders at ~500/s (paced)" -s "$work/steady.lua" "$base"
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
echo
echo "backend: $backend; server RSS after the runs: $((rss_kb / 1024)) MB"
curl -s "$base/metrics" | grep -E '^orders_placed_total|^order_failures_total' || true
