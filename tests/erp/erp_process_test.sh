#!/usr/bin/env bash
# The ERP anti-corruption layer end to end, against real processes: `orderengine serve` with
# ERP_URL pointing at a standalone `orderengine fake-erp`, on SQLite or PostgreSQL.
# Covers delivery, the stock/debt sync and its refusals, an ERP that is down (circuit breaker,
# checkout unaffected), every fault the issue lists (garbage, partial JSON, error body with 200,
# a hang, a reset connection), dead letters and their retry with the order's later events
# waiting behind them, the throttle and a runtime change of erp.max_rps, a crash between the
# ERP's answer and our record (no second ERP order), and on PostgreSQL two instances with a
# takeover after the leader is killed.
# usage: erp_process_test.sh <orderengine binary> sqlite|postgresql
set -u
bin=$1
backend=${2:-sqlite}
work=$(mktemp -d)
pids=()
pg_db=""
cleanup() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null; done
    wait 2>/dev/null
    [[ -n "$pg_db" ]] && psql -q "$OE_TEST_PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1
    if ((failed > 0)); then
        # Keep the logs of a failed run where CI and people can find them.
        rm -rf "/tmp/erp_process_test.$backend" && cp -r "$work" "/tmp/erp_process_test.$backend"
        echo "logs kept in /tmp/erp_process_test.$backend"
    fi
    rm -rf "$work"
}
trap cleanup EXIT
pass=0
failed=0
ok() { echo "ok   - $1"; pass=$((pass + 1)); }
not_ok() { echo "FAIL - $1"; failed=$((failed + 1)); }
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }
# poll <seconds> <command...>: true once the command succeeds within the time.
poll() {
    local end=$((SECONDS + $1))
    shift
    while ((SECONDS < end)); do "$@" && return 0; sleep 0.1; done
    "$@"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# json <python expression over `d`> : reads JSON on stdin.
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

export AUTH_JWT_SECRET=erp-process-test-secret
if [[ "$backend" == postgresql ]]; then
    if [[ -z "${OE_TEST_PG_ADMIN_URL:-}" ]]; then
        echo "skip: OE_TEST_PG_ADMIN_URL is not set"
        exit 0
    fi
    pg_db="oe_erp_$$"
    psql -q "$OE_TEST_PG_ADMIN_URL" -c "CREATE DATABASE $pg_db" >/dev/null
    db_url="${OE_TEST_PG_ADMIN_URL%/*}/$pg_db"
else
    db_url="sqlite://$work/erp.db"
fi

# ---- The simulated ERP, standalone, with a seed that has figures the ACL must refuse.
cat >"$work/seed.json" <<'EOF'
{"stock":[{"sku":"SRM-VITC-30","warehouse_id":"WH-JKT","on_hand":400},
          {"sku":"NOPE-404","warehouse_id":"WH-JKT","on_hand":5}],
 "debt":{"P-002":4500000,"P-001":-5}}
EOF
erp_port=$(free_port)
erp="http://127.0.0.1:$erp_port"
"$bin" fake-erp --port "$erp_port" --seed "$work/seed.json" >"$work/erp.log" 2>&1 &
pids+=($!)
poll 5 curl -fs "$erp/_sim/mode" -o /dev/null
check "fake-erp serves /_sim/mode" curl -fs "$erp/_sim/mode" -o /dev/null
check "fake-erp: bad --fail-rate exits 2 with one line" \
    bash -c "! '$bin' fake-erp --port 1 --fail-rate 7 2>'$work/e1' && [[ \$(wc -l <'$work/e1') == 1 ]]"
check "fake-erp: unreadable seed exits 2" bash -c "'$bin' fake-erp --port 1 --seed /nonexistent 2>/dev/null; [[ \$? == 2 ]]"
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -d '{"fail_rate":3}' "$erp/_sim/mode")
check "/_sim/mode refuses a fail_rate above 1 (400)" [ "$code" == 400 ]
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -d '{"bogus":1}' "$erp/_sim/mode")
check "/_sim/mode refuses unknown fields (400)" [ "$code" == 400 ]
mode=$(curl -fs -X PUT -d '{"fail_rate":0.25}' "$erp/_sim/mode")
check "/_sim/mode answers the mode with plain decimals ($mode)" \
    [ "$mode" == '{"fail_rate":0.25,"latency_ms":0,"down":false,"reject_rate":0,"fault":null,"hang_ms":30000}' ]
