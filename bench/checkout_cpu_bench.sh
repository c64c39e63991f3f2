#!/usr/bin/env bash
# CPU per order under paced checkout. wrk places orders at ~500/s (each of 16 connections waits
# 30 ms between orders) against `orderengine serve --demo`, started as bench/http_bench.sh
# starts it. After a 5 s warm-up, the CPU time (user + system, from /proc) that every process
# used over <seconds> is summed by kind: the server, the PostgreSQL backends serving its
# database, PostgreSQL's other processes (WAL writer, checkpointer, autovacuum, ...), wrk. Prints
# each as a share of one core and per order (orders counted by the server's
# orders_placed_total over the same window), then the server's threads and wrk's latency.
#   bench/checkout_cpu_bench.sh <path-to-orderengine> [seconds] [sqlite|postgresql]
set -euo pipefail
bin=${1:?usage: checkout_cpu_bench.sh <orderengine> [seconds] [sqlite|postgresql]}
seconds=${2:-30}
backend=${3:-postgresql}
command -v wrk >/dev/null || { echo "checkout_cpu_bench: wrk is not installed (apt-get install wrk)"; exit 2; }
((seconds >= 5)) || { echo "checkout_cpu_bench: seconds must be at least 5"; exit 2; }
source "$(dirname "$0")/demo-server.sh"
source "$(dirname "$0")/order-lua.sh"
start_demo_server "$bin" "$backend" oe_cpu_bench
write_order_lua "$work/steady.lua" cpu 30
wrk -t2 -c16 -d"$((seconds + 10))s" --latency -s "$work/steady.lua" "$base" >"$work/wrk.txt" 2>&1 &
wrk_pid=$!
sleep 5

placed() { curl -fs "$base/metrics" | awk '/^orders_placed_total/ {n += $2} END {print n + 0}'; }
# One line per process: pid, CPU ticks (utime + stime), kind; then one per server thread.
snapshot() {
    python3 - "$server" "$wrk_pid" "${pg_db:-}" <<'PY'
import os, sys
server, wrk, database = sys.argv[1], sys.argv[2], sys.argv[3]
def ticks(path):
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        used = ticks(f"/proc/{pid}/stat")
    except OSError:
        continue  # Gone meanwhile.
    if pid == server:
        kind = "the server (orderengine)"
    elif pid == wrk:
        kind = "wrk"
    elif cmd.startswith("postgres: ") and database and f" {database} " in cmd:
        kind = "PostgreSQL backends of its database"
    elif cmd.startswith("postgres") or "/postgresql/" in cmd:
        kind = "PostgreSQL, other processes"
    else:
        continue
    print(pid, used, kind)
for tid in os.listdir(f"/proc/{server}/task"):
    try:
        with open(f"/proc/{server}/task/{tid}/comm") as f:
            name = f.read().strip()
        print(f"t{tid}", ticks(f"/proc/{server}/task/{tid}/stat"), "thread " + name)
    except OSError:
        continue
PY
}
orders_before=$(placed)
snapshot >"$work/before.txt"
started=$(date +%s.%N)
sleep "$seconds"
snapshot >"$work/after.txt"
ended=$(date +%s.%N)
orders_after=$(placed)
wait "$wrk_pid"

python3 - "$work/before.txt" "$work/after.txt" "$(getconf CLK_TCK)" "$started" "$ended" \
    "$orders_before" "$orders_after" "$backend" <<'PY'
import collections, sys
before_file, after_file, hz, started, ended, o0, o1, backend = sys.argv[1:9]
hz, wall, orders = int(hz), float(ended) - float(started), float(o1) - float(o0)
def load(path):
    rows = {}
    for line in open(path):
        pid, used, kind = line.rstrip("\n").split(" ", 2)
        rows[pid] = (int(used), kind)
    return rows
before, after = load(before_file), load(after_file)
kinds, threads = collections.Counter(), collections.Counter()
for pid, (used, kind) in after.items():
    spent = used - before.get(pid, (0, kind))[0]  # A process new in the window: all of it.
    (threads if kind.startswith("thread ") else kinds)[kind] += spent
print(f"{backend}: {orders:.0f} orders in {wall:.1f} s ({orders / wall:.1f}/s)\n")
print("| process | CPU, % of one core | CPU per order |")
print("|---|---|---|")
total = 0
for kind, spent in kinds.most_common():
    if spent == 0:
        continue  # E.g. a PostgreSQL cluster running idle beside a SQLite run.
    total += spent
    seconds = spent / hz
    print(f"| {kind} | {seconds / wall * 100:.1f} % | {seconds / orders * 1e6:.0f} µs |")
print(f"| **all of them** | **{total / hz / wall * 100:.1f} %** | "
      f"**{total / hz / orders * 1e6:.0f} µs** |")
print("\nserver threads (% of one core): " + ", ".join(
    f"{kind[7:]} {spent / hz / wall * 100:.1f}" for kind, spent in threads.most_common() if spent))
PY
awk '$1 == "50%" {p50 = $2} $1 == "99%" {p99 = $2} /Requests\/sec/ {rps = $2}
     END {printf "wrk over %s s in all: %s orders/s, p50 %s, p99 %s\n", "'$((seconds + 10))'", rps, p50, p99}' \
    "$work/wrk.txt"
