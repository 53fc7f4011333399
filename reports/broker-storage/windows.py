#!/usr/bin/env python3
"""P50 and P95 per 10 s window of a loadgen interval log (latency.hlog).

Merges the per-second HdrHistograms of each transaction into 10 s windows
and prints, per window, count and P50/P95 in ms. Usage:
  windows.py latency.hlog [--tags enter.corrected,flash_sale.corrected] [--window 10]
"""
import argparse, base64, math, struct, sys, zlib
from collections import defaultdict


def decode(b64):
    raw = base64.b64decode(b64)
    cookie, length = struct.unpack(">ii", raw[:8])
    inner = zlib.decompress(raw[8:8 + length])
    (cookie2, payload_len, _norm, digits, lowest, _highest, _ratio) = struct.unpack(">iiiiqqd", inner[:40])
    payload = inner[40:40 + payload_len]
    sub_mag = math.ceil(math.log2(2 * 10 ** digits))
    half_mag = sub_mag - 1
    half = 1 << half_mag
    unit_mag = int(math.floor(math.log2(lowest)))
    counts = {}
    i = pos = 0
    while pos < len(payload):
        shift = v = 0
        while True:
            byte = payload[pos]; pos += 1
            if shift == 56:
                v |= byte << 56
                break
            v |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        v = (v >> 1) ^ -(v & 1)
        if v < 0:
            i += -v
            continue
        if v:
            b = (i >> half_mag) - 1
            s = (i & (half - 1)) + half
            if b < 0:
                s -= half
                b = 0
            lo = s << (b + unit_mag)
            size = 1 << (b + unit_mag)
            counts[lo + size - 1] = counts.get(lo + size - 1, 0) + v
        i += 1
    return counts


def quantile(counts, q):
    total = sum(counts.values())
    if not total:
        return 0
    rank = max(1, math.ceil(q * total))
    acc = 0
    for v in sorted(counts):
        acc += counts[v]
        if acc >= rank:
            return v
    return max(counts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hlog")
    ap.add_argument("--tags", default="enter.corrected,reserve.corrected,flash_sale.corrected")
    ap.add_argument("--window", type=float, default=10.0)
    a = ap.parse_args()
    tags = a.tags.split(",")
    win = defaultdict(lambda: defaultdict(dict))
    for line in open(a.hlog):
        if not line.startswith("Tag="):
            continue
        tag, start, length, _mx, b64 = line.strip()[4:].split(",")
        if tag not in tags:
            continue
        w = int((float(start) + float(length) / 2) // a.window)
        h = win[w][tag]
        for v, c in decode(b64).items():
            h[v] = h.get(v, 0) + c
    print("window_s " + " ".join(f"{t}:n,p50ms,p95ms" for t in tags))
    for w in sorted(win):
        cells = []
        for t in tags:
            h = win[w].get(t, {})
            cells.append(f"{sum(h.values())},{quantile(h, .5)/1000:.1f},{quantile(h, .95)/1000:.1f}")
        print(f"{int(w*a.window)}-{int((w+1)*a.window)} " + " ".join(cells))


main()
