#!/usr/bin/env bash
# One instance of the reference server on the real stack (Redis, Kafka,
# PostgreSQL from scripts/services.sh), reserves at a fixed offered rate
# (benches' reserve-rate, an open model), and where the time goes: Redis
# commands per reserve (INFO commandstats), the Kafka send and the lag to
# CONFIRMED (the server's own histograms). Writes reports/real-stack.md.
# Starts the components of the stack that are not running, and stops those
# (and the server) again at exit.
#   scripts/bench-real.sh [RATE] [SECONDS]
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "$0")/.."
RATE=${1:-5000}
SECONDS_=${2:-10}
PORT=18480

# Starts what is not running; stops at exit only what it started.
services_start_own
eval "$(scripts/services.sh env)"
cargo build --release --locked -p ticket-server --bin ticket-server -p ticketbench-benches --bin reserve-rate
TARGET=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
on_exit "rm -rf '$work'"
ns="bench_$(date +%s)"
RUST_LOG=warn "$TARGET/ticket-server" --backend real --namespace "$ns" --kafka-partitions 4 \
    --listen 127.0.0.1:$PORT --admin-token bench --token-secret bench --rate-limit-rps 0 --user-rate-limit-rps 0 >"$work/server.log" 2>&1 &
server=$!
kill_on_exit "$server"
# The port opens before the backend is up: wait for health.
WAIT_SECS=60 wait_http ticket-server "http://127.0.0.1:$PORT/actuator/health" "$work/server.log"

