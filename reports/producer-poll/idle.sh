#!/bin/bash
# Idle CPU of one real-backend instance: ms of CPU per second over 20 s,
# after 8 s of settling, from every thread's schedstat (ns on CPU).
# Usage: idle.sh SERVER_BIN, with the stack's variables exported
# (eval "$(scripts/services.sh env)").
bin=$1
out=$(mktemp)
$bin --listen 127.0.0.1:0 --backend real --admin-token x --namespace idle$RANDOM$RANDOM --instance-id a > $out 2>/dev/null & pid=$!
for i in $(seq 100); do grep -q listening $out && break; sleep 0.1; done
sleep 8
snap() { for t in /proc/$pid/task/*; do echo "$(basename $t) $(cat $t/comm | tr ' ' _) $(cut -d' ' -f1 $t/schedstat)"; done | sort; }
snap > $out.0; sleep 20; snap > $out.1
join $out.0 $out.1 | awk -v b=$(basename $bin) '{d=($5-$3)/1e6/20; tot+=d; if ($2 ~ /poll/) p+=d} END {printf "%s total %.2f ms/s, polling threads %.2f ms/s\n", b, tot, p}'
kill $pid; wait $pid 2>/dev/null; rm -f $out $out.0 $out.1
