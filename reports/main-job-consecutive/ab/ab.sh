#!/usr/bin/env bash
# A/B: ticket.reserved keyed by event id (ts-ev) vs by reservation id
# (ts-res): broker, instances' and PostgreSQL's CPU per purchase at a fixed
# offered rate, two unquota'd instances, alternating rounds.
#   VARIANTS="ev res" ROUNDS=4 RATE=200 DUR=20 ab.sh
set -euo pipefail
# AB: a directory with release builds named ts-<variant> and loadgen.
AB=${AB:-/tmp/ab}
cd "$(dirname "$0")/../../.."
export REDIS_PORT=27379 PG_PORT=27432 KAFKA_PORT=27092 TICKETBENCH_SERVICES_DIR=/tmp/ab-services
scripts/services.sh start >/dev/null 2>&1
eval "$(scripts/services.sh env)"
broker=$(cat /tmp/ab-services/kafka.pid)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
pg_ticks() { local t=0 p; for p in $(pgrep -x postgres); do t=$((t + $(ticks "$p" 2>/dev/null || echo 0))); done; echo $t; }
RATE=${RATE:-200} DUR=${DUR:-20} ROUNDS=${ROUNDS:-3}
echo "round variant rate achieved p95ms broker_cpu inst_cpu pg_cpu broker_ms_per inst_ms_per load1"
for r in $(seq 1 "$ROUNDS"); do
  set -- ${VARIANTS:-ev res}; if [ $((r % 2)) = 1 ]; then order="$1 $2"; else order="$2 $1"; fi
  for v in $order; do
    ns=ab_${v}_${r}_$(date +%s)
    pids=()
    for i in 0 1; do
      "$AB"/ts-$v --backend real --listen 127.0.0.1:$((27180 + i)) --admin-token T --token-secret S \
        --namespace "$ns" --rate-limit-rps 0 --user-rate-limit-rps 0 >"$AB"/srv-$v-$r-$i.log 2>&1 &
      pids+=($!)
    done
    for i in 0 1; do for _ in $(seq 1 300); do curl -sf -o /dev/null http://127.0.0.1:$((27180 + i))/actuator/health && break; sleep 0.1; done; done
    out="$AB"/out-$v-$r; rm -rf "$out"
    b0=$(ticks $broker); s0=$(( $(ticks ${pids[0]}) + $(ticks ${pids[1]}) )); p0=$(pg_ticks); t0=$(date +%s.%N)
    "$AB"/loadgen run --host http://127.0.0.1:27180 --host http://127.0.0.1:27181 --admin-token T \
      --scenario flash-sale --rate "$RATE" --duration "$DUR" --warmup 3 --out "$out" -q >"$AB"/lg-$v-$r.txt 2>&1 || true
    b1=$(ticks $broker); s1=$(( $(ticks ${pids[0]}) + $(ticks ${pids[1]}) )); p1=$(pg_ticks); t1=$(date +%s.%N)
    kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
    python3 - "$out/summary.json" "$v" "$r" "$RATE" "$b0" "$b1" "$s0" "$s1" "$p0" "$p1" "$t0" "$t1" "$(cut -d' ' -f1 /proc/loadavg)" <<'PY'
import json, sys
f, v, r, rate, b0, b1, s0, s1, p0, p1, t0, t1, load = sys.argv[1:]
hz = 100.0
secs = float(t1) - float(t0)
try:
    s = json.load(open(f))
except Exception:
    print(r, v, rate, "no-summary"); sys.exit()
tps = s.get("tps") or s.get("achievedTps") or 0
p95 = None
def find(o, k):
    if isinstance(o, dict):
        for kk, vv in o.items():
            if kk == k: return vv
            x = find(vv, k)
            if x is not None: return x
    if isinstance(o, list):
        for vv in o:
            x = find(vv, k)
            if x is not None: return x
tps = s.get("tps") or 0
p95 = s["transactions"]["flash_sale"]["corrected"]["p95"] / 1000.0
purchases = tps * secs
b = (int(b1) - int(b0)) / hz / secs; i = (int(s1) - int(s0)) / hz / secs; p = (int(p1) - int(p0)) / hz / secs
print(r, v, rate, round(tps, 1), p95, round(b, 3), round(i, 3), round(p, 3), round(b / tps * 1000, 2) if tps else "-", round(i / tps * 1000, 2) if tps else "-", load)
PY
  done
done
scripts/services.sh stop >/dev/null 2>&1
