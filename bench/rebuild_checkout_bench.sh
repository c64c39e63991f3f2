#!/usr/bin/env bash
# Checkout while read models are rebuilt (issue 6's target: p99 rises < 25 %): POST /api/orders
# with wrk (keep-alive, fresh Idempotency-Keys), first alone, then while full rebuilds
# (POST /api/admin/projections/all/rebuild) run back to back. `serve --demo` on a fresh SQLite
# file or PostgreSQL database (OE_TEST_PG_ADMIN_URL, as scripts/with-test-services sets it).
#   bench/rebuild_checkout_bench.sh <path-to-orderengine> [seconds] [connections] [sqlite|postgresql]
# (the log grows by what the warm-up and the first run place: ~30k events paced, ~300k
# saturating; see LOG_EVENTS below for a bigger one)
set -euo pipefail
bin=${1:?usage: rebuild_checkout_bench.sh <orderengine> [seconds] [connections] [sqlite|postgresql]}
seconds=${2:-15}
connections=${3:-16}
backend=${4:-sqlite}
# PACE_MS=30: each connection waits that long between orders (about 500 orders/s with 16
# connections: a steady load instead of as many as the server takes).
pace_ms=${PACE_MS:-0}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 2; }
# LOG_EVENTS=N (SQLite): checkout runs against a log of about N events (the demo data and
# orders of seven partners, written by build/bench/rebuild_bench --keep, cached in
# /tmp/oe-rebuild-checkout-N.db) instead of a fresh one, so each full rebuild lasts seconds, as
# on a real system, and its fixed costs (the swap's renames) are not repeated many times a
# second.
if [[ -n "${LOG_EVENTS:-}" ]]; then
    [[ "$backend" == sqlite ]] || { echo "LOG_EVENTS needs the sqlite backend"; exit 2; }
    seed=/tmp/oe-rebuild-checkout-$LOG_EVENTS.db
    if [[ ! -f "$seed" ]]; then
        "$(dirname "$bin")/../../bench/rebuild_bench" --backend sqlite --events "$LOG_EVENTS" \
            --keep "$seed" >/dev/null
    fi
    export SEED_DB=$seed
fi
source "$(dirname "$0")/demo-server.sh"
start_demo_server "$bin" "$backend" oe_rebuild_checkout
run=0
wrk_orders() {  # wrk_orders <seconds> → p50 p99 rps
    run=$((run + 1))
    cat >"$work/order$run.lua" <<LUA
local threads = 0
function setup(thread)
    threads = threads + 1
    thread:set("id", threads)
end
local counter = 0
$(if ((pace_ms > 0)); then echo "function delay() return $pace_ms end"; fi)
request = function()
    counter = counter + 1
    return wrk.format("POST", "/api/orders", {
        ["Authorization"] = "Bearer $token",
        ["Content-Type"] = "application/json",
        ["Idempotency-Key"] = string.format("r$run-%d-%d", id, counter),
    }, '{"lines":[{"sku":"SNS-SPF50-50","qty":3},{"sku":"MSK-SHEET-5","qty":10}]}')
end
LUA
    wrk -t2 -c"$connections" -d"${1}s" --latency -s "$work/order$run.lua" "$base" >"$work/wrk.txt" 2>&1
    echo "$(awk '$1=="50%" {print $2}' "$work/wrk.txt") $(awk '$1=="99%" {print $2}' "$work/wrk.txt") $(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")"
}
events() { curl -s -H "Authorization: Bearer $admin" "$base/api/admin/projections" | python3 -c 'import json,sys; print(json.load(sys.stdin)["head"])'; }
wrk_orders 5 >/dev/null  # Warm up and grow the log.
read -r p50_a p99_a rps_a <<<"$(wrk_orders "$seconds")"
log_size=$(events)
# Rebuilds back to back while wrk runs. The loop that starts and polls them (a curl and a grep
# every 50 ms) runs as SCHED_IDLE, so the bench's own processes do not take CPU from checkout.
(
    chrt --idle -p 0 "$BASHPID" >/dev/null
    end=$((SECONDS + seconds))
    n=0
    attempt=0
    while ((SECONDS < end)); do
        attempt=$((attempt + 1))
        # Counted only when it started (202), not when one was still running (409).
        code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $admin" \
            -H "Idempotency-Key: rb-$attempt-$$" "$base/api/admin/projections/all/rebuild")
        [[ "$code" == 202 ]] || { sleep 0.05; continue; }
        n=$((n + 1))
        while curl -s -H "Authorization: Bearer $admin" "$base/api/admin/projections" |
            grep -q '"state":"\(running\|swapping\)"'; do sleep 0.05; done
    done
    echo "$n" >"$work/rebuilds"
) &
rebuilder=$!
read -r p50_b p99_b rps_b <<<"$(wrk_orders "$seconds")"
wait "$rebuilder"
last=$(curl -s -H "Authorization: Bearer $admin" "$base/api/admin/projections" | python3 -c '
import json, sys
r = json.load(sys.stdin)["rebuild"]
print(r["state"], r["position"], r["events_per_s"], r["phases_ms"], sum(c["rows"] for c in r["checksums"]), all(c["identical"] for c in r["checksums"]))')
echo "Checkout (POST /api/orders, wrk -t2 -c$connections, ${seconds} s each, pace ${pace_ms} ms) with and without full rebuilds, $backend:"
echo
echo "| run | orders/s | p50 | p99 |"
# (Non-2xx answers would show in wrk's output; the partner never runs out of credit or stock.)
echo "|---|---|---|---|"
echo "| alone (log at $log_size events before the next run) | $rps_a | $p50_a | $p99_a |"
echo "| while $(cat "$work/rebuilds") full rebuilds ran back to back | $rps_b | $p50_b | $p99_b |"
echo
echo "last rebuild: state, position, events/s, every checksum identical: $last"
