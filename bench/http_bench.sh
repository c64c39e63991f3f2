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
run "GET /api/catalog" -H "Authorization: Bearer $token" "$base/api/catalog"
run "POST /api/orders (new key each)" -s "$work/order.lua" "$base"
# About 500 orders/s: each connection waits `delay` ms before its next request (wrk's own
# pacing; wrk2 is not in Debian), so the rate is measured, not promised.
sed 's/^request = function()/function delay()\n    return 30\nend\nrequest = function()/' \
    "$work/order.lua" | sed 's/bench-%d-%d/steady-%d-%d/' >"$work/steady.lua"
run "POST /api/orders at ~500/s (paced)" -s "$work/steady.lua" "$base"
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
echo
echo "backend: $backend; server RSS after the runs: $((rss_kb / 1024)) MB"
curl -s "$base/metrics" | grep -E '^orders_placed_total|^order_failures_total' || true