redis_port=${REDIS_URL##*:}
"$TARGET/reserve-rate" --target "http://127.0.0.1:$PORT" --admin-token bench \
    --rate "$RATE" --duration "$SECONDS_" --out "$work/result.json" \
    --on-ready "redis-cli -p $redis_port info commandstats >$work/redis-before.txt" >/dev/null
redis-cli -p "$redis_port" info commandstats >"$work/redis-after.txt"
curl -sf "http://127.0.0.1:$PORT/metrics" >"$work/metrics.txt"

python3 - "$work" "$RATE" "$SECONDS_" "$ns" <<'PY' >reports/real-stack.md
import json, re, subprocess, sys
work, rate, secs, ns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
r = json.load(open(f"{work}/result.json"))

def calls(path):
    out = {}
    for line in open(path):
        m = re.match(r"cmdstat_(\w+):calls=(\d+)", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out
before, after = calls(f"{work}/redis-before.txt"), calls(f"{work}/redis-after.txt")
delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
ok = max(r["ok"], 1)

def hist(name):
    text = open(f"{work}/metrics.txt").read()
    buckets = [(float(le), int(float(v))) for le, v in re.findall(rf'{name}_bucket{{le="([^"]+)"}} (\S+)', text) if le != "+Inf"]
    count = int(float(re.search(rf"{name}_count (\S+)", text).group(1)))
    total = float(re.search(rf"{name}_sum (\S+)", text).group(1))
    p95 = next((le for le, c in buckets if c >= 0.95 * count), float("inf"))
    return count, (total / count * 1000 if count else 0), p95 * 1000
ks_n, ks_mean, ks_p95 = hist("kafka_send_seconds")
cl_n, cl_mean, cl_p95 = hist("reservation_confirm_lag_seconds")
route = re.search(r'http_request_duration_seconds_count{route="POST /api/v1/tickets/reserve"} (\S+)', open(f"{work}/metrics.txt").read())

cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
kernel = subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()
lc, lr, cf = r["latencyCorrected"], r["latencyRaw"], r["confirmAfterResponse"]
# The target as stated: at least 5,000 reserves/s achieved, P95 (corrected)
# under 20 ms, nothing failed. No allowance below 5,000.
rate_met, p95_met, failed_met = r["achievedTps"] >= 5000, lc["p95Ms"] < 20, r["failed"] == 0
met = rate_met and p95_met and failed_met
short = [w for w, ok in (("the rate is below 5,000/s", rate_met), ("P95 is not under 20 ms", p95_met),
                         (f"{r['failed']} reserves failed", failed_met)) if not ok]
print(f"""# Real stack: one instance, reserves at a fixed offered rate

Measured with `scripts/bench-real.sh {rate} {secs}` on {cpu}, {cores} cores, kernel {kernel}.
Everything shares those {cores} cores: the server (release build), Redis, PostgreSQL,
the tansu Kafka broker (memory storage) and the load driver. Namespace `{ns}`,
4 Kafka partitions. The driver (`benches/src/bin/reserve_rate.rs`) first enters
{r["offered"]} users (set-up, not measured: {r["offered"] / r["enterSeconds"]:.0f} enters/s through Kafka),
then sends one reserve every 1/{rate} s whatever the answers (an open model).

## Result

| | value |
|---|---:|
| offered | {rate} reserves/s for {secs} s ({r["offered"]} requests) |
| achieved (ok / {r["elapsedSeconds"]:.3f} s elapsed) | **{r["achievedTps"]:.0f} reserves/s** ({r["ok"]} ok, {r["failed"]} failed, {r["notSent"]} not sent) |
| latency P50 / P95 / P99, corrected (from the scheduled time) | {lc["p50Ms"]:.1f} / **{lc["p95Ms"]:.1f}** / {lc["p99Ms"]:.1f} ms (max {lc["maxMs"]:.1f}) |
| latency P50 / P95 / P99, raw (from the actual send) | {lr["p50Ms"]:.1f} / {lr["p95Ms"]:.1f} / {lr["p99Ms"]:.1f} ms (max {lr["maxMs"]:.1f}) |

Target: at least 5,000 reserves/s per instance with P95 under 20 ms.
Measured: {r["achievedTps"]:.1f} reserves/s, P95 {lc["p95Ms"]:.1f} ms (corrected), {r["failed"]} failed:
**{"met" if met else "not met"}**{"" if met else " (" + "; ".join(short) + ")"}.
Achieved is the successful reserves over the time from the first scheduled
send to the last answer (and the last CONFIRMED read of the every-50th
follow-up), so it is always a little below the offered rate: offered
exactly 5,000/s, a run cannot reach 5,000/s. A run meant to show the
target met must offer more (e.g. `scripts/bench-real.sh 5200 10`) and
still meet the P95.

## Where the time goes

| step | measured |
|---|---|
| Redis round trips on the reserve path | **{(delta.get("evalsha", 0) + delta.get("set", 0)) / ok:.2f} per reserve**: EVALSHA {delta.get("evalsha", 0) / ok:.2f} (the decision) + SET {delta.get("set", 0) / ok:.2f} (the id index) |
| Redis commands executed per reserve (INFO commandstats, during the load) | {sum(delta.values()) / ok:.2f}, mostly inside the one script (no extra round trips): {", ".join(f"{k.upper()} {v / ok:.2f}" for k, v in sorted(delta.items(), key=lambda kv: -kv[1])[:8] if v)} |
| Kafka send (`ticket.reserved`, acks=all, idempotent) on the reserve path | {ks_n} sends, mean {ks_mean:.2f} ms, P95 ≤ {ks_p95:.2f} ms (histogram bucket) |
| accepted in Redis → committed in PostgreSQL (consumer lag to CONFIRMED) | {cl_n} rows, mean {cl_mean:.1f} ms, P95 ≤ {cl_p95:.1f} ms |
| reserve answered → `GET /tickets/{{id}}` reads CONFIRMED (every 50th, client side) | P50 {cf["p50Ms"]:.1f} ms, P95 {cf["p95Ms"]:.1f} ms, max {cf["maxMs"]:.1f} ms |

A reserve is one Lua script (the decision, the record, the pending mark)
plus one SET (the id index), then the Kafka send, which dominates the request's
own latency; persistence is off the request path (batched consumer, one
transaction per batch with its offsets).
""")
PY
cat reports/real-stack.md
