#!/usr/bin/env bash
# Drives the real orderengine process over HTTP: the implemented routes and the bad inputs of
# issue 4 (tokens, roles, other partners' ids, malformed / deep / duplicate-key JSON, huge
# numbers, negative quantities, client-supplied prices, 2 MiB bodies, CL+TE, slow headers), and
# checks the server keeps serving and nothing is appended by a refused request.
#   tests/http/api_process_test.sh <path-to-orderengine> [sqlite|postgresql]
set -uo pipefail
bin=${1:?usage: api_process_test.sh <orderengine> [sqlite|postgresql]}
backend=${2:-sqlite}
work=$(mktemp -d)
server=""
passed=0
failed=0
cleanup() {
    [[ -n "$server" ]] && kill -9 "$server" 2>/dev/null
    [[ -n "${pg_db:-}" ]] && psql -q "$OE_TEST_PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok   - $1"; }
not_ok() { failed=$((failed + 1)); echo "FAIL - $1"; }

export AUTH_JWT_SECRET=process-test-secret
if [[ "$backend" == postgresql ]]; then
    pg_db="oe_api_$$"
    psql -q "$OE_TEST_PG_ADMIN_URL" -c "CREATE DATABASE $pg_db" >/dev/null
    db_url="${OE_TEST_PG_ADMIN_URL%/*}/$pg_db"
else
    db_url="sqlite://$work/api.db"
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The built-in simulated ERP answers after a minute (the client gives up after 5 s), so orders
# stay cancellable (placed or sent_to_erp) for the whole test: tests/erp covers delivery.
start_server() {  # start_server <log> [VAR=value...]: serve --demo on $db_url, its log in <log>
    local log=$1
    shift
    env "$@" DATABASE_URL="$db_url" PORT=$port ERP_SIM_LATENCY_MS=60000 "$bin" serve --demo >>"$work/out" 2>"$log" &
    server=$!
    for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.05; done
}
start_server "$work/err"
base="http://127.0.0.1:$port"
reseller=$("$bin" token --role reseller --partner P-003)
other=$("$bin" token --role reseller --partner P-001)
agent=$("$bin" token --role agent --partners P-001,P-002)
admin=$("$bin" token --role admin)
expired=$("$bin" token --role admin --ttl-s 1); sleep 1.1

# expect <name> <status> <body-substring> <curl args...>
expect() {
    local name=$1 status=$2 needle=$3
    shift 3
    local out
    out=$(curl -s -w '\n%{http_code}' "$@")
    local code=${out##*$'\n'}
    local body=${out%$'\n'*}
    if [[ "$code" == "$status" && "$body" == *"$needle"* ]]; then
        ok "$name"
    else
        not_ok "$name (got $code: ${body:0:200})"
    fi
}
events() {
    curl -s "$base/api/events?after=0&limit=1000" -H "Authorization: Bearer $admin" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["next_after"])'
}
auth=(-H "Authorization: Bearer $reseller")
order='{"lines":[{"sku":"SRM-VITC-30","qty":3}]}'

expect "no token → 401" 401 '"unauthenticated"' "$base/api/catalog"
expect "garbled token → 401" 401 '"unauthenticated"' -H "Authorization: Bearer x.y.z" "$base/api/catalog"
expect "expired token → 401" 401 '"unauthenticated"' -H "Authorization: Bearer $expired" "$base/api/events"
expect "wrong role → 403" 403 '"forbidden"' -H "Authorization: Bearer $admin" "$base/api/catalog"
expect "catalog for the caller's tier" 200 '"unit_price":170100' "${auth[@]}" "$base/api/catalog"
expect "credit of the caller" 200 '"partner_id":"P-003"' "${auth[@]}" "$base/api/credit"

