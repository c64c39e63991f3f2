#!/usr/bin/env bash
# Reads beside checkout (read your writes, src/http/api.cpp): wrk saturates POST /api/orders
# as partner P-004 (16 connections) while one client GETs /api/credit and /api/orders?limit=10
# back to back, first as P-004 itself (its reads wait until the projector holds its own
# orders), then as P-003 (waits for nothing: another reseller's orders are not its to see).
# Prints one table per reader. `orderengine serve --demo` as bench/http_bench.sh starts it.
#   bench/read_after_write_bench.sh <path-to-orderengine> [seconds] [sqlite|postgresql]
set -euo pipefail
bin=${1:?usage: read_after_write_bench.sh <orderengine> [seconds] [sqlite|postgresql]}
seconds=${2:-20}
backend=${3:-sqlite}
command -v wrk >/dev/null || { echo "read_after_write_bench: wrk is not installed (apt-get install wrk)"; exit 2; }
((seconds >= 5)) || { echo "read_after_write_bench: seconds must be at least 5"; exit 2; }
source "$(dirname "$0")/demo-server.sh"
source "$(dirname "$0")/order-lua.sh"

run() {  # run <reader label> <reader partner>
    start_demo_server "$bin" "$backend" oe_raw_bench
    local reader
    reader=$("$bin" token --role reseller --partner "$2")
    write_order_lua "$work/order.lua" raw
    wrk -t2 -c16 -d"${seconds}s" --latency -s "$work/order.lua" "$base" >"$work/wrk.txt" 2>&1 &
    local wrk_pid=$!
    sleep 1
    python3 - "$port" "$reader" $((seconds - 3)) "$1" <<'PY'
import http.client, sys, time
port, token, seconds, label = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
conn = http.client.HTTPConnection("127.0.0.1", port)
headers = {"Authorization": "Bearer " + token}
latencies = {"/api/credit": [], "/api/orders?limit=10": []}
end = time.time() + seconds
while time.time() < end:
    for path, seen in latencies.items():
        started = time.perf_counter()
        conn.request("GET", path, headers=headers)
        answer = conn.getresponse()
        answer.read()
        seen.append((time.perf_counter() - started) * 1000)
        if answer.status != 200:
            sys.exit(f"GET {path} answered {answer.status}")
for path, seen in latencies.items():
    seen.sort()
    n = len(seen)
    print(f"| {label:30s} | GET {path:22s} | {n:6d} | {seen[n // 2]:6.2f} ms "
          f"| {seen[int(n * 0.99)]:6.2f} ms | {seen[-1]:7.2f} ms |")
PY
    wait "$wrk_pid"
    awk -v label="$1" '/Requests\/sec/ {rps=$2} $1=="99%" {p99=$2}
        END {printf "| %-30s | POST /api/orders (wrk)     | %6s/s | p99 %s |\n", label, rps, p99}' "$work/wrk.txt"
    cleanup
    server=""
    pg_db=""
    work=$(mktemp -d)
}

echo "backend: $backend, ${seconds}s each, wrk 2 threads x 16 connections placing orders as P-004"
printf '| %-30s | %-26s | %6s | %9s | %9s | %10s |\n' reader request n p50 p99 max
printf '|--------------------------------|----------------------------|--------|-----------|-----------|------------|\n'
run "P-004 (the writer itself)" P-004
run "P-003 (another reseller)" P-003