curl -fs -X PUT -d '{"fail_rate":0}' "$erp/_sim/mode" >/dev/null
check "ERP_URL that is not http:// makes serve exit 2" \
    bash -c "ERP_URL=ftp://x DATABASE_URL='sqlite://$work/x.db' '$bin' serve 2>/dev/null; [[ \$? == 2 ]]"

# ---- serve, with short timeouts so faults play out in seconds.
serve_port=""
serve_pid=""
start_serve() {  # start_serve <log> [env…]
    local log=$1
    shift
    serve_port=$(free_port)
    env DATABASE_URL="$db_url" PORT="$serve_port" ERP_URL="$erp" ERP_TIMEOUT_MS=1000 \
        ERP_CIRCUIT_OPEN_MS=500 ERP_RETRY_BASE_MS=5 "$@" "$bin" serve --demo >>"$log" 2>&1 &
    serve_pid=$!
    pids+=($serve_pid)
    poll 10 curl -fs "http://127.0.0.1:$serve_port/health" -o /dev/null
}
start_serve "$work/serve.log"
base="http://127.0.0.1:$serve_port"
admin=$("$bin" token --role admin)
reseller=$("$bin" token --role reseller --partner P-003)
small=$("$bin" token --role reseller --partner P-001)
A=(-H "Authorization: Bearer $admin")
R=(-H "Authorization: Bearer $reseller")
key() { echo "k-$RANDOM-$RANDOM-$SECONDS"; }
place() {  # place <token-args…> → prints the order id; uses $trace as the trace id
    curl -s "$@" -H "Idempotency-Key: $(key)" -H "traceparent: 00-$trace-00f067aa0ba902b7-01" \
        -d '{"lines":[{"sku":"SRM-VITC-30","qty":3}]}' "$base/api/orders" | json 'd["order_id"]'
}
status_of() { curl -s "${A[@]}" "$base/api/orders/$1" | json 'd["status"]'; }
is_status() { [[ "$(status_of "$1")" == "$2" ]]; }
sales_orders_of() { curl -s "$erp/_sim/sales-orders" | python3 -c "import json,sys; print(json.dumps([s for s in json.load(sys.stdin) if s['order_id']=='$1']))"; }
erp_status() { curl -s "${A[@]}" "$base/api/admin/erp"; }
metric() { curl -s "$base/metrics" | awk -v m="$1" '$1==m {print $2}'; }
new_trace() { trace=$(python3 -c 'import secrets; print(secrets.token_hex(16))'); }
set_mode() { curl -fs -X PUT -d "$1" "$erp/_sim/mode" -o /dev/null; }

# ---- Start-up sync: the seed's good figures in, the bad ones refused and counted.
poll 5 bash -c "curl -s -H 'Authorization: Bearer $admin' '$base/api/admin/erp' | grep -q '\"last_sync\":{'"
sync=$(erp_status | json '(d["last_sync"]["ok"], d["last_sync"]["refused"])')
check "start-up sync ran and refused the unknown sku and the negative debt ($sync)" [ "$sync" == "(True, 2)" ]
refused=$(curl -s "$base/metrics" | grep -c '^erp_refused_figures_total{reason="unknown sku"} 1$')
check "erp_refused_figures_total counts the unknown sku" [ "$refused" == 1 ]
debt=$(curl -s -H "Authorization: Bearer $small" "$base/api/credit" | json 'd["erp_debt"]')
check "a negative ERP debt never reaches the credit model (P-001 erp_debt $debt)" [ "$debt" == 0 ]

# ---- Delivery: one order, one ERP sales order, its reference on the order.
new_trace
order=$(place "${R[@]}")
check "order $order is accepted by the ERP" poll 5 is_status "$order" erp_accepted
so=$(sales_orders_of "$order")
check "exactly one ERP sales order for it, created once ($so)" \
    bash -c "[[ \$(echo '$so' | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d), d[0][\"create_calls\"])') == '1 1' ]]"
