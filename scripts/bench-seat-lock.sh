#!/usr/bin/env bash
# The concert design choices side by side on the real stack. For each
# round (rounds interleave the configurations, so a slow spell of a shared
# machine spreads over all of them), each configuration, each hot-seat
# share and each offered rate: a fresh release server on a fresh namespace
# (hold TTL $HOLD_TTL, so abandoned holds lapse during the run), `loadgen
# run --scenario hold-and-pay` at that rate with `--hot-seat-share`, the
# server's own counters, then verify's check 6 against the same server
# (after the load, so the counters and the latencies are the load run's
# alone; its own concert: 200 users on 50 seats, 10 hot).
# Prints one TSV row per run; `loadgen report --seat-comparison` makes the table.
#
# Configurations: conditional, row-lock, redis-lock (`--seat-lock`),
# cache (conditional with a 2 s seat-map cache), delayed (conditional with
# `--expiry delayed`). Needs the services up (scripts/services.sh start)
# and release builds of ticket-server, loadgen and verify in $TARGET
# (default ~/.cache/ticketbench/target/release).
#
#   RATES="50 150" HOT="0 0.5" ROUNDS=3 DURATION=10 scripts/bench-seat-lock.sh > runs.tsv
set -euo pipefail
rates=${RATES:-"50 150"}
hots=${HOT:-"0 0.5"}
rounds=${ROUNDS:-3}
duration=${DURATION:-10}
read -r -a configs <<<"${CONFIGS:-conditional row-lock redis-lock cache delayed}"
hold_ttl=${HOLD_TTL:-2s}
hold_ttl_ms=${HOLD_TTL_MS:-2000}
tolerance_ms=${TOLERANCE_MS:-1500}
target=${TARGET:-$HOME/.cache/ticketbench/target/release}
port=${PORT:-18601}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
eval "$("$(dirname "$0")/services.sh" env)"

flags_of() {
    case $1 in
    conditional | row-lock | redis-lock) echo "--seat-lock $1" ;;
    cache) echo "--seat-lock conditional --seat-cache-ttl 2s" ;;
    delayed) echo "--seat-lock conditional --expiry delayed" ;;
    *)
        echo "unknown configuration $1" >&2
        exit 2
        ;;
    esac
}

printf 'round\tconfig\thot\trate\tachieved\thold_mean_ms\thold_p95_ms\thold_p99_ms\tflow_p95_ms\tflows_per_s\tholds_ok_per_s\thold_refused\tseat_taken\tlock_retries\tlock_timeouts\tcache_hits\tcheck6\tcheck6_worst_lapse_ms\tload1\n'
for round in $(seq "$rounds"); do
    for config in "${configs[@]}"; do
        for hot in $hots; do
            for rate in $rates; do
                read -r -a flags <<<"$(flags_of "$config")"
                ns="sl${round}_$(date +%s%N | tail -c 9)"
                "$target/ticket-server" --listen "127.0.0.1:$port" --backend real \
                    --redis-url "$REDIS_URL" --kafka-brokers "$KAFKA_BROKERS" \
                    --postgres-url "$POSTGRES_URL" --namespace "$ns" \
                    --admin-token T --token-secret S --hold-ttl "$hold_ttl" "${flags[@]}" \
                    --max-connections 0 --rate-limit-rps 0 --user-rate-limit-rps 0 \
                    >"$out/server-$ns.log" 2>&1 &
                pid=$!
                up=
                for _ in $(seq 300); do
                    curl -sf "http://127.0.0.1:$port/actuator/health" >/dev/null && up=1 && break
                    sleep 0.1
                done
                [ -n "$up" ] || {
                    echo "server $ns did not start: $(tail -n 3 "$out/server-$ns.log")" >&2
                    exit 1
                }
                dir="$out/$ns"
                timeout $((duration + 120)) "$target/loadgen" run --host "http://127.0.0.1:$port" \
                    --admin-token T --scenario hold-and-pay --rate "$rate" \
                    --hot-seat-share "$hot" --duration "$duration" --out "$dir" --quiet --no-goose-report \
                    >"$dir.log" 2>&1 || true
                # The load run's counters, before check 6 adds its own.
                metrics=$(curl -sf "http://127.0.0.1:$port/metrics" || true)
                verdict=PASS
                timeout 120 "$target/verify" --target "http://127.0.0.1:$port" \
                    --admin-token T --checks seatmap --hold-ttl-ms "$hold_ttl_ms" \
                    --expiry-tolerance-ms "$tolerance_ms" --out "$dir-verify" \
                    >"$dir-verify.log" 2>&1 || verdict=FAIL
                [ -f "$dir-verify/verdict.json" ] || verdict=ERROR
                kill "$pid"
                wait "$pid" 2>/dev/null || true
                count() { echo "$metrics" | awk -v m="$1" '$1 == m { print $2; f = 1 } END { if (!f) print 0 }'; }
                python3 - "$dir/summary.json" "$dir-verify/verdict.json" "$round" "$config" "$hot" "$rate" \
                    "$(count 'seat_hold_total{result="SEAT_TAKEN"}')" \
                    "$(count seat_lock_retries_total)" "$(count seat_lock_timeouts_total)" \
                    "$(count seat_cache_hits_total)" "$verdict" "$(cut -d' ' -f1 /proc/loadavg)" <<'PY'
import json, sys
path, verdict_path, rnd, config, hot, rate, taken, retries, timeouts, hits, verdict, load = sys.argv[1:]
worst = ""
try:
    v = json.load(open(verdict_path))
    seat = next(c for c in v["checks"] if c["check"] == "seatmap")
    worst = f'{seat["details"].get("worstLapseAfterTtlMs", 0):.0f}'
except (OSError, StopIteration, KeyError, ValueError):
    pass
try:
    s = json.load(open(path))
except OSError:
    print("\t".join([rnd, config, hot, rate, "FAILED"] + [""] * 11 + [verdict, worst, load]))
    sys.exit()
hold = s["transactions"]["hold"]
flow = s["transactions"]["hold_and_pay"]
secs = s["durationSecs"]
ms = lambda us: f"{us / 1000:.1f}"
print("\t".join([rnd, config, hot, rate, f"{s['achieved']:.2f}", ms(hold["corrected"]["mean"]),
                 ms(hold["corrected"]["p95"]), ms(hold["corrected"]["p99"]),
                 ms(flow["corrected"]["p95"]), f"{s['tps']:.1f}",
                 f"{(hold['count'] - hold['errors']) / secs:.1f}", str(hold["errors"]), taken, retries, timeouts, hits,
                 verdict, worst, load]))
PY
            done
        done
    done
done