before=$(events)
expect "missing Idempotency-Key → 400" 400 '"idempotency_key_required"' "${auth[@]}" -d "$order" "$base/api/orders"
expect "malformed JSON → 400" 400 '"invalid_json"' "${auth[@]}" -H "Idempotency-Key: a" -d '{"lines":' "$base/api/orders"
deep=$(python3 -c 'print("{\"lines\":" + "["*10000 + "]"*10000 + "}")')
expect "JSON nested 10,000 deep → 400" 400 '"invalid_json"' "${auth[@]}" -H "Idempotency-Key: b" -d "$deep" "$base/api/orders"
expect "duplicate keys → 400" 400 '"invalid_json"' "${auth[@]}" -H "Idempotency-Key: c" -d '{"lines":[],"lines":[]}' "$base/api/orders"
expect "wrong type → 400" 400 '"invalid_request"' "${auth[@]}" -H "Idempotency-Key: d" -d '{"lines":"SRM"}' "$base/api/orders"
expect "huge number → 400" 400 '"invalid_request"' "${auth[@]}" -H "Idempotency-Key: e" -d '{"lines":[{"sku":"SRM-VITC-30","qty":123456789012345678901234567890}]}' "$base/api/orders"
expect "negative quantity → 400" 400 '"invalid_request"' "${auth[@]}" -H "Idempotency-Key: f" -d '{"lines":[{"sku":"SRM-VITC-30","qty":-3}]}' "$base/api/orders"
expect "client-supplied price → 400" 400 "unknown field 'unit_price'" "${auth[@]}" -H "Idempotency-Key: g" -d '{"lines":[{"sku":"SRM-VITC-30","qty":3,"unit_price":1}]}' "$base/api/orders"
head -c 2097152 /dev/zero | tr '\0' ' ' >"$work/big"
expect "2 MiB body → 413" 413 '"payload_too_large"' "${auth[@]}" -H "Idempotency-Key: h" --data-binary @"$work/big" "$base/api/orders"
[[ "$(events)" == "$before" ]] && ok "no refused request appended anything" || not_ok "events appended by refused requests"

expect "place an order → 201" 201 '"status":"placed"' "${auth[@]}" -H "Idempotency-Key: order-1" -d "$order" "$base/api/orders"
replayed=$(curl -s -D - -o /dev/null "${auth[@]}" -H "Idempotency-Key: order-1" -d "$order" "$base/api/orders" | tr -d '\r')
[[ "$replayed" == *"Idempotent-Replayed: true"* && "$replayed" == *"201 Created"* ]] && ok "the same key replays 201" || not_ok "replay: $replayed"
expect "same key, other body → 422" 422 '"idempotency_key_reuse"' "${auth[@]}" -H "Idempotency-Key: order-1" -d '{"lines":[{"sku":"SRM-VITC-30","qty":4}]}' "$base/api/orders"
# The list is a read model, behind the log until the projector applies the order: wait for it.
id=""
for _ in $(seq 1 100); do
    id=$(curl -s "${auth[@]}" "$base/api/orders" | python3 -c 'import json,sys; o=json.load(sys.stdin)["orders"]; print(o[0]["order_id"] if o else "")')
    [[ -n "$id" ]] && break
    sleep 0.05
done
[[ -n "$id" ]] && ok "the order shows in the list" || not_ok "the order never showed in GET /api/orders"
expect "own order → 200" 200 "\"order_id\":\"$id\"" "${auth[@]}" "$base/api/orders/$id"
expect "another partner's order → 404" 404 '"not_found"' -H "Authorization: Bearer $other" "$base/api/orders/$id"
expect "an agent not acting for the owner → 404" 404 '"not_found"' -H "Authorization: Bearer $agent" "$base/api/orders/$id"
expect "agent masquerade → 201 with on_behalf_of" 201 '"on_behalf_of":"P-002"' -H "Authorization: Bearer $agent" -H "X-On-Behalf-Of: P-002" -H "Idempotency-Key: ag-1" -d '{"lines":[{"sku":"CLN-GEL-100","qty":12}]}' "$base/api/orders"
expect "agent acting for a stranger → 403" 403 '"forbidden"' -H "Authorization: Bearer $agent" -H "X-On-Behalf-Of: P-004" -H "Idempotency-Key: ag-2" -d "$order" "$base/api/orders"
expect "cancel someone else's order → 404" 404 '"not_found"' -H "Authorization: Bearer $other" -H "Idempotency-Key: x1" -X POST "$base/api/orders/$id/cancel"
expect "cancel → 200" 200 '"status":"cancelled"' "${auth[@]}" -H "Idempotency-Key: x2" -X POST "$base/api/orders/$id/cancel"
expect "cancel again → 409" 409 '"not_cancellable"' "${auth[@]}" -H "Idempotency-Key: x3" -X POST "$base/api/orders/$id/cancel"
expect "admin config write" 200 '"value":"3.00"' -H "Authorization: Bearer $admin" -H "Idempotency-Key: cfg-1" -X PUT -d '{"value":"3.00"}' "$base/api/admin/config/erp.max_rps"
expect "config out of range → 422" 422 '"invalid_config_value"' -H "Authorization: Bearer $admin" -H "Idempotency-Key: cfg-2" -X PUT -d '{"value":"0.01"}' "$base/api/admin/config/erp.max_rps"