ref=$(curl -s "${A[@]}" "$base/api/orders/$order" | json 'd["erp_order_ref"]')
check "the order view carries the ERP reference ($ref)" bash -c "[[ '$so' == *'\"erp_ref\": \"$ref\"'* ]]"
check "the delivery is logged with the order's trace id" \
    grep -q "\"msg\":\"erp: delivered\",\"trace_id\":\"$trace\"" "$work/serve.log"
check "the ERP saw the same trace id" grep -q "\"trace_id\":\"$trace\"" "$work/erp.log"

# ---- Forced sync: only what changed is recorded.
curl -fs -X PUT -d '[{"sku":"SRM-NIAC-30","warehouse_id":"WH-JKT","on_hand":7}]' "$erp/_sim/stock" -o /dev/null
curl -fs -X PUT -d '{"outstanding":1000000}' "$erp/_sim/debt/P-003" -o /dev/null
out=$(curl -s "${A[@]}" -H "Idempotency-Key: $(key)" -X POST "$base/api/admin/erp/sync")
check "POST /api/admin/erp/sync records the change ($out)" [ "$out" == '{"stock_changed":true,"debt_changed":true}' ]
out=$(curl -s "${A[@]}" -H "Idempotency-Key: $(key)" -X POST "$base/api/admin/erp/sync")
check "a second sync finds nothing new ($out)" [ "$out" == '{"stock_changed":false,"debt_changed":false}' ]
code=$(curl -s -o /dev/null -w '%{http_code}' "${A[@]}" -X POST "$base/api/admin/erp/sync")
check "sync without Idempotency-Key → 400" [ "$code" == 400 ]
code=$(curl -s -o /dev/null -w '%{http_code}' "${R[@]}" -H "Idempotency-Key: $(key)" -X POST "$base/api/admin/erp/sync")
check "sync as a reseller → 403" [ "$code" == 403 ]
avail() { curl -s "${R[@]}" "$base/api/catalog" | json "[i['available'] for i in d if i['sku']=='$1'][0]"; }
check "the catalog serves the synced stock (SRM-NIAC-30: WH-JKT 7-10 → 0, WH-SBY 290)" \
    poll 5 bash -c "[[ \$(curl -s -H 'Authorization: Bearer $reseller' '$base/api/catalog' | python3 -c \"import json,sys; print([i['available'] for i in json.load(sys.stdin) if i['sku']=='SRM-NIAC-30'][0])\") == 290 ]]"
check "the credit model takes the ERP's debt (1,000,000)" \
    poll 5 bash -c "[[ \$(curl -s -H 'Authorization: Bearer $reseller' '$base/api/credit' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"erp_debt\"])') == 1000000 ]]"

# ---- A new stock.sync_interval_s applies at once: lowered from the default 300 s to the
# ---- least, 10 s, the next periodic sync comes ~10 s after the last, not after 300 s.
synced_at() { erp_status | json 'd["last_sync"]["at"]'; }
before=$(synced_at)
curl -fs "${A[@]}" -H "Idempotency-Key: $(key)" -X PUT -d '{"value":10}' \
    "$base/api/admin/config/stock.sync_interval_s" -o /dev/null
check "after PUT stock.sync_interval_s 10 a periodic sync follows within 13 s (last at $before)" \
    poll 13 bash -c "[[ \$(curl -s -H 'Authorization: Bearer $admin' '$base/api/admin/erp' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"last_sync\"][\"at\"])') != '$before' ]]"
curl -fs "${A[@]}" -H "Idempotency-Key: $(key)" -X DELETE \
    "$base/api/admin/config/stock.sync_interval_s" -o /dev/null

# ---- ERP down: checkout unaffected, circuit opens, sync refuses, cancel tells the ERP later.
set_mode '{"down":true}'
code=$(curl -s -o "$work/sync_down" -w '%{http_code}' "${A[@]}" -H "Idempotency-Key: $(key)" -X POST "$base/api/admin/erp/sync")
check "sync with the ERP down → 503 erp_unavailable" bash -c "[[ $code == 503 ]] && grep -q erp_unavailable '$work/sync_down'"
new_trace
t0=$(date +%s%N)
down_order=$(place "${R[@]}")
t1=$(date +%s%N)
check "checkout with the ERP down answers in $(((t1 - t0) / 1000000)) ms (< 1000)" [ $(((t1 - t0) / 1000000)) -lt 1000 ]
check "the order waits in sent_to_erp" poll 5 is_status "$down_order" sent_to_erp
check "the circuit opens (erp_circuit_state 2)" poll 5 bash -c "[[ \$(curl -s '$base/metrics' | awk '\$1==\"erp_circuit_state\" {print \$2}') == 2 ]]"
check "/api/admin/erp shows the open circuit and the queue" \
    bash -c "curl -s -H 'Authorization: Bearer $admin' '$base/api/admin/erp' | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d[\"circuit_state\"] in (\"open\",\"half_open\") and d[\"outbox_pending\"] >= 1 else 1)'"
