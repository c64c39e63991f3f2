#!/usr/bin/env bash
# HTTP benchmark (issue 4's targets): GET /api/catalog and POST /api/orders over keep-alive
# connections with wrk, against `orderengine serve --demo` on a fresh SQLite file. Prints a table.
#   bench/http_bench.sh <path-to-orderengine> [seconds] [connections]
set -euo pipefail
bin=${1:?usage: http_bench.sh <orderengine> [seconds] [connections]}
seconds=${2:-10}
connections=${3:-16}
command -v wrk >/dev/null || { echo "http_bench: wrk is not installed (apt-get install wrk)"; exit 2; }
work=$(mktemp -d)
server=""
trap '[[ -n "$server" ]] && kill -TERM "$server" 2>/dev/null; rm -rf "$work"' EXIT
export AUTH_JWT_SECRET=bench-secret
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DATABASE_URL="sqlite://$work/bench.db" PORT=$port "$bin" serve --demo 2>"$work/serve.log" &
server=$!
until curl -fs "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.05; done
token=$("$bin" token --role reseller --partner P-004)  # PLATINUM, 75,000,000 credit.

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
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
orders=$(sqlite3 "$work/bench.db" "SELECT COUNT(*) FROM oe_events WHERE type = 'OrderPlaced'")
held=$(sqlite3 "$work/bench.db" "SELECT COUNT(*) FROM oe_events WHERE type = 'OrderCreditHeld'")
statuses=$(sqlite3 "$work/bench.db" "SELECT json_extract(data, '\$.status') AS s, COUNT(*) FROM \
    oe_events WHERE type = 'IdempotentResponseRecorded' GROUP BY s" | tr '\n' ' ')
echo
echo "server RSS after the runs: $((rss_kb / 1024)) MB; orders placed: $orders ($held on credit"
echo "hold); stored answers by status: $statuses"
