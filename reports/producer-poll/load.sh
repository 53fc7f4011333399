#!/bin/bash
# One real-backend instance (no quota) under a fixed open-model rate of
# flash-sale purchases (20 s recorded after 2 s of warm-up): its CPU (user+system
# ticks of /proc/PID/stat) from the generator's start to its end, per purchase
# made in the recorded window and per second of wall time.
# Usage: load.sh SERVER_BIN [RATE], with the stack's variables exported.
bin=$1; rate=${2:-150}
LG=${LOADGEN:-${CARGO_TARGET_DIR:-target}/release/loadgen}
out=$(mktemp -d)
$bin --listen 127.0.0.1:0 --backend real --admin-token x --namespace ld$RANDOM$RANDOM --instance-id a \
  --rate-limit-rps 0 --user-rate-limit-rps 0 > $out/srv 2>/dev/null & pid=$!
for i in $(seq 100); do grep -q listening $out/srv && break; sleep 0.1; done
host=$(grep -o 'http://[0-9.:]*' $out/srv | head -1)
sleep 3
# The process's user+system time (threads that exited included), in
# ticks of 10 ms, as ns; printed with %.0f: printf "%d" clamps at 2^31.
cpu() { awk '{printf "%.0f", ($14 + $15) * 1e7}' /proc/$pid/stat; }
c0=$(cpu); t0=$(date +%s%N)
$LG run --host $host --admin-token x --scenario flash-sale --rate $rate --duration 20 --warmup 2 --out $out/run --no-goose-report > $out/lg 2>&1
c1=$(cpu); t1=$(date +%s%N)
python3 - "$(basename $bin)" $rate $c0 $c1 $t0 $t1 $out/run/summary.json <<'PY'
import json,sys
name,rate,c0,c1,t0,t1,f=sys.argv[1:]
d=json.load(open(f)); ms=(int(c1)-int(c0))/1e6; wall=(int(t1)-int(t0))/1e9
made=d['tps']*d['durationSecs']
print(f"{name} rate {rate}: achieved {d['tps']:.1f}/s, CPU {ms/wall:.1f} ms/s over {wall:.1f} s, {ms/(made+2*d['tps']):.3f} ms per purchase (warm-up included)")
PY
kill $pid; wait $pid 2>/dev/null; rm -rf $out
