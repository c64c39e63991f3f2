#!/usr/bin/env bash
# ERP benchmarks (issue 5's targets), against `orderengine serve` (SQLite) with ERP_URL pointing
# at a standalone `orderengine fake-erp`. Prints three tables:
#   1. checkout (POST /api/orders, wrk, keep-alive) with the ERP up, down, and failing 30 %;
#   2. throttle accuracy: deliveries in 60 s at erp.max_rps = 5.00 from a full queue;
#   3. an outage: N orders queued while the ERP is down for OUTAGE_S seconds, then the drain at
#      erp.max_rps = 100.00 — in order, and no order created twice.
#   bench/erp_bench.sh <path-to-orderengine> [checkout-seconds] [outage-seconds] [queued-orders]
#   PARTS="checkout throttle outage" (the default) picks the tables to produce.
set -euo pipefail
bin=${1:?usage: erp_bench.sh <orderengine> [checkout-seconds] [outage-seconds] [queued-orders]}
seconds=${2:-10}
outage_s=${3:-60}
queued=${4:-3000}
command -v wrk >/dev/null || { echo "erp_bench: wrk is not installed (apt-get install wrk)"; exit 2; }
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$work"' EXIT
export AUTH_JWT_SECRET=bench-secret
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A fresh simulated ERP and a fresh serve (new SQLite file) for every scenario, so one's queue
# or database growth never colours the next.
stack=0
start_stack() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    wait 2>/dev/null || true
    pids=()
    stack=$((stack + 1))
    erp_port=$(free_port)
    erp="http://127.0.0.1:$erp_port"
    "$bin" fake-erp --port "$erp_port" >"$work/erp$stack.log" 2>&1 &
    pids+=($!)
    until curl -fs "$erp/_sim/mode" >/dev/null; do sleep 0.05; done
    port=$(free_port)
    base="http://127.0.0.1:$port"
    DATABASE_URL="sqlite://$work/bench$stack.db" PORT=$port ERP_URL="$erp" "$bin" serve --demo \
        >"$work/serve$stack.log" 2>&1 &
    server=$!
    pids+=($server)
    until curl -fs "$base/health" >/dev/null; do sleep 0.05; done
    # Room for thousands of orders: a huge credit limit and stock, synced from the ERP.
    admin_call PATCH /api/admin/partners/P-004 '{"credit_limit":1000000000000000}'
    curl -fs -X PUT "$erp/_sim/stock" -d '[{"sku":"SNS-SPF50-50","warehouse_id":"WH-SBY","on_hand":100000000},
        {"sku":"MSK-SHEET-5","warehouse_id":"WH-SBY","on_hand":100000000}]' >/dev/null
    admin_call POST /api/admin/erp/sync
}
admin=$("$bin" token --role admin)
token=$("$bin" token --role reseller --partner P-004)  # PLATINUM, ID-JI: WH-SBY.
key=0
admin_call() {  # admin_call <method> <path> [body]
    key=$((key + 1))
    curl -fs -X "$1" -H "Authorization: Bearer $admin" -H "Idempotency-Key: bench-admin-$key-$$" \
        ${3:+-d "$3"} "$base$2" >/dev/null
}
source "$(dirname "$0")/order-lua.sh"  # Also sets order_body.

# ---- 1. Checkout with the ERP up, down and failing.
run=0
checkout() {  # checkout <name> <mode json>
    start_stack
    curl -fs -X PUT -d "$2" "$erp/_sim/mode" >/dev/null
    run=$((run + 1))
    write_order_lua "$work/order$run.lua" "run$run"
    wrk -t2 -c16 -d"${seconds}s" --latency -s "$work/order$run.lua" "$base" >"$work/wrk.txt" 2>&1
    printf '| %-28s | %10s | %9s | %9s | %8s |\n' "$1" \
        "$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")" \
        "$(awk '$1=="50%" {print $2}' "$work/wrk.txt")" "$(awk '$1=="99%" {print $2}' "$work/wrk.txt")" \
        "$(awk '/Non-2xx/ {print $NF}' "$work/wrk.txt" | grep . || echo 0)"
}
parts=${PARTS:-checkout throttle outage}
if [[ " $parts " == *" checkout "* ]]; then
echo "Checkout while the ERP misbehaves (wrk -t2 -c16, ${seconds} s each, SQLite):"
echo
printf '| %-28s | %10s | %9s | %9s | %8s |\n' "ERP" "orders/s" "p50" "p99" "non-2xx"
printf '|------------------------------|------------|-----------|-----------|----------|\n'
checkout "up" '{}'
checkout "down (503 to every call)" '{"down":true}'
checkout "failing 30 % (500)" '{"fail_rate":0.3}'
fi

