#!/bin/bash
# One real-backend instance under a 0.10-CPU quota (cgroup v1, 10 ms period,
# one tokio worker) offered RATE flash-sale purchases/s (DUR s recorded,
# default 20, after loadgen's 2 s warm-up; SETTLE s, default 3, between its
# start and the generator's), with the rest of the machine either as it is
# (idle) or carrying two busy loops held to HOG CPUs (default 0.8) by a
# quota of their own (busy). Prints the window's TPS and corrected P95, the
# instance's CPU per second from the generator's start to its end (set-up
# and warm-up included, so the same bias in both modes) divided by that
# TPS, and the share of its CFS periods in which it was throttled.
# QUOTA_US (default 1000, of the 10 ms period) sets the instance's quota;
# -1 leaves it unlimited (still in its cgroup, so the same accounting).
# Usage: contention.sh SERVER_BIN RATE idle|busy [HOG], with the stack's
# variables exported (eval "$(scripts/services.sh env)").
bin=$1; rate=$2; mode=$3; hog=${4:-0.8}
LG=${LOADGEN:-${CARGO_TARGET_DIR:-target}/release/loadgen}
cg=/sys/fs/cgroup/cpu
out=$(mktemp -d)
mkdir -p $cg/exp-inst $cg/exp-hog
echo 10000 > $cg/exp-inst/cpu.cfs_period_us; echo ${QUOTA_US:-1000} > $cg/exp-inst/cpu.cfs_quota_us
echo 10000 > $cg/exp-hog/cpu.cfs_period_us; echo $(python3 -c "print(int($hog*10000))") > $cg/exp-hog/cpu.cfs_quota_us
TOKIO_WORKER_THREADS=1 $bin --listen 127.0.0.1:0 --backend real --admin-token x --namespace cx$RANDOM$RANDOM --instance-id a \
  --rate-limit-rps 0 --user-rate-limit-rps 0 > $out/srv 2>/dev/null & pid=$!
echo $pid > $cg/exp-inst/cgroup.procs
for i in $(seq 100); do grep -q listening $out/srv && break; sleep 0.1; done
host=$(grep -o 'http://[0-9.:]*' $out/srv | head -1)
hogs=()
if [ "$mode" = busy ]; then
  for i in 1 2; do python3 -c 'while True: pass' & hogs+=($!); echo $! > $cg/exp-hog/cgroup.procs; done
fi
sleep ${SETTLE:-3}
stat() { awk '/nr_periods/{p=$2} /nr_throttled/{t=$2} END{print p, t}' $cg/exp-inst/cpu.stat; }
c0=$(awk '{print $14+$15}' /proc/$pid/stat); s0=$(stat); t0=$(date +%s%N)
$LG run --host $host --admin-token x --scenario flash-sale --rate $rate --duration ${DUR:-20} --warmup 2 --out $out/run --no-goose-report > $out/lg 2>&1
c1=$(awk '{print $14+$15}' /proc/$pid/stat); s1=$(stat); t1=$(date +%s%N)
[ ${#hogs[@]} -gt 0 ] && kill ${hogs[@]}
python3 - $mode $rate $c0 $c1 $t0 $t1 $out/run/summary.json $s0 $s1 <<'PY'
import json,sys
mode,rate,c0,c1,t0,t1,f,p0,th0,p1,th1=sys.argv[1:]
d=json.load(open(f)); wall=(int(t1)-int(t0))/1e9
cpu=(int(c1)-int(c0))*10/wall   # ms of CPU per s
tx=d['transactions']['flash_sale']['corrected']
p95=tx.get('p95') or tx.get('p95Ms')
thr=(int(th1)-int(th0))/max(1,int(p1)-int(p0))
print(f"{mode} rate {rate}: tps {d['tps']:.1f} P95 {p95/1000:.1f} ms cpu {cpu:.1f} ms/s = {cpu/d['tps']:.3f} ms/purchase, throttled {thr:.0%}")
PY
kill $pid; wait $pid 2>/dev/null; sleep 0.5; rm -rf $out
rmdir $cg/exp-inst $cg/exp-hog 2>/dev/null