rate=$(metric erp_sync_error_rate)
check "erp_sync_error_rate is above 0 ($rate)" python3 -c "import sys; sys.exit(0 if float('$rate') > 0 else 1)"
out=$(curl -s "${R[@]}" -H "Idempotency-Key: $(key)" -X POST "$base/api/orders/$down_order/cancel" | json 'd["status"]')
check "an order in sent_to_erp can be cancelled ($out)" [ "$out" == cancelled ]
set_mode '{}'
# The create is not sent once the order is cancelled; the cancel is (an earlier attempt may
# have reached the ERP), so the ERP ends with no open sales order for it either way.
cancel_delivered() {
    grep '"msg":"erp: delivered"' "$1" | grep "\"order_id\":\"$2\"" | grep -q '"action":"cancel"'
}
no_open_so() { [[ $(sales_orders_of "$1" | json "sum(1 for s in d if s['status'] == 'open')") == 0 ]]; }
check "after the outage the ERP is told of the cancel" poll 10 cancel_delivered "$work/serve.log" "$down_order"
check "the ERP holds no open sales order for the cancelled order" no_open_so "$down_order"
check "the circuit closes again" poll 5 bash -c "[[ \$(curl -s '$base/metrics' | awk '\$1==\"erp_circuit_state\" {print \$2}') == 0 ]]"
check "the cancelled order stays cancelled" is_status "$down_order" cancelled

# ---- A cancel while the ERP is still answering the create: the ERP gets the create (in flight)
# ---- and then the cancel, so its sales order ends cancelled; our order stays cancelled.
set_mode '{"latency_ms":700}'  # Under the client's 1000 ms timeout.
new_trace
slow=$(place "${R[@]}")
poll 2 is_status "$slow" sent_to_erp
out=$(curl -s "${R[@]}" -H "Idempotency-Key: $(key)" -X POST "$base/api/orders/$slow/cancel" | json 'd["status"]')
check "cancel while the create is in flight → cancelled ($out)" [ "$out" == cancelled ]
so_status() { [[ $(sales_orders_of "$1" | json 'd[0]["status"] if d else "none"') == "$2" ]]; }
check "the ERP's sales order ends cancelled" poll 10 so_status "$slow" cancelled
set_mode '{}'
check "our order stays cancelled (the late acceptance changes nothing)" is_status "$slow" cancelled

# ---- Faults: each is logged with the trace id, counted, retried; nothing is created twice.
for fault in garbage partial_json error_body reset hang; do
    errors_before=$(metric erp_sync_errors_total)
    if [[ $fault == hang ]]; then set_mode '{"fault":"hang","hang_ms":3000}'; else set_mode "{\"fault\":\"$fault\"}"; fi
    new_trace
    o=$(place "${R[@]}")
    poll 5 bash -c "grep -q '\"msg\":\"erp: delivery failed\",\"trace_id\":\"$trace\"' '$work/serve.log'"
    check "$fault: the failure is logged with the order's trace id" \
        grep -q "\"msg\":\"erp: delivery failed\",\"trace_id\":\"$trace\"" "$work/serve.log"
    check "$fault: counted in erp_sync_errors_total" \
        python3 -c "import sys; sys.exit(0 if float('$(metric erp_sync_errors_total)') > float('$errors_before') else 1)"
    set_mode '{}'
    check "$fault: delivered once the ERP behaves" poll 10 is_status "$o" erp_accepted
    n=$(sales_orders_of "$o" | json 'len(d)')
    check "$fault: one ERP sales order for the order ($n)" [ "$n" == 1 ]
done
kill -0 "$serve_pid" && ok "no crash through the faults" || not_ok "serve died"

