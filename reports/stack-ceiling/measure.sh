#!/usr/bin/env bash
# The stack's ceiling for reports/stack-ceiling.md: one unquota'd
# ticket-server instance on a stack of its own (ports as in
# reports/broker-storage/measure.sh, tansu with SQLite storage), open-model
# flash sales of STEP_SECS each at rising rates: doubling from START until a
# rate fails, then halving the bracket until it is within 5%. A rate passes
# when purchase P95 (corrected) < 50 ms, errors < 0.1% and at least 95% of
# the offered rate is achieved. For every step: the figures and each
# process's CPU (cores) over the step: server, Redis, PostgreSQL (all its
# processes), the broker and the generator, and the load average.
#
#   reports/stack-ceiling/measure.sh OUT [START] [STEP_SECS]
#
# Needs BIN (a directory with release builds of ticket-server and loadgen).
set -euo pipefail
out=$1 start=${2:-400} step=${3:-20}
here=$(cd "$(dirname "$0")" && pwd)
services=$here/../../scripts/services.sh
export REDIS_PORT=26379 PG_PORT=25432 KAFKA_PORT=29092
export TICKETBENCH_SERVICES_DIR=/tmp/bs-services TANSU_STORAGE=sqlite
dir=$TICKETBENCH_SERVICES_DIR
mkdir -p "$out"
"$services" start
eval "$("$services" env)"
broker=$(cat "$dir/kafka.pid")
redis=$(pgrep -f "redis-server 127.0.0.1:$REDIS_PORT" | head -1)

ns=ceil_$(date +%s)
"$BIN/ticket-server" --backend real --listen 127.0.0.1:18080 --admin-token T \
    --token-secret S --namespace "$ns" >"$out/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do curl -sf -o /dev/null http://127.0.0.1:18080/actuator/health && break; sleep 0.1; done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
postmaster=$(head -1 "$dir/pg/postmaster.pid")
pg_ticks() { local t=0 p; for p in $postmaster $(pgrep -P "$postmaster" || true); do t=$((t + $(ticks "$p"))); done; echo $t; }
hz=$(getconf CLK_TCK)

# run RATE: one step; prints "pass|fail" and appends a line to steps.txt
run() {
    local rate=$1 d=$out/rate-$1
    local s0 r0 p0 b0 t0
    s0=$(ticks $server) r0=$(ticks "$redis") p0=$(pg_ticks) b0=$(ticks "$broker") t0=$(date +%s.%N)
    "$BIN/loadgen" run --host http://127.0.0.1:18080 --admin-token T --scenario flash-sale \
        --rate "$rate" --duration "$step" --warmup 3 --out "$d" --no-goose-report -q \
        >"$d.txt" 2>&1 &
    local gen=$! g=0
    while kill -0 $gen 2>/dev/null; do g=$(ticks $gen); sleep 1; done
    wait $gen || true
    local s1 r1 p1 b1 t1
    s1=$(ticks $server) r1=$(ticks "$redis") p1=$(pg_ticks) b1=$(ticks "$broker") t1=$(date +%s.%N)
    python3 - "$d/summary.json" "$rate" "$t0" "$t1" "$hz" $((s1 - s0)) $((r1 - r0)) $((p1 - p0)) $((b1 - b0)) "$g" \
        "$(cut -d' ' -f1 /proc/loadavg)" >>"$out/steps.txt" <<'EOF'
import json, sys
path, rate, t0, t1, hz = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
server, redis, pg, broker, gen = (int(x) / hz / (t1 - t0) for x in sys.argv[6:11])
load = sys.argv[11]
try:
    s = json.load(open(path))
    t = s["transactions"]["flash_sale"]
    n, err, p95 = t["count"], t["errors"], t["corrected"]["p95"] / 1000
    enter = s["transactions"]["enter"]["corrected"]
    achieved = s["achieved"]
except Exception as e:  # a failed run is a failed step
    print(f"{rate:.0f} fail (no summary: {e})")
    sys.exit(0)
ok = p95 < 50 and err < 0.001 * max(n, 1) and achieved >= 0.95
print(f"{rate:.0f} {'pass' if ok else 'fail'} purchases={n} errors={err} achieved={achieved:.3f} "
      f"p95_ms={p95:.1f} enter_p50_ms={enter['p50']/1000:.1f} enter_p95_ms={enter['p95']/1000:.1f} "
      f"cpu_server={server:.2f} cpu_redis={redis:.2f} cpu_pg={pg:.2f} cpu_broker={broker:.2f} "
      f"cpu_generator={gen:.2f} load1={load}")
EOF
    tail -1 "$out/steps.txt" | awk '{print $2}'
}

: >"$out/steps.txt"
echo "start $(date -Is) load $(cat /proc/loadavg) namespace $ns" >"$out/meta.txt"
low=0 high=0 rate=$start
while [ "$high" = 0 ] && [ "$rate" -le 12800 ]; do
    if [ "$(run $rate)" = pass ]; then low=$rate rate=$((rate * 2)); else high=$rate; fi
done
while [ "$high" != 0 ] && [ $((high - low)) -gt $((low / 20)) ]; do
    rate=$(((low + high) / 2))
    if [ "$(run $rate)" = pass ]; then low=$rate; else high=$rate; fi
done
echo "end $(date -Is) load $(cat /proc/loadavg)" >>"$out/meta.txt"
echo "ceiling: passes $low/s, fails ${high}/s" | tee -a "$out/meta.txt"
