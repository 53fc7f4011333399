#!/bin/bash
# One and four instances at 0.10 CPU, alternated: the instances' cgroups at the default
# cpu.shares (1024) or at 10240 (a watcher sets it within 50 ms of a group's creation).
cd "$(dirname "$0")/../../.."
export REDIS_PORT=36379 PG_PORT=35432 KAFKA_PORT=39092 TICKETBENCH_SERVICES_DIR=/tmp/mj-services
scripts/services.sh stop; scripts/services.sh reset-broker; scripts/services.sh start
eval "$(scripts/services.sh env)"
B=${B:?the directory holding loadgen and ticket-server}
for round in 1 2 3; do
  for mode in default high; do
    w=
    if [ $mode = high ]; then
      ( while :; do for d in /sys/fs/cgroup/cpu/ticketbench-*/; do [ -d "$d" ] || continue; [ "$(cat $d/cpu.shares 2>/dev/null)" = 10240 ] || echo 10240 > $d/cpu.shares 2>/dev/null; done; sleep 0.05; done ) & w=$!
    fi
    date
    $B/loadgen scale --instances 1,4 --cpus-per-instance 0.10 --repeats 1 --no-verify --server-bin $B/ticket-server --out /tmp/exp/sh-$mode-$round --quiet > /tmp/exp/sh-$mode-$round.log 2>&1
    [ -n "$w" ] && kill $w
  done
done
scripts/services.sh stop
date
