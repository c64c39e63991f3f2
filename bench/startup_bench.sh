#!/usr/bin/env bash
# Start-up benchmark: time from exec of `orderengine serve` (SQLite, migrations included) to the
# first GET /health 200, and idle RSS once it answers. Prints a table.
#   bench/startup_bench.sh <path-to-orderengine> [runs]
set -euo pipefail
bin=${1:?usage: startup_bench.sh <orderengine> [runs]}
runs=${2:-20}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
times=()
rss=()
for run in $(seq 1 "$runs"); do
    start=$(date +%s%N)
    AUTH_JWT_SECRET=bench DATABASE_URL="sqlite://$work/run$run.db" PORT=$port "$bin" serve 2>/dev/null &
    pid=$!
    until curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1; do
        sleep 0.001
    done
    times+=($(( ($(date +%s%N) - start) / 1000 )))
    sleep 0.2
    rss+=($(awk '/VmRSS/ {print $2}' "/proc/$pid/status"))
    kill -TERM "$pid"
    wait "$pid"
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(echo "$sorted" | sed -n "$(( (runs + 1) / 2 ))p")
worst=$(echo "$sorted" | tail -1)
rss_max=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)
printf '| %-44s | %10s | %-10s |\n' "measure ($runs runs, new SQLite file each)" "value" "target"
printf '|----------------------------------------------|------------|------------|\n'
printf '| %-44s | %7d ms | %-10s |\n' "exec -> GET /health 200, median" $((median / 1000)) "<= 100 ms"
printf '| %-44s | %7d ms | %-10s |\n' "exec -> GET /health 200, worst" $((worst / 1000)) "<= 100 ms"
printf '| %-44s | %7d MB | %-10s |\n' "idle RSS after start, worst" $((rss_max / 1024)) "<= 30 MB"
