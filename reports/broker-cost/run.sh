#!/usr/bin/env bash
# The broker's CPU per purchase beside one unconstrained instance at a
# fixed open rate, for producer batching (linger.ms) and partition counts,
# interleaved over rounds; with PERF=1 also a CPU profile of the broker.
#
#   scripts/services.sh start            # or a private stack, see below
#   cargo build --release -p ticket-server -p loadgen
#   reports/broker-cost/run.sh [ROUNDS] [CONFIGS]
#
# CONFIGS: "PARTITIONS:LINGER_MS ..." (default "4:1 4:5 4:20 1:1 1:5").
# RATE (purchases/s, default 90), SECS (default 15), OUT (default
# /tmp/broker-cost). SERVERS: ticket-server binaries to compare side by
# side, each with each config (default the release build's). Uses scripts/services.sh's environment (REDIS_PORT,
# PG_PORT, KAFKA_PORT and TICKETBENCH_SERVICES_DIR pick a private stack).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-2}
CONFIGS=${2:-"4:1 4:5 4:20 1:1 1:5"}
RATE=${RATE:-90}
SECS=${SECS:-15}
OUT=${OUT:-/tmp/broker-cost}
BIN=${CARGO_TARGET_DIR:-target}/release
SERVERS=${SERVERS:-$BIN/ticket-server}
eval "$(scripts/services.sh env)"
port=${KAFKA_BROKERS##*:}
broker=$(pgrep -f "tansu broker.*127.0.0.1:$port" | head -1)
[ -n "$broker" ] || { echo "run.sh: no tansu broker on port $port" >&2; exit 1; }
mkdir -p "$OUT"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
echo "round server partitions linger_ms tps broker_cpu broker_ms_per_purchase instance_cpu purchase_p50_ms purchase_p95_ms enter_p95_ms reserve_p95_ms"
for round in $(seq "$ROUNDS"); do
  for cfg in $CONFIGS; do
   for server_bin in $SERVERS; do
    parts=${cfg%%:*} linger=${cfg##*:} label=$(basename "$server_bin")
    name="${label//-/_}_p${parts}_l${linger}_r${round}"
    listen=127.0.0.1:$((42000 + RANDOM % 1000))
    KAFKA_PARTITIONS=$parts KAFKA_LINGER_MS=$linger "$server_bin" --backend real \
      --listen "$listen" --admin-token T --admin-token-file "$OUT/admin-token" \
      --namespace "bc_${RANDOM}_$round" --rate-limit-rps 0 --user-rate-limit-rps 0 \
      >"$OUT/$name.server.log" 2>&1 &
    server=$!
    for _ in $(seq 150); do curl -sf "http://$listen/health" >/dev/null && break; sleep 0.2; done
    b0=$(cpu_ticks "$broker") s0=$(cpu_ticks "$server") t0=$(date +%s.%N)
    if [ "${PERF:-0}" = 1 ] && [ "$round" = 1 ]; then
      (sleep 3; perf record -F 499 -g -p "$broker" -o "$OUT/$name.perf.data" -- sleep $((SECS - 5)) >/dev/null 2>&1) &
    fi
    "$BIN/loadgen" run --host "http://$listen" --admin-token T --scenario flash-sale \
      --rate "$RATE" --duration "$SECS" --stock 1000000 --out "$OUT/$name" \
      --no-goose-report --quiet >"$OUT/$name.loadgen.log" 2>&1
    b1=$(cpu_ticks "$broker") s1=$(cpu_ticks "$server") t1=$(date +%s.%N)
    kill "$server"; wait "$server" 2>/dev/null || true
    python3 - "$round" "$label" "$parts" "$linger" "$b0" "$b1" "$s0" "$s1" "$t0" "$t1" "$OUT/$name" <<'PY'
import glob, json, sys
rnd, label, parts, linger, b0, b1, s0, s1, t0, t1, out = sys.argv[1:]
secs = float(t1) - float(t0)
s = json.load(open(glob.glob(out + "/**/summary.json", recursive=True)[0]))
t = s["transactions"]
p = lambda tx, q: t[tx]["corrected"][q] / 1000
broker = (int(b1) - int(b0)) / 100 / secs
inst = (int(s1) - int(s0)) / 100 / secs
print(rnd, label, parts, linger, round(s["tps"], 1), round(broker, 3),
      round(broker * 1000 / s["tps"], 2), round(inst, 3),
      p("flash_sale", "p50"), p("flash_sale", "p95"), p("enter", "p95"), p("reserve", "p95"))
PY
   done
  done
done
