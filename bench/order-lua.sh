# Sourced by the HTTP benchmarks: the wrk script that places orders.
#   write_order_lua <file> <key prefix> [pace ms]
# Writes a wrk script placing the order of $order_body as the reseller of $token, each request
# with an Idempotency-Key of its own (<prefix>-<wrk thread>-<n>: a key used before would be
# answered from the idempotency store instead of placing an order). With a pace, each
# connection waits that many milliseconds between orders (wrk's own pacing; wrk2 is not in
# Debian), so a rate is measured, not promised.
order_body='{"lines":[{"sku":"SNS-SPF50-50","qty":3},{"sku":"MSK-SHEET-5","qty":10}]}'

write_order_lua() {
    local file=$1 prefix=$2 pace_ms=${3:-0}
    cat >"$file" <<LUA
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
        ["Authorization"] = "Bearer ${token:?write_order_lua needs \$token}",
        ["Content-Type"] = "application/json",
        ["Idempotency-Key"] = string.format("$prefix-%d-%d", id, counter),
    }, '$order_body')
end
LUA
}
