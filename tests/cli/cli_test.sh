#!/usr/bin/env bash
# Drives the real orderengine binary: exit codes and one-line errors for bad configuration,
# migrate, and serve answering GET /health (SQLite, and PostgreSQL when the test server is up).
#   tests/cli/cli_test.sh <path-to-orderengine>
set -uo pipefail
bin=${1:?usage: cli_test.sh <orderengine>}
work=$(mktemp -d)
server_pid=""
passed=0
failed=0
cleanup() {
    [[ -n "$server_pid" ]] && kill -9 "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

export AUTH_JWT_SECRET=cli-test-secret

ok() { passed=$((passed + 1)); echo "ok   - $1"; }
not_ok() { failed=$((failed + 1)); echo "FAIL - $1"; }

# expect_fail <name> <expected exit> <stderr pattern> <command...>
expect_fail() {
    local name=$1 code=$2 pattern=$3
    shift 3
    local out rc
    out=$("$@" 2>&1 >/dev/null)
    rc=$?
    local lines
    lines=$(printf '%s' "$out" | grep -c '' || true)
    if [[ $rc -eq $code && "$out" =~ $pattern && $lines -le 1 ]]; then
        ok "$name"
    else
        not_ok "$name (exit $rc, ${lines} lines: $out)"
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_server <database-url> -> sets server_pid, port; returns when /health answers (or fails)
start_server() {
    port=$(free_port)
    local started=$(date +%s%N)
    DATABASE_URL="$1" PORT=$port "$bin" serve >"$work/serve.out" 2>"$work/serve.err" &
    server_pid=$!
    for _ in $(seq 1 500); do
        if curl -fsS "http://127.0.0.1:$port/health" >"$work/health" 2>/dev/null; then
            startup_ms=$(( ($(date +%s%N) - started) / 1000000 ))
            return 0
        fi
        kill -0 "$server_pid" 2>/dev/null || return 1
        sleep 0.01
    done
    return 1
}

stop_server() {
    kill -TERM "$server_pid"
    wait "$server_pid"
    local rc=$?
    server_pid=""
    return $rc
}

usage_out=$("$bin" 2>&1 >/dev/null)
[[ $? -eq 2 && "$usage_out" == usage:* ]] && ok "no command prints usage on stderr and exits 2" \
    || not_ok "no command: $usage_out"
expect_fail "unknown command exits 2 with one line" 2 "unknown command 'frobnicate'" "$bin" frobnicate
expect_fail "malformed DATABASE_URL exits 2 with one line" 2 "invalid DATABASE_URL" \
    env DATABASE_URL=mysql://localhost/x "$bin" migrate
expect_fail "empty sqlite path exits 2" 2 "needs a file path" env DATABASE_URL=sqlite:// "$bin" migrate
expect_fail "garbled postgresql URL exits 2" 2 "invalid PostgreSQL URL" \
    env "DATABASE_URL=postgresql://[::1" "$bin" migrate
expect_fail "unreachable database exits 2 with one line" 2 "cannot connect to PostgreSQL" \
    env DATABASE_URL=postgresql://127.0.0.1:1/nothing "$bin" migrate
expect_fail "bad PORT exits 2" 2 "PORT must be" env DATABASE_URL="sqlite://$work/x.db" PORT=99999 "$bin" serve
expect_fail "serve --no-migrate on an empty database exits 2" 2 "migrate" \
    env DATABASE_URL="sqlite://$work/empty/none.db" "$bin" serve --no-migrate

expect_fail "token without AUTH_JWT_SECRET exits 2" 2 "AUTH_JWT_SECRET" \
    env -u AUTH_JWT_SECRET "$bin" token --role admin
expect_fail "token with an unknown role exits 2" 2 "--role must be" \
    env AUTH_JWT_SECRET=x "$bin" token --role boss
expect_fail "reseller token without a partner exits 2" 2 "needs --partner" \
    env AUTH_JWT_SECRET=x "$bin" token --role reseller
expect_fail "token with a partner id SPEC §6 forbids exits 2" 2 "must be 1..64 characters" \
    env AUTH_JWT_SECRET=x "$bin" token --role reseller --partner 'bad id!'
expect_fail "token with a 65-character partner id exits 2" 2 "must be 1..64 characters" \
    env AUTH_JWT_SECRET=x "$bin" token --role agent --partners "P-1,$(printf 'x%.0s' {1..65})"
expect_fail "admin token with --partner exits 2" 2 "--partner is for a reseller token" \
    env AUTH_JWT_SECRET=x "$bin" token --role admin --partner P-1
expect_fail "reseller token with --partners exits 2" 2 "--partners is for an agent token" \
    env AUTH_JWT_SECRET=x "$bin" token --role reseller --partner P-1 --partners P-2
expect_fail "fake-erp with a directory as its seed exits 2" 2 "not a readable file" \
    "$bin" fake-erp --port 0 --seed "$work"
expect_fail "fake-erp with /dev/null as its seed exits 2" 2 "not a readable file" \
    "$bin" fake-erp --port 0 --seed /dev/null
: > "$work/empty-seed.json"
expect_fail "fake-erp with an empty seed file exits 2" 2 "is empty" \
    "$bin" fake-erp --port 0 --seed "$work/empty-seed.json"
expect_fail "an option given without its value says so" 2 "^orderengine token: --role needs a value" \
    env AUTH_JWT_SECRET=x "$bin" token --role
expect_fail "replay --as-of without its value says so" 2 "--as-of needs a value" "$bin" replay --as-of
expect_fail "an option a command does not have is unknown" 2 "unknown option '--colour'" \
    "$bin" serve --colour
help=$("$bin" fake-erp --help 2>/dev/null)
check_help=$?
[[ $check_help -eq 0 && "$help" == *"fake-erp --port P"* ]] && ok "fake-erp --help prints the usage, exit 0" \
    || not_ok "fake-erp --help: exit $check_help"
token=$(AUTH_JWT_SECRET=x "$bin" token --role agent --partners P-1,P-2 --sub agent-9)
payload=$(echo "$token" | cut -d. -f2 | tr '_-' '/+')
while (( ${#payload} % 4 )); do payload="$payload="; done
claims=$(echo "$payload" | base64 -d 2>/dev/null)
if [[ $(echo "$token" | tr -cd '.' | wc -c) -eq 2 && "$claims" == *'"sub":"agent-9"'* &&
      "$claims" == *'"partners":["P-1","P-2"]'* ]]; then
    ok "token mints an HS256 JWT with the claims asked for"
else
    not_ok "token: $token / $claims"
fi

expect_fail "serve without AUTH_JWT_SECRET exits 2" 2 "AUTH_JWT_SECRET is not set" \
    env -u AUTH_JWT_SECRET DATABASE_URL="sqlite://$work/nosecret.db" "$bin" serve

db="sqlite://$work/data/orderengine.db"
if out=$(DATABASE_URL=$db "$bin" migrate 2>&1) && [[ "$out" == "schema at version "* ]]; then
    ok "migrate creates the SQLite database and its directory"
else
    not_ok "migrate on SQLite: $out"
fi

if start_server "$db" && [[ $(cat "$work/health") == '{"status":"ok"}' ]]; then
    ok "serve answers GET /health on SQLite (${startup_ms} ms from exec, including curl polling)"
    ready=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ready")
    [[ "$ready" == 200 ]] && ok "GET /ready is 200" || not_ok "GET /ready answered $ready"
    missing=$(curl -s -w ' %{http_code}' "http://127.0.0.1:$port/nope")
    [[ "$missing" == *'"code":"not_found"'*' 404' ]] && ok "unknown route is a JSON 404" \
        || not_ok "unknown route: $missing"
    traced=$(curl -s -D - -o /dev/null \
        -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' \
        "http://127.0.0.1:$port/ready" | tr -d '\r' | grep -i '^traceparent:')
    [[ "$traced" == *'00-4bf92f3577b34da6a3ce929d0e0e4736-'* ]] \
        && ok "an incoming traceparent is continued in the response" \
        || not_ok "traceparent: $traced"
    reseller=$("$bin" token --role reseller --partner P-404)
    unauth=$(curl -s -w ' %{http_code}' "http://127.0.0.1:$port/api/catalog")
    [[ "$unauth" == *'"code":"unauthenticated"'*' 401' ]] && ok "API without a token is 401" \
        || not_ok "API without a token: $unauth"
    unknown=$(curl -s -w ' %{http_code}' -H "Authorization: Bearer $reseller" \
        "http://127.0.0.1:$port/api/catalog")
    [[ "$unknown" == *'"code":"unknown_partner"'*' 422' ]] \
        && ok "API with a valid token for an unregistered partner is 422" \
        || not_ok "API catalog for an unknown partner: $unknown"
    curl -s "http://127.0.0.1:$port/metrics" >"$work/metrics.txt"
    if grep -q '^http_request_duration_seconds_bucket{route="/health",status="200",le=' \
        "$work/metrics.txt" && grep -q '^projection_lag_events{projection="orders"} 0$' \
        "$work/metrics.txt"; then
        ok "GET /metrics exposes request durations and projection lag"
    else
        not_ok "metrics: $(head -c 600 "$work/metrics.txt")"
    fi
    # SPEC §8 keeps the seed's names verbatim (lead_routing_latency_ms) even where the naming
    # lint prefers base units; that one finding is expected, anything else fails.
    promtool_out=$(promtool check metrics <"$work/metrics.txt" 2>&1 |
        grep -v '^lead_routing_latency_ms metric names should not contain abbreviated units$' || true)
    if [[ -z "$promtool_out" ]] && grep -q '^# TYPE lead_routing_latency_ms histogram' "$work/metrics.txt" &&
        grep -q '^# TYPE erp_circuit_state gauge' "$work/metrics.txt"; then
        ok "promtool check metrics finds nothing but the SPEC's verbatim lead_routing_latency_ms"
    else
        not_ok "promtool check metrics: $promtool_out"
    fi
    rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status")
    echo "     idle RSS: ${rss_kb} kB"
    if stop_server; then ok "SIGTERM stops serve with exit 0"; else not_ok "SIGTERM exit code"; fi
    grep -q '"msg":"listening"' "$work/serve.err" && ok "serve logs a JSON 'listening' line" \
        || not_ok "no JSON listening log: $(cat "$work/serve.err")"
    grep -q '"msg":"request","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","method":"GET","route":"/ready","status":"200"' \
        "$work/serve.err" && ok "requests are logged as JSON lines with their trace id" \
        || not_ok "no request log line: $(grep request "$work/serve.err" | head -3)"
else
    not_ok "serve did not answer /health: $(cat "$work/serve.err")"
fi

# orderengine rebuild: the human summary, --progress json (each line one JSON object, the last
# one "done"; what a server reads from its rebuild process), bad arguments.
rb_db="sqlite://$work/rebuild.db"
DATABASE_URL="$rb_db" "$bin" migrate >/dev/null 2>&1
out=$(DATABASE_URL="$rb_db" "$bin" rebuild --all 2>/dev/null)
[[ $? -eq 0 && "$out" == *"swapped in at position"* && "$out" == *"identical"* ]] \
    && ok "rebuild --all prints its checksums and exits 0" || not_ok "rebuild --all: $out"
json=$(DATABASE_URL="$rb_db" "$bin" rebuild pricing --beside-server --progress json 2>/dev/null)
rc=$?
if [[ $rc -eq 0 ]] && printf '%s\n' "$json" | python3 -c '
import json, sys
lines = [json.loads(l) for l in sys.stdin if l.strip()]
assert lines and lines[-1]["state"] == "done", lines[-1:]
assert lines[-1]["projections"] == ["pricing"] and lines[-1]["checksums"][0]["identical"]
'; then
    ok "rebuild --progress json prints JSON lines, the last one done"
else
    not_ok "rebuild --progress json (exit $rc): ${json:0:300}"
fi
expect_fail "rebuild --progress with another value exits 2" 2 "--progress takes one value: json" \
    env DATABASE_URL="$rb_db" "$bin" rebuild --all --progress xml
expect_fail "rebuild of an unknown projection exits 2" 2 "unknown projection 'ledger'" \
    env DATABASE_URL="$rb_db" "$bin" rebuild ledger
expect_fail "rebuild with two names exits 2" 2 "name one projection or --all" \
    env DATABASE_URL="$rb_db" "$bin" rebuild pricing orders

sqlite3 "$work/data/orderengine.db" \
    "INSERT INTO oe_schema_migrations VALUES (999, 'from the future', 0)"
expect_fail "a schema newer than the binary exits 2 with one line" 2 "newer|understands up to" \
    env DATABASE_URL="$db" "$bin" serve

if [[ -n "${OE_TEST_PG_ADMIN_URL:-}" ]]; then
    name="oe_cli_$$"
    psql -q "$OE_TEST_PG_ADMIN_URL" -c "CREATE DATABASE $name" >/dev/null
    pg_url="${OE_TEST_PG_ADMIN_URL%/*}/$name"
    if start_server "$pg_url"; then
        ok "serve migrates and answers GET /health on PostgreSQL"
        ready=$(curl -s "http://127.0.0.1:$port/ready")
        [[ "$ready" == *'"status":"ready"'* ]] && ok "GET /ready on PostgreSQL" \
            || not_ok "GET /ready on PostgreSQL: $ready"
        stop_server && ok "SIGTERM on PostgreSQL exits 0" || not_ok "SIGTERM on PostgreSQL"
    else
        not_ok "serve on PostgreSQL: $(cat "$work/serve.err")"
    fi
    psql -q "$OE_TEST_PG_ADMIN_URL" -c "DROP DATABASE $name WITH (FORCE)" >/dev/null
else
    not_ok "OE_TEST_PG_ADMIN_URL is not set: run through make test or scripts/with-test-services"
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