# ---- Dead letters: a poison delivery is parked, the queue moves on, the order's cancel waits
# ---- behind it, and a retry delivers both in order.
set_mode '{"fault":"error_body"}'
new_trace
poison=$(place "${R[@]}")
parked() { erp_status | python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if any(x['order_id']=='$poison' for x in d['dead_letters']) else 1)"; }
check "after 10 failed attempts the delivery is a dead letter" poll 20 parked
letter=$(erp_status | json "[x for x in d['dead_letters'] if x['order_id']=='$poison'][0]")
check "the dead letter says what failed ($letter)" bash -c "[[ \"$letter\" == *\"'attempts': 10\"* && \"$letter\" == *ORA-00060* ]]"
id=$(erp_status | json "[x['id'] for x in d['dead_letters'] if x['order_id']=='$poison'][0]")
out=$(curl -s "${R[@]}" -H "Idempotency-Key: $(key)" -X POST "$base/api/orders/$poison/cancel" | json 'd["status"]')
check "the parked order can still be cancelled ($out)" [ "$out" == cancelled ]
set_mode '{}'
new_trace
after=$(place -H "Authorization: Bearer $small")
check "the queue moves on: a later order of another partner is delivered" poll 10 is_status "$after" erp_accepted
n=$(sales_orders_of "$poison" | json 'len(d)')
check "the parked order's create and its cancel wait (the ERP has nothing for it: $n)" [ "$n" == 0 ]
code=$(curl -s -o /dev/null -w '%{http_code}' "${A[@]}" -H "Idempotency-Key: $(key)" -X POST "$base/api/admin/erp/dead-letters/999999999/retry")
check "retrying an unknown dead letter → 404" [ "$code" == 404 ]
code=$(curl -s -o /dev/null -w '%{http_code}' "${A[@]}" -X POST "$base/api/admin/erp/dead-letters/$id/retry")
check "retry without Idempotency-Key → 400" [ "$code" == 400 ]
code=$(curl -s -o /dev/null -w '%{http_code}' "${A[@]}" -H "Idempotency-Key: retry-$id" -X POST "$base/api/admin/erp/dead-letters/$id/retry")
check "retrying the dead letter → 202" [ "$code" == 202 ]
check "the retry works through the order's deliveries, the cancel last" \
    poll 10 cancel_delivered "$work/serve.log" "$poison"
check "the ERP holds no open sales order for it" no_open_so "$poison"
check "the dead letter is resolved" poll 5 bash -c "! curl -s -H 'Authorization: Bearer $admin' '$base/api/admin/erp' | grep -q '$poison'"

# ---- Throttle: erp.max_rps bounds the pace, and a change applies at runtime.
spread_ms() {  # spread_ms <order ids…>: ms between the first and the last ERP creation
    curl -s "$erp/_sim/sales-orders" | python3 -c "
import json, sys, datetime
ids = set(sys.argv[1:])
t = sorted(datetime.datetime.strptime(s['created_at'], '%Y-%m-%dT%H:%M:%S.%fZ') for s in json.load(sys.stdin) if s['order_id'] in ids)
print(int((t[-1] - t[0]).total_seconds() * 1000) if len(t) == len(ids) else -1)" "$@"
}
queue_five() {
    set_mode '{"down":true}'
    five=()
    for _ in 1 2 3 4 5; do new_trace; five+=("$(place "${R[@]}")"); done
    set_mode '{}'
    for o in "${five[@]}"; do poll 15 is_status "$o" erp_accepted; done
}
queue_five
ms=$(spread_ms "${five[@]}")
check "at erp.max_rps 2.00, five queued orders reach the ERP over >= 1900 ms ($ms ms)" \
    bash -c "(( $ms >= 1900 && $ms <= 4000 ))"
curl -fs "${A[@]}" -H "Idempotency-Key: $(key)" -X PUT -d '{"value":"10.00"}' "$base/api/admin/config/erp.max_rps" -o /dev/null
queue_five
ms=$(spread_ms "${five[@]}")
check "after PUT erp.max_rps 10.00 they take >= 380 ms and < 1500 ms ($ms ms)" bash -c "(( $ms >= 380 && $ms < 1500 ))"

