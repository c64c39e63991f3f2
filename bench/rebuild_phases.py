#!/usr/bin/env python3
"""Checkout's server-side latency, phase by phase of each rebuild (rebuild_checkout_bench.sh).

    rebuild_phases.py <serve.log> <windows>

<serve.log>: the server's JSON log, one "request" line per answered request (ts, route,
method, duration_ms). <windows>: one line per run, either
    alone <round> <start> <end>            (epoch seconds, as bash's EPOCHREALTIME)
or
    during <round> <start> <end> <timeline file>
where the timeline holds one line per poll of GET /api/admin/projections during the rebuild:
    <epoch seconds> <state> <share_percent> <fold_ms> <write_ms> <checksum_ms>
A request belongs to the phase of the last poll before it (the phase the rebuild was seen in;
a poll a second). Prints a Markdown table: requests, p50 and p99 (nearest rank) of the
server's own handling time for POST /api/orders, the share of them over 20 ms (the stalls
that make up the tail), and the mean of the shares polled in the phase. wrk's figures, which the verdict uses, include the client and the network; these do
not, but they can be cut by phase.
"""
import bisect
import datetime
import math
import re
import sys

LINE = re.compile(r'"ts":"([^"]+)".*"method":"POST","route":"/api/orders","status":"2\d\d",'
                  r'"duration_ms":"([0-9.]+)"')


def epoch(ts):
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def phase_of(state, fold_ms, checksum_ms):
    if state == "running":
        return "fold" if fold_ms == 0 else "shadow write"
    return "catch-up, checksums" if checksum_ms == 0 else "catch-up, swap"


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    return sorted_values[max(0, math.ceil(p * len(sorted_values)) - 1)]


def main():
    serve_log, windows_file = sys.argv[1], sys.argv[2]
    requests = []  # (epoch, ms), in log order (nearly time order)
    with open(serve_log, encoding="utf-8", errors="replace") as log:
        for line in log:
            if '"/api/orders"' not in line:
                continue
            m = LINE.search(line)
            if m:
                requests.append((epoch(m.group(1)), float(m.group(2))))
    requests.sort()
    times = [t for t, _ in requests]

    def between(start, end):
        return requests[bisect.bisect_left(times, start):bisect.bisect_right(times, end)]

    rows = []
    for raw in open(windows_file, encoding="utf-8"):
        fields = raw.split()
        if not fields:
            continue
        kind, rnd, start, end = fields[0], fields[1], float(fields[2]), float(fields[3])
        if kind == "alone":
            ms = sorted(d for _, d in between(start, end))
            rows.append((rnd, "alone", end - start, "", ms))
            continue
        polls = []
        for entry in open(fields[4], encoding="utf-8"):
            p = entry.split()
            if len(p) == 6:
                polls.append((float(p[0]), phase_of(p[1], int(p[3]), int(p[5])), int(p[2])))
        if not polls:
            continue
        poll_times = [t for t, _, _ in polls]
        by_phase = {}
        order = []
        for t, d in between(start, end):
            i = max(0, bisect.bisect_right(poll_times, t) - 1)
            name = polls[i][1]
            if name not in by_phase:
                by_phase[name] = []
                order.append(name)
            by_phase[name].append(d)
        for name in order:
            seen = [(t, s) for t, n, s in polls if n == name]
            length = (seen[-1][0] - seen[0][0] + 1) if seen else 0
            share = sum(s for _, s in seen) / len(seen) if seen else float("nan")
            rows.append((rnd, name, length, f"{share:.0f} %", sorted(by_phase[name])))
        whole = sorted(d for _, d in between(start, end))
        rows.append((rnd, "**whole rebuild**", end - start, "", whole))

    print("| round | run or phase | ~s | mean share | requests | p50 | p99 | over 20 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for rnd, name, length, share, ms in rows:
        over = len(ms) - bisect.bisect_right(ms, 20.0)
        print(f"| {rnd} | {name} | {length:.0f} | {share} | {len(ms)} | "
              f"{percentile(ms, 0.50):.2f} ms | {percentile(ms, 0.99):.2f} ms | "
              f"{100.0 * over / max(len(ms), 1):.2f} % |")


if __name__ == "__main__":
    main()
