#!/bin/bash
# Section 4's test of its hypothesis: a scaling run of one and of four
# instances at 0.10 CPU, first as it is, then with two busy loops at the
# idle scheduling class (chrt -i 0) beside it for the whole run, so that
# no core ever halts. Run from the repository's root, the stack's
# variables exported; OUT (default /tmp/exp) gets the runs.
# Usage: idle-spinners.sh BIN_DIR (holding loadgen and ticket-server)
bin=$1; out=${OUT:-/tmp/exp}
for mode in none idle; do
    pids=()
    if [ "$mode" = idle ]; then
        for _ in 1 2; do chrt -i 0 python3 -c 'while True: pass' & pids+=($!); done
    fi
    "$bin/loadgen" scale --instances 1,4 --cpus-per-instance 0.10 --repeats 1 --no-verify \
        --server-bin "$bin/ticket-server" --out "$out/bal-$mode-1" --quiet > "$out/bal-$mode-1.log" 2>&1
    [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}"
done
python3 reports/lone-instance/steps.py "$out"/bal-{none,idle}-1
python3 reports/lone-instance/costs.py "$out"/bal-{none,idle}-1
