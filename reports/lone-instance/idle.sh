#!/bin/bash
# One real-backend instance (one tokio worker, no quota) left idle: its CPU
# and the broker's, in ms per second over 15 s, 4 s after it started.
# Usage: idle.sh SERVER_BIN, with the stack's variables exported.
bin=$1
out=$(mktemp -d)
TOKIO_WORKER_THREADS=1 $bin --listen 127.0.0.1:0 --backend real --admin-token x --namespace id$RANDOM$RANDOM --instance-id a > $out/srv 2>/dev/null & pid=$!
for i in $(seq 100); do grep -q listening $out/srv && break; sleep 0.1; done
sleep 4
bpid=$(pgrep -f 'tansu' | head -1)
c0=$(awk '{print $14+$15}' /proc/$pid/stat); b0=$(awk '{print $14+$15}' /proc/$bpid/stat)
sleep 15
c1=$(awk '{print $14+$15}' /proc/$pid/stat); b1=$(awk '{print $14+$15}' /proc/$bpid/stat)
echo "instance $(( (c1-c0)*10/15 )) ms/s, broker $(( (b1-b0)*10/15 )) ms/s"
kill $pid; wait $pid 2>/dev/null; rm -rf $out
