#!/usr/bin/env bash
# Runs the README's walkthroughs as a reader would: every `sh` block of the sections "The API"
# and "Finance and ops" in order, against a real `serve --demo` (SQLite) with the tokens that
# `make run` prints (scripts/demo-banner). Each command must answer without an error body; an
# `O-…` in a command stands for the order the walkthrough placed last. Until 2026-11-28 the
# finance walkthrough's second order came to 498,960 after its own tier change, under the
# 500,000 minimum, and nothing noticed.
#   tests/http/readme_walkthrough_test.sh <path-to-orderengine> [README.md]
set -uo pipefail
bin=${1:?usage: readme_walkthrough_test.sh <orderengine> [README.md]}
here=$(cd "$(dirname "$0")" && pwd)
readme=${2:-$here/../../README.md}
work=$(mktemp -d)
server=""
passed=0
failed=0
cleanup() {
    if [[ -n "$server" ]]; then
        kill -9 "$server" 2>/dev/null
        wait "$server" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT
ok() { passed=$((passed + 1)); echo "ok   - $1"; }
not_ok() { failed=$((failed + 1)); echo "FAIL - $1"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

export AUTH_JWT_SECRET=readme-walkthrough-secret
port=$(free_port)
erp_port=$(free_port)
DATABASE_URL="sqlite://$work/oe.db" PORT=$port ERP_SIM_PORT=$erp_port "$bin" serve --demo \
    >"$work/out" 2>"$work/err" &
server=$!
for _ in $(seq 1 600); do curl -fs "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.05; done

# The tokens exactly as `make run` prints them.
banner=$(PORT=$port ERP_SIM_PORT=$erp_port "$here/../../scripts/demo-banner" "$bin")
for role in RESELLER AGENT ADMIN FINANCE; do
    token=$(sed -n "s/^ *$role=\([^ ]*\).*/\1/p" <<<"$banner")
    [[ -n "$token" ]] || { not_ok "demo-banner prints $role"; exit 1; }
    export "$role=$token"
done

# The commands of a section's sh blocks, one per line (continuations joined, comments dropped).
commands() {  # commands <heading>
    awk -v heading="$1" '
        /^## / { inside = ($0 == "## " heading) }
        inside && /^```sh$/ { block = 1; next }
        block && /^```$/ { block = 0; next }
        block && !/^ *#/ {
            line = $0
            if (sub(/\\$/, "", line)) { pending = pending line; next }
            print pending line
            pending = ""
        }' "$readme"
}

last_order=""
run_section() {  # run_section <heading> <label>
    local ran=0 command out
    while IFS= read -r command; do
        command=${command//localhost:8080/127.0.0.1:$port}
        command=${command//localhost:8081/127.0.0.1:$erp_port}
        command=${command//O-…/$last_order}
        if [[ "$command" == *=\$\(* && "$command" != curl* ]]; then
            eval "$command"  # An assignment the walkthrough uses later (BEFORE=…).
            continue
        fi
        # No retries: a GET right after the order it reads must see it (read your writes).
        out=$(eval "$command" 2>&1)
        ran=$((ran + 1))
        if [[ "$out" == *'"error":{'* || -z "$out" ]]; then
            not_ok "$2: ${command:0:100} (got: ${out:0:200})"
        else
            ok "$2: ${command:0:100}"
        fi
        if [[ "$out" =~ ^\{\"order_id\":\"(O-[0-9A-Z]+)\" ]]; then
            last_order=${BASH_REMATCH[1]}
        fi
        last_out=$out
    done < <(commands "$1")
    ((ran > 0)) || not_ok "$2: the README has no sh block under \"## $1\""
}

run_section "The API" api
run_section "Finance and ops: audit, point-in-time replay, rebuild" finance
# The finance walkthrough ends with the audit of its last order, placed after the tier change.
[[ "$last_out" == *'"consistent":true'* ]] && ok "the last order audits as consistent" ||
    not_ok "the last audit: ${last_out:0:200}"
# Its credit report as of before the tier change holds the orders placed before it and not the
# one after: P-003's open orders are the first walkthrough's order (3 serums and 2 toners,
# GOLD 10 %: 627,300) and f-1 (510,300), the cancelled one excluded; f-2 (665,280) is not in it.
report=$(curl -s -H "Authorization: Bearer $FINANCE" -H "Accept: text/csv" \
    "http://127.0.0.1:$port/api/finance/replay?as_of=$BEFORE&model=credit")
[[ "$report" == *$'\nP-003,30000000,0,1137600,28862400,'* ]] &&
    ok "the credit report as of before the change holds P-003's two earlier orders" ||
    not_ok "the credit report as of \$BEFORE: ${report:0:400}"
# Its pricing rebuild ends done, with the rebuilt table identical to the live one.
answer=""
for _ in $(seq 1 300); do
    answer=$(curl -s -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:$port/api/admin/projections")
    [[ "$answer" == *'"state":"running"'* || "$answer" == *'"state":"swapping"'* ]] || break
    sleep 0.1
done
[[ "$answer" == *'"projections":["pricing"]'* && "$answer" == *'"state":"done"'* &&
    "$answer" == *'"identical":true'* && "$answer" != *'"identical":false'* ]] &&
    ok "the walkthrough's pricing rebuild ended done, checksums identical" ||
    not_ok "the walkthrough's rebuild: ${answer:0:300}"

echo "$passed passed, $failed failed"
((failed == 0))
