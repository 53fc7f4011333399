#!/usr/bin/env python3
"""The figures of reports/broker-storage.md from measure.sh's output
directories: per engine, enter and purchase (flash_sale) P95 per 10 s
window (corrected for coordinated omission) with their spread, the first
and last minute's P95, the broker's CPU and RSS, PostgreSQL's CPU and the
load average.  Usage: summarize.py DIR...  (each DIR as measure.sh's OUT)"""
import os, statistics, subprocess, sys

here = os.path.dirname(os.path.abspath(__file__))


def windows(hlog, tags, window):
    out = subprocess.run([sys.executable, os.path.join(here, "windows.py"), hlog,
                          "--tags", tags, "--window", str(window)],
                         check=True, capture_output=True, text=True).stdout.split("\n")[1:]
    rows = []
    for line in filter(None, out):
        span, *cells = line.split()
        rows.append((span, [tuple(float(x) for x in c.split(",")) for c in cells]))
    # Windows inside the 600 s measured; later ones hold what drained after.
    return [r for r in rows if int(r[0].split("-")[0]) < 600]


def samples(path):
    rows = [l.split() for l in open(path)][1:]
    out = []
    for a, b in zip(rows, rows[1:]):
        dt = float(b[0]) - float(a[0])
        out.append(dict(t=float(b[0]), broker=(float(b[1]) - float(a[1])) / dt / 100,
                        rss=float(b[2]) / 1024, pg=(float(b[4]) - float(a[4])) / dt / 100,
                        server=(float(b[3]) - float(a[3])) / dt / 100, load=float(b[5])))
    return out


def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


for d in sys.argv[1:]:
    hlog = os.path.join(d, "loadgen", "latency.hlog")
    ten = windows(hlog, "enter.corrected,flash_sale.corrected,enter.raw,flash_sale.raw", 10)
    minute = windows(hlog, "enter.corrected,flash_sale.corrected", 60)
    s = samples(os.path.join(d, "samples.txt"))
    print(f"## {os.path.basename(d.rstrip('/'))}")
    print(open(os.path.join(d, "meta.txt")).read().strip())
    for i, name in ((0, "enter P95 corrected"), (1, "purchase P95 corrected"),
                    (2, "enter P95 raw"), (3, "purchase P95 raw")):
        p95 = [r[1][i][2] for r in ten]
        print(f"{name} per 10 s (ms): first {p95[0]:.1f}, last {p95[-1]:.1f}, "
              f"min {min(p95):.1f}, median {statistics.median(p95):.1f}, max {max(p95):.1f} "
              f"({len(p95)} windows)")
    for i, name in ((0, "enter"), (1, "purchase")):
        f, l = minute[0][1][i], minute[-1][1][i]
        print(f"{name} P95 first minute {f[2]:.1f} ms, last minute {l[2]:.1f} ms "
              f"(x{l[2] / f[2]:.2f}); completions first/last minute {f[0]:.0f}/{l[0]:.0f}")
    first = [x for x in s if x["t"] <= 60]
    last = [x for x in s if x["t"] > s[-1]["t"] - 60]
    for k, unit in (("broker", "cores"), ("pg", "cores"), ("server", "cores")):
        print(f"{k} CPU {unit}: first minute {mean([x[k] for x in first]):.2f}, "
              f"last minute {mean([x[k] for x in last]):.2f}, whole run {mean([x[k] for x in s]):.2f}")
    print(f"broker RSS MB: start {s[0]['rss']:.0f}, end {s[-1]['rss']:.0f}, max {max(x['rss'] for x in s):.0f}")
    loads = [x["load"] for x in s]
    print(f"load average (1 min) on 2 cores: min {min(loads):.1f}, median {statistics.median(loads):.1f}, max {max(loads):.1f}")
    print("every minute's first 10 s window: t, enter p95, purchase p95 (corrected), enter p95, purchase p95 (raw), completions")
    for span, cells in ten[::6]:
        print(f"  {span}: {cells[0][2]:.1f} {cells[1][2]:.1f} | {cells[2][2]:.1f} {cells[3][2]:.1f} | {cells[1][0]:.0f}")
    print()
