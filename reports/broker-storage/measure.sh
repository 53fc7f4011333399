#!/usr/bin/env bash
# One engine of reports/broker-storage.md: a stack of its own on other ports
# (Redis 26379, PostgreSQL 25432, tansu 29092, data in /tmp/bs-services),
# the broker started empty with TANSU_STORAGE=ENGINE, one ticket-server
# instance, a 10-minute open-model flash sale at 300 purchases/s; every
# 10 s the broker's CPU and RSS, PostgreSQL's CPU (all its processes) and
# the load average; then the broker restarted and its topics listed again.
#
#   reports/broker-storage/measure.sh ENGINE OUT [DURATION_SECS]
#
# Needs TANSU_BIN (a tansu built with dynostore,libsql,postgres) and BIN
# (a directory with release builds of ticket-server and loadgen).
set -euo pipefail
engine=$1 out=$2 duration=${3:-600}
here=$(cd "$(dirname "$0")" && pwd)
services=$here/../../scripts/services.sh
export REDIS_PORT=26379 PG_PORT=25432 KAFKA_PORT=29092
export TICKETBENCH_SERVICES_DIR=/tmp/bs-services TANSU_STORAGE=$engine
dir=$TICKETBENCH_SERVICES_DIR
mkdir -p "$out"

"$services" start
"$services" stop-one kafka
rm -rf "$dir/kafka"
psql_() { runuser -u postgres -- psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qtAc "$1"; }
[ "$engine" = postgres ] && psql_ "DROP DATABASE IF EXISTS tansu"
"$services" start-one kafka
eval "$("$services" env)"
broker=$(cat "$dir/kafka.pid")

ns=bs_${engine}_$(date +%s)
"$BIN/ticket-server" --backend real --listen 127.0.0.1:18080 --admin-token T \
    --token-secret S --namespace "$ns" >"$out/server.log" 2>&1 &
server=$!
trap 'kill $server $sampler 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do curl -sf -o /dev/null http://127.0.0.1:18080/actuator/health && break; sleep 0.1; done

# ticks (utime+stime) of a pid, and of all postgres processes
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
pg_ticks() { local t=0 p; for p in $(pgrep -x postgres); do t=$((t + $(ticks "$p" 2>/dev/null || echo 0))); done; echo $t; }
(
    echo "t broker_ticks broker_rss_kb server_ticks pg_ticks load1"
    while true; do
        echo "$SECONDS $(ticks "$broker") $(awk '/VmRSS/ {print $2}' "/proc/$broker/status") $(ticks "$server") $(pg_ticks) $(cut -d' ' -f1 /proc/loadavg)"
        sleep 10
    done
) >"$out/samples.txt" &
sampler=$!

echo "start $(date -Is) load $(cat /proc/loadavg)" >"$out/meta.txt"
"$BIN/loadgen" run --host http://127.0.0.1:18080 --admin-token T --scenario flash-sale \
    --rate 300 --duration "$duration" --warmup 5 --out "$out/loadgen" --no-goose-report -q \
    >"$out/loadgen.txt" 2>&1
echo "end $(date -Is) load $(cat /proc/loadavg)" >>"$out/meta.txt"
kill $sampler
python3 "$here/windows.py" "$out/loadgen/latency.hlog" >"$out/windows.txt"

# Survives a restart? The topics and records before and after.
topics() {
    "$TANSU_BIN" topic list --broker "tcp://127.0.0.1:$KAFKA_PORT" |
        python3 -c "import json, sys; print(sum(1 for t in json.load(sys.stdin) if '$ns' in json.dumps(t)))"
}
before=$(topics)
kill $server; wait $server 2>/dev/null || true
"$services" stop-one kafka
"$services" start-one kafka
after=$(topics)
echo "topics of $ns before restart: $before, after: $after" >>"$out/meta.txt"
du -sh "$dir/kafka" >>"$out/meta.txt" 2>/dev/null || true
