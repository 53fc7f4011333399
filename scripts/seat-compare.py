#!/usr/bin/env python3
"""The comparison table from scripts/bench-seat-lock.sh's TSV rows.

One row per configuration, hot-seat share and offered rate: the median of
the rounds with the range (min-max) beside it ("conflicts": holds the load
generator saw refused, SEAT_TAKEN; "lock retries"/"lock timeouts": the
redis-lock's busy acquires and give-ups, from the server), check 6's
verdicts (run against the same server right after the load), and per
configuration and share the highest offered rate whose hold P95 stayed
within the latency bound in every round ("TPS at the bound": the
purchases a second completed there).

    scripts/seat-compare.py runs.tsv [--bound-ms 100] > table.md
"""
import argparse
import csv
import statistics
import sys
from collections import defaultdict

ORDER = ["conditional", "row-lock", "redis-lock", "cache", "delayed"]


def cell(values, digits=1):
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tsv")
    ap.add_argument("--bound-ms", type=float, default=100.0)
    args = ap.parse_args()
    groups = defaultdict(list)
    with open(args.tsv) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            groups[(row["config"], row["hot"], float(row["rate"]))].append(row)

    def nums(rows, key):
        return [float(r[key]) for r in rows if r.get(key) not in (None, "", "FAILED")]

    key = lambda k: (ORDER.index(k[0]) if k[0] in ORDER else 99, float(k[1]), k[2])
    print(
        "| config | hot share | offered/s | purchases/s | hold mean ms | hold P95 ms | hold P99 ms "
        "| flow P95 ms | conflicts | lock retries | lock timeouts | check 6 | worst lapse after TTL ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for k in sorted(groups, key=key):
        rows = groups[k]
        failed = sum(r["achieved"] == "FAILED" for r in rows)
        verdicts = [r["check6"] for r in rows]
        passed = verdicts.count("PASS")
        check6 = f"{passed}/{len(verdicts)} pass" + (
            f" ({', '.join(v for v in verdicts if v != 'PASS')})" if passed < len(verdicts) else ""
        )
        print(
            "| "
            + " | ".join(
                [
                    k[0],
                    k[1],
                    f"{k[2]:g}",
                    cell(nums(rows, "flows_per_s")) + (f", {failed} run(s) failed" if failed else ""),
                    cell(nums(rows, "hold_mean_ms")),
                    cell(nums(rows, "hold_p95_ms")),
                    cell(nums(rows, "hold_p99_ms")),
                    cell(nums(rows, "flow_p95_ms")),
                    cell(nums(rows, "hold_refused"), 0),
                    cell(nums(rows, "lock_retries"), 0),
                    cell(nums(rows, "lock_timeouts"), 0),
                    check6,
                    cell(nums(rows, "check6_worst_lapse_ms"), 0),
                ]
            )
            + " |"
        )
    print()
    print(f"TPS at the bound (hold P95 <= {args.bound_ms:g} ms in every round, highest offered rate that met it):")
    print()
    print("| config | hot share | rate met | purchases/s there |")
    print("|---|---:|---:|---:|")
    pairs = sorted({(c, h) for c, h, _ in groups}, key=lambda p: key((p[0], p[1], 0)))
    for c, h in pairs:
        met = [
            r
            for (c2, h2, r) in groups
            if (c2, h2) == (c, h)
            and all(
                x["hold_p95_ms"] not in ("", None) and float(x["hold_p95_ms"]) <= args.bound_ms
                for x in groups[(c, h, r)]
            )
        ]
        if met:
            best = max(met)
            print(f"| {c} | {h} | {best:g} | {cell(nums(groups[(c, h, best)], 'flows_per_s'))} |")
        else:
            print(f"| {c} | {h} | none | - |")


if __name__ == "__main__":
    sys.exit(main())