# The catalog is cached per partner until the read models move: a tier change must show.
expect "catalog before the tier change (GOLD 10 %: 170,100)" 200 '"sku":"SRM-VITC-30","name":"Vitamin C Brightening Serum 30ml","base_price":189000,"unit_price":170100' "${auth[@]}" "$base/api/catalog"
expect "tier change" 200 '"discount_bps":1200' -H "Authorization: Bearer $admin" -H "Idempotency-Key: tier-1" -X PUT -d '{"discount_bps":1200,"loyalty_multiplier":"1.75"}' "$base/api/admin/tiers/GOLD"
repriced=""
for _ in $(seq 1 50); do
    repriced=$(curl -s "${auth[@]}" "$base/api/catalog")
    [[ "$repriced" == *'"base_price":189000,"unit_price":166320'* ]] && break
    sleep 0.1
done
[[ "$repriced" == *'"base_price":189000,"unit_price":166320'* ]] && ok "the catalog shows the new GOLD price (166,320) after the change" || not_ok "catalog not repriced: ${repriced:0:200}"

finance=$("$bin" token --role finance)
now_encoded=$(date -u +%Y-%m-%dT%H%%3A%M%%3A%SZ)  # ':' percent-encoded, as URL libraries send it.
expect "replay with a percent-encoded as_of → 200" 200 '"model":"credit"' -H "Authorization: Bearer $finance" "$base/api/finance/replay?as_of=$now_encoded&model=credit"
expect "replay CSV through Accept" 200 'partner_id,credit_limit' -H "Authorization: Bearer $finance" -H "Accept: text/csv" "$base/api/finance/replay?as_of=1&model=credit"
expect "replay with an unknown model → 400" 400 '"invalid_request"' -H "Authorization: Bearer $finance" "$base/api/finance/replay?as_of=1&model=ledger"
expect "audit of an unknown order → 404" 404 '"not_found"' -H "Authorization: Bearer $finance" "$base/api/finance/orders/O-NOPE/audit"
expect "audit as a reseller → 403" 403 '"forbidden"' "${auth[@]}" "$base/api/finance/orders/$id/audit"
expect "audit of a placed order is consistent" 200 '"consistent":true' -H "Authorization: Bearer $finance" "$base/api/finance/orders/$id/audit"

# A rebuild through the API runs in a process of its own (the server's log names its pid) and
# swaps in tables identical to the live ones; a second request while it runs → 409.
# wait_rebuild <state>...: GET /api/admin/projections until the rebuild is in one of the states
# (30 s at most); prints the last answer.
wait_rebuild() {
    local answer="" state
    for _ in $(seq 1 300); do
        answer=$(curl -s -H "Authorization: Bearer $admin" "$base/api/admin/projections")
        for state in "$@"; do
            [[ "$answer" == *"\"state\":\"$state\""* ]] && break 2
        done
        sleep 0.1
    done
    echo "$answer"
}
done_identical() {  # done_identical <answer>: the rebuild is done and every checksum identical
    [[ "$1" == *'"state":"done"'* && "$1" == *'"identical":true'* && "$1" != *'"identical":false'* ]]
}
expect "rebuild of every projection → 202" 202 '"state":"running"' -H "Authorization: Bearer $admin" -H "Idempotency-Key: rb-1" -X POST "$base/api/admin/projections/all/rebuild"
rebuilt=$(wait_rebuild done failed)
done_identical "$rebuilt" && ok "the rebuild is done and every table identical" || not_ok "rebuild: ${rebuilt:0:400}"
child=$(grep '"rebuild process started"' "$work/err" | head -1 | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["pid"])' 2>/dev/null)
[[ -n "$child" && "$child" != "$server" ]] && ok "the rebuild ran in a process of its own (pid $child)" || not_ok "no rebuild process in the server's log"
[[ -z "$child" ]] || ! kill -0 "$child" 2>/dev/null && ok "the rebuild process has ended" || not_ok "the rebuild process $child is still there"

