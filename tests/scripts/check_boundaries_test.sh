#!/usr/bin/env bash
# Tests scripts/check-boundaries on small fixture trees built in a temp dir, each with a copy of
# the real cmake/module-rules.txt. Prints "N passed, 0 failed" and exits 0 when all pass.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
check=$repo/scripts/check-boundaries
work=$(mktemp -d "${TMPDIR:-/tmp}/check-boundaries-test.XXXXXX")
trap 'rm -rf -- "$work"' EXIT

passed=0
failed=0
tree=
out=
rc=0

# put <path> <line>...: writes a file in the current fixture tree, one argument per line.
put() {
    local path=$tree/$1
    shift
    mkdir -p "$(dirname "$path")"
    printf '%s\n' "$@" >"$path"
}

# A tree that satisfies every rule; each test case adds one file to a fresh copy of it.
new_tree() {
    tree=$(mktemp -d "$work/tree.XXXXXX")
    mkdir -p "$tree/cmake"
    cp "$repo/cmake/module-rules.txt" "$tree/cmake/"
    put src/kernel/include/oe/kernel/result.hpp '#pragma once' '#include <vector>'
    put src/kernel/result.cpp '#include <oe/kernel/result.hpp>' '#include "detail/impl.hpp"'
    put src/kernel/detail/impl.hpp '#pragma once' '#include "detail/helper.hpp"'  # Via the module root.
    put src/kernel/detail/helper.hpp '#pragma once'
    put src/identity/auth/include/oe/auth/token.hpp '#pragma once' '#include <oe/kernel/result.hpp>'
    put src/commercial/pricing/include/oe/pricing/price.hpp '#pragma once' \
        '#include <oe/kernel/result.hpp>'
    put src/commercial/pricing/price.cpp \
        '#include <oe/pricing/price.hpp>' \
        '' \
        '#include <fmt/format.h>' \
        '#include <oe/auth/token.hpp>' \
        '#include <oe/events/order_placed.hpp>' \
        '#include "price_private.hpp"'
    put src/commercial/pricing/price_private.hpp '#pragma once'
    put src/commercial/credit/credit_private.hpp '#pragma once'
    put src/supply_chain/inventory/include/oe/inventory/stock.hpp '#pragma once'
    put src/http/router.cpp '#include <oe/inventory/stock.hpp>' '#include <oe/pricing/price.hpp>'
    put tests/pricing_test.cpp '#include <oe/pricing/price.hpp>' '#include <doctest/doctest.h>'
    # Not checked: outside every module, a build tree, the checker's own fixtures.
    put tools/gen.cpp '#include "../anything.hpp"' '#include <oe/nosuch/x.hpp>'
    put build/gen/config.hpp '#include "../x.hpp"'
    put build-asan/x.cpp '#include <oe/nosuch/x.hpp>'
    put tests/scripts/fixtures/bad.cpp '#include "../x.hpp"'
    put src/commercial/pricing/notes.txt '#include <oe/inventory/stock.hpp>'
}

run_check() {
    rc=0
    out=$("$check" --root "$tree" 2>&1) || rc=$?
}

pass() {
    passed=$((passed + 1))
    echo "ok    $1"
}

fail() {
    failed=$((failed + 1))
    echo "FAIL  $1"
    echo "      exit code: $rc"
    printf '%s\n' "$out" | sed 's/^/      | /'
}

# expect_clean <name>
expect_clean() {
    run_check
    if [[ $rc -eq 0 && $out == "check-boundaries: "*" files, "*" includes, no violations" ]]; then
        pass "$1"
    else
        fail "$1"
    fi
}

# expect_violation <name> <expected substring>...: exit 1 and every substring in the output.
expect_violation() {
    local name=$1 needle
    shift
    run_check
    if [[ $rc -ne 1 ]]; then
        fail "$name (expected exit 1)"
        return
    fi
    for needle in "$@"; do
        if [[ $out != *"$needle"* ]]; then
            fail "$name (missing: $needle)"
            return
        fi
    done
    pass "$name"
}