# ---- Exactly once: the process dies between the ERP's answer and our record of it.
kill -TERM "$serve_pid"
wait "$serve_pid"
check "SIGTERM: serve exits 0" [ $? == 0 ]
start_serve "$work/crash.log" OE_FAILPOINT=erp_after_answer
base="http://127.0.0.1:$serve_port"
new_trace
known=$(curl -s "$erp/_sim/sales-orders" | python3 -c 'import json,sys; print(" ".join(s["order_id"] for s in json.load(sys.stdin)))')
# The process may die before it answers the POST (the ERP can answer the delivery first), so
# the order id comes from what the ERP received.
place "${R[@]}" >/dev/null 2>&1 || true
poll 10 bash -c "! kill -0 $serve_pid 2>/dev/null"
crash=$(curl -s "$erp/_sim/sales-orders" | python3 -c "import json,sys; known=set('$known'.split()); print(' '.join(s['order_id'] for s in json.load(sys.stdin) if s['order_id'] not in known))")
check "the failpoint killed the process right after the ERP answered" bash -c "! kill -0 $serve_pid 2>/dev/null && grep -q erp_after_answer '$work/crash.log'"
check "the order was left in sent_to_erp, the ERP has it once" \
    bash -c "[[ \$(curl -s '$erp/_sim/sales-orders' | python3 -c \"import json,sys; print(sum(1 for s in json.load(sys.stdin) if s['order_id']=='$crash'))\") == 1 ]]"
start_serve "$work/serve2.log"
base="http://127.0.0.1:$serve_port"
check "after a restart the order is erp_accepted" poll 10 is_status "$crash" erp_accepted
so=$(sales_orders_of "$crash" | json '(len(d), d[0]["create_calls"])')
check "still one ERP sales order; the repeat was answered idempotently ($so)" [ "$so" == "(1, 2)" ]
ref=$(curl -s "${A[@]}" "$base/api/orders/$crash" | json 'd["erp_order_ref"]')
erp_ref=$(sales_orders_of "$crash" | json 'd[0]["erp_ref"]')
check "the recorded reference is the ERP's ($ref)" [ "$ref" == "$erp_ref" ]

# ---- Several instances (PostgreSQL): one runs the ERP worker; a successor takes over.
if [[ "$backend" == postgresql ]]; then
    first_pid=$serve_pid
    first_base=$base
    start_serve "$work/standby.log"
    second_pid=$serve_pid
    base="http://127.0.0.1:$serve_port"
    sleep 2
    leaders=$(grep -l 'runs the ERP projector' "$work/serve2.log" "$work/standby.log" | wc -l)
    check "exactly one of two instances runs the ERP worker ($leaders)" [ "$leaders" == 1 ]
    check "the standby says so in /api/admin/erp" bash -c "curl -s -H 'Authorization: Bearer $admin' '$base/api/admin/erp' | grep -q '\"worker\":\"standby\"'"
    both=()
    for _ in 1 2 3; do new_trace; both+=("$(place "${R[@]}")"); done
    for o in "${both[@]}"; do poll 10 is_status "$o" erp_accepted; done
    kill -9 "$first_pid"
    t0=$SECONDS
    poll 12 grep -q 'runs the ERP projector' "$work/standby.log"
    took=$((SECONDS - t0))
    check "the standby takes over within 10 s of the leader's death (${took} s)" \
        bash -c "grep -q 'runs the ERP projector' '$work/standby.log' && (( $took <= 10 ))"
    for _ in 1 2 3; do new_trace; both+=("$(place "${R[@]}")"); done
    for o in "${both[@]}"; do poll 10 is_status "$o" erp_accepted; done
    accepted=0
    for o in "${both[@]}"; do is_status "$o" erp_accepted && accepted=$((accepted + 1)); done
    check "orders placed before and after the takeover are all delivered ($accepted of 6)" [ $accepted == 6 ]
    calls=$(curl -s "$erp/_sim/sales-orders" | python3 -c "import json,sys; ids=set(sys.argv[1:]); print(sorted(s['create_calls'] for s in json.load(sys.stdin) if s['order_id'] in ids))" "${both[@]}")
    check "each was sent exactly once across the two instances ($calls)" [ "$calls" == "[1, 1, 1, 1, 1, 1]" ]
fi

echo "$pass passed, $failed failed"
[[ $failed == 0 ]]