# Protocol abuse on raw sockets: both Content-Length and Transfer-Encoding, and a client that
# never finishes its headers. The server answers the first with 400 and keeps serving.
clte=$(python3 - "$port" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"POST /api/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
print(s.recv(200).decode(errors="replace").split("\r\n")[0])
PY
)
[[ "$clte" == *"400"* ]] && ok "Content-Length with Transfer-Encoding → 400" || not_ok "CL+TE: $clte"
python3 - "$port" <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /api/catalog HTTP/1.1\r\nHost: x\r\nX-Slow: ")
time.sleep(2)
PY
slow=$!
sleep 0.5  # The slow client is connected and stuck in its headers.
expect "the server keeps serving beside a slow client" 200 '"status":"ok"' "$base/health"
wait "$slow"
kill -0 "$server" 2>/dev/null && ok "no crash" || not_ok "the server died"
kill -TERM "$server"
wait "$server"
code=$?
server=""
[[ $code -eq 0 ]] && ok "SIGTERM: clean exit 0" || not_ok "SIGTERM exit code $code"

# A server killed (SIGKILL) mid-rebuild. Its rebuild process, held by a failpoint once the shadow
# tables are written (before the catch-up and the swap), is cancelled by the kernel's
# parent-death signal rather than carrying on unseen with the rebuild lease; the live read
# models are as they were; a server started again rebuilds them to identical tables.
gone() { [[ ! -e /proc/$1 ]] || grep -q ') Z ' "/proc/$1/stat" 2>/dev/null; }  # ended (or a zombie)
start_server "$work/err-kill" OE_FAILPOINT=rebuild_before_swap
orders_before=$(curl -s "${auth[@]}" "$base/api/orders")
expect "rebuild before the kill → 202" 202 '"state":"running"' -H "Authorization: Bearer $admin" -H "Idempotency-Key: rb-kill" -X POST "$base/api/admin/projections/all/rebuild"
held=$(wait_rebuild swapping done failed)
[[ "$held" == *'"state":"swapping"'* ]] && ok "the rebuild wrote its shadow tables and waits (failpoint)" || not_ok "rebuild with the failpoint: ${held:0:300}"
child=$(grep '"rebuild process started"' "$work/err-kill" | head -1 | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["pid"])' 2>/dev/null)
kill -9 "$server"
wait "$server" 2>/dev/null
server=""
for _ in $(seq 1 100); do [[ -z "$child" ]] || gone "$child" && break; sleep 0.1; done
[[ -n "$child" ]] && gone "$child" && ok "the rebuild process ended with its server (pid $child)" || not_ok "rebuild process ${child:-(none)} still running after its server was killed"
grep -q 'orderengine rebuild: cancelled' "$work/err-kill" && ok "it ended cancelled" || not_ok "no cancellation in the log: $(grep -v '"level":"info"' "$work/err-kill" | tail -2)"
start_server "$work/err-after"
[[ "$(curl -s "${auth[@]}" "$base/api/orders")" == "$orders_before" ]] && ok "the live orders list is as before the killed rebuild (nothing emptied or half-written)" || not_ok "orders changed by a killed rebuild"
expect "rebuild after the kill → 202 (the lease was let go)" 202 '"state":"running"' -H "Authorization: Bearer $admin" -H "Idempotency-Key: rb-after" -X POST "$base/api/admin/projections/all/rebuild"
rebuilt=$(wait_rebuild done failed)
done_identical "$rebuilt" && ok "the next rebuild is done and every table identical" || not_ok "rebuild after the kill: ${rebuilt:0:400}"
kill -TERM "$server"
wait "$server"
server=""

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
