#!/usr/bin/env bash
# (kept in reports/main-job-consecutive/side-by-side; needs REDIS_URL, POSTGRES_URL,
# KAFKA_BROKERS of a running stack: eval "$(scripts/services.sh env)")
# One unconstrained instance (real stack), fresh each run: its CPU per purchase under
# the server built HTTP/1.1-only (ts-http1) or with protocol detection (ts-auto), both in $SERVER_DIR.
set -euo pipefail
T=$HOME/.cache/ticketbench/target/release
SERVER=${SERVER:-$T/ticket-server}
RATE=${RATE:-150}; ROUNDS=${ROUNDS:-3}; SECS=${SECS:-10}
tck=$(getconf CLK_TCK)
cpu() { awk -v t=$tck '{print ($14+$15)/t}' /proc/$1/stat; }
printf 'round\tclient\tinst_cpu_s\tpurchases\tms_per_purchase\tp95_ms\n'
for r in $(seq 1 $ROUNDS); do
  for client in http1 auto; do
    ns="ab${r}${client}_$$"
    ${SERVER_DIR:-/tmp}/ts-$client --backend real --listen 127.0.0.1:38200 --namespace $ns --admin-token T \
       --rate-limit-rps 0 --user-rate-limit-rps 0 > /tmp/cpuvar/ab-server.log 2>&1 &
    pid=$!
    for i in $(seq 100); do curl -sf 127.0.0.1:38200/actuator/health >/dev/null && break; sleep 0.1; done
    sleep 2
    c0=$(cpu $pid)
    extra=()
    $T/loadgen run --host http://127.0.0.1:38200 --admin-token T --rate $RATE --duration $SECS \
       --no-goose-report --quiet --out /tmp/cpuvar/ab-$r-$client "${extra[@]}" >/dev/null 2>&1 || true
    c1=$(cpu $pid)
    kill $pid; wait $pid 2>/dev/null || true
    python3 - /tmp/cpuvar/ab-$r-$client/summary.json $r $client $c0 $c1 <<'PY'
import json,sys
s=json.load(open(sys.argv[1])); r,cl=sys.argv[2],sys.argv[3]
c=float(sys.argv[5])-float(sys.argv[4])
n=s['transactions']['flash_sale']['count']
p95=s['transactions']['flash_sale']['corrected']['p95']/1000
print(f"{r}\t{cl}\t{c:.2f}\t{n}\t{c/n*1000:.2f}\t{p95:.1f}")
PY
  done
done
