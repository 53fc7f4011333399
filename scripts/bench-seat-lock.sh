#!/usr/bin/env bash
# The seat-hold strategies side by side on the real stack: for each round,
# for each configuration in turn (conditional, row-lock, redis-lock,
# conditional with a 2 s seat-map cache), a fresh release server on a
# fresh namespace, `loadgen run --scenario hold-and-pay` at each offered
# rate, then the server's own counters (SEAT_TAKEN answers, lock retries,
# cache hits). Prints one TSV row per run. Needs the services up
# (scripts/services.sh start) and release builds of ticket-server and
# loadgen in $TARGET (default ~/.cache/ticketbench/target/release).
#
#   scripts/bench-seat-lock.sh "50 100" 15 2 > runs.tsv
set -euo pipefail
rates=${1:-"50 100"}
duration=${2:-15}
rounds=${3:-2}
target=${TARGET:-$HOME/.cache/ticketbench/target/release}
port=${PORT:-18601}
out=${OUT:-$(mktemp -d)}
eval "$("$(dirname "$0")/services.sh" env)"

configs=("conditional" "row-lock" "redis-lock" "conditional+cache")
printf 'round\tconfig\trate\tachieved\thold_mean_ms\thold_p95_ms\thold_p99_ms\tflow_p95_ms\tseat_taken\tlock_retries\tcache_hits\n'
for round in $(seq "$rounds"); do
    for config in "${configs[@]}"; do
        for rate in $rates; do
            flags=(--seat-lock "${config%+cache}")
            [ "$config" = "conditional+cache" ] && flags+=(--seat-cache-ttl 2s)
            ns="sl${round}_${rate}_$(date +%s%N | tail -c 7)"
            "$target/ticket-server" --listen "127.0.0.1:$port" --backend real \
                --redis-url "$REDIS_URL" --kafka-brokers "$KAFKA_BROKERS" \
                --postgres-url "$POSTGRES_URL" --namespace "$ns" \
                --admin-token T --token-secret S "${flags[@]}" \
                --max-connections 0 --rate-limit-rps 0 --user-rate-limit-rps 0 >"$out/server-$ns.log" 2>&1 &
            pid=$!
            for _ in $(seq 100); do
                curl -sf "http://127.0.0.1:$port/actuator/health" >/dev/null && break
                sleep 0.1
            done
            dir="$out/$ns"
            timeout $((duration + 120)) "$target/loadgen" run --host "http://127.0.0.1:$port" \
                --admin-token T --scenario hold-and-pay --rate "$rate" \
                --duration "$duration" --out "$dir" --quiet >"$dir.log" 2>&1 || true
            metrics=$(curl -sf "http://127.0.0.1:$port/metrics" || true)
            kill "$pid"
            wait "$pid" 2>/dev/null || true
            count() { echo "$metrics" | awk -v m="$1" '$1 == m { print $2; f = 1 } END { if (!f) print 0 }'; }
            python3 - "$dir/summary.json" "$round" "$config" "$rate" \
                "$(count 'seat_hold_total{result="SEAT_TAKEN"}')" \
                "$(count seat_lock_retries_total)" "$(count seat_cache_hits_total)" <<'PY'
import json, sys
path, rnd, config, rate, taken, retries, hits = sys.argv[1:]
try:
    s = json.load(open(path))
except OSError:
    print(f"{rnd}\t{config}\t{rate}\tFAILED\t\t\t\t\t\t\t")
    sys.exit()
hold = s["transactions"]["hold"]["corrected"]
flow = s["transactions"]["hold_and_pay"]["corrected"]
ms = lambda us: f"{us / 1000:.1f}"
print("\t".join([rnd, config, rate, f"{s['achieved']:.1f}", ms(hold["mean"]), ms(hold["p95"]),
                 ms(hold["p99"]), ms(flow["p95"]), taken, retries, hits]))
PY
        done
    done
done