new_tree
expect_clean "a tree that follows the rules passes"
run_check
if [[ $out == "check-boundaries: 12 files, 15 includes, no violations" ]]; then
    pass "the summary counts module files and their includes only"
else
    fail "the summary counts module files and their includes only (want 12 files, 15 includes)"
fi

new_tree
put src/commercial/pricing/loyalty.cpp \
    '#include <oe/pricing/price.hpp>' \
    '' \
    '#include <oe/inventory/stock.hpp>'
expect_violation "pricing may not include inventory" \
    "src/commercial/pricing/loyalty.cpp:3: module 'pricing' may not include 'inventory'" \
    "(<oe/inventory/stock.hpp>)" \
    "allowed are kernel, events, auth (cmake/module-rules.txt)" \
    "— Commercial and Supply chain communicate only through events (SPEC §2)"

new_tree
put src/supply_chain/routing/route.cpp '#include <oe/credit/exposure.hpp>'
expect_violation "routing may not include credit (Supply chain -> Commercial)" \
    "src/supply_chain/routing/route.cpp:1: module 'routing' may not include 'credit'" \
    "Commercial and Supply chain communicate only through events (SPEC §2)"

new_tree
put src/kernel/money.cpp '#include <oe/auth/token.hpp>'
expect_violation "the kernel may include only itself" \
    "src/kernel/money.cpp:1: module 'kernel' may not include 'auth'" \
    "allowed are none but itself and third-party"
if [[ $out == *"Commercial and Supply chain"* ]]; then
    fail "the Commercial/Supply chain sentence appears only between those contexts"
else
    pass "the Commercial/Supply chain sentence appears only between those contexts"
fi

new_tree
put src/commercial/credit/limit.cpp '#include <oe/kernel/result.hpp>' '#include "../pricing/x.hpp"'
expect_violation 'a relative parent include "../" fails' \
    'src/commercial/credit/limit.cpp:2: relative parent include "../pricing/x.hpp"' \
    'No #include "../…"'

new_tree
put src/kernel/detail/more.hpp '#pragma once' '  #  include "../result.cpp"'
expect_violation 'a "../" include fails even when it stays inside the module' \
    'src/kernel/detail/more.hpp:2: relative parent include'

new_tree
put src/identity/auth/rbac.cpp '#include <oe/nosuch/thing.hpp>'
expect_violation "an unknown module fails" \
    "src/identity/auth/rbac.cpp:1: unknown module 'nosuch' (<oe/nosuch/thing.hpp>)"

new_tree
put src/commercial/pricing/tier.cpp '#include "credit_private.hpp"'
expect_violation "a quoted include of another module's private header fails" \
    "src/commercial/pricing/tier.cpp:1: \"credit_private.hpp\" does not resolve to a file of module 'pricing'"

new_tree
put tests/credit_test.cpp '#include "src/commercial/credit/credit_private.hpp"'
expect_violation "a test may not reach into a module's private header with quotes" \
    "tests/credit_test.cpp:1: \"src/commercial/credit/credit_private.hpp\" does not resolve"

new_tree
put src/commercial/pricing/quote.cpp '#include "oe/kernel/result.hpp"'
expect_violation "a public header included with quotes fails and suggests angle brackets" \
    'src/commercial/pricing/quote.cpp:1:' "use <oe/kernel/result.hpp>"

new_tree
put src/commercial/pricing/a.cpp '#include <oe/inventory/stock.hpp>'
put src/commercial/pricing/b.cpp '#include <oe/nosuch/x.hpp>' '#include "../b.hpp"'
expect_violation "every violation is reported, not just the first" \
    "src/commercial/pricing/a.cpp:1:" "src/commercial/pricing/b.cpp:1:" \
    "src/commercial/pricing/b.cpp:2:"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