# ---- 2. Throttle accuracy: a full queue, erp.max_rps = 5.00, count what arrives in 60 s.
place_many() {  # place_many <count> <prefix>: sequential keep-alive POSTs
    python3 - "$1" "$2" "$port" "$token" "$order_body" <<'PY'
import http.client, sys
count, prefix, port, token, body = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
conn = http.client.HTTPConnection("127.0.0.1", int(port))
for i in range(count):
    conn.request("POST", "/api/orders", body, {"Authorization": "Bearer " + token,
                 "Idempotency-Key": f"{prefix}-{i}", "Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    if r.status != 201:
        sys.exit(f"order {i}: HTTP {r.status}")
PY
}
pending() { curl -s -H "Authorization: Bearer $admin" "$base/api/admin/erp" | python3 -c 'import json,sys; print(json.load(sys.stdin)["outbox_pending"])'; }
wait_drained() { while [[ $(pending) != 0 ]]; do sleep 0.5; done; }
if [[ " $parts " == *" throttle "* ]]; then
start_stack
admin_call PUT /api/admin/config/erp.max_rps '{"value":"5.00"}'
curl -fs -X PUT -d '{"down":true}' "$erp/_sim/mode" >/dev/null
sleep 1
place_many 330 throttle
curl -fs -X PUT -d '{}' "$erp/_sim/mode" >/dev/null
sleep 66
throttle=$(curl -s "$erp/_sim/sales-orders" | python3 -c '
import json, sys, datetime
parse = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")
orders = json.load(sys.stdin)
mark = max(parse(o["created_at"]) for o in orders) - datetime.timedelta(seconds=66)
recent = sorted(parse(o["created_at"]) for o in orders if parse(o["created_at"]) > mark)
start = recent[0]
print(sum(1 for t in recent if t < start + datetime.timedelta(seconds=60)))')
echo
echo "Throttle: erp.max_rps = 5.00, 330 orders queued while the ERP was down, then up:"
echo
echo "| window | delivered | target |"
echo "|---|---|---|"
echo "| first 60 s after the first delivery | $throttle | 300 ± 5 % (285..315) |"
fi

# ---- 3. An outage: queue while down, hold the outage, drain at 100/s, check order and dupes.
if [[ " $parts " == *" outage "* ]]; then
start_stack
admin_call PUT /api/admin/config/erp.max_rps '{"value":"100.00"}'
curl -fs -X PUT -d '{"down":true}' "$erp/_sim/mode" >/dev/null
down_at=$SECONDS
place_many "$queued" outage
queued_in=$((SECONDS - down_at))
remaining=$((outage_s - (SECONDS - down_at)))
((remaining > 0)) && sleep "$remaining"
peak=$(pending)
up_ns=$(date +%s%N)
curl -fs -X PUT -d '{}' "$erp/_sim/mode" >/dev/null
wait_drained
drained_ms=$((($(date +%s%N) - up_ns) / 1000000))
# Global order: the OrderRouted positions in the log against the order the ERP created them.
sqlite3 "$work/bench$stack.db" "SELECT substr(stream_id, 7) FROM oe_events WHERE type = 'OrderRouted' \
    ORDER BY global_position" >"$work/log_order.txt"
check=$(curl -s "$erp/_sim/sales-orders" | python3 -c '
import json, sys
orders = json.load(sys.stdin)
log_order = [line.strip() for line in open(sys.argv[1]) if line.strip()]
erp_order = [o["order_id"] for o in sorted(orders, key=lambda o: o["erp_ref"])]
in_order = [i for i in log_order if i in set(erp_order)] == erp_order
dupes = sum(1 for o in orders if o["create_calls"] > 1)
print(f"{len(orders)} {in_order} {dupes}")' "$work/log_order.txt")
read -r total in_order dupes <<<"$check"
echo
echo "Outage: the ERP down for ${outage_s} s with $queued orders queued (in ${queued_in} s), then up at erp.max_rps = 100.00:"
echo
echo "| erp_outbox_pending at the end of the outage | drain after the ERP came back | ERP sales orders in total | created in global order | created twice |"
echo "|---|---|---|---|---|"
echo "| $peak | $drained_ms ms (circuit probe ≤ 30 s + $queued at 100/s ≈ 30 s) | $total | $in_order | $dupes |"
fi
