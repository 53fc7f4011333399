#!/bin/bash
# Section 4: does what the main job runs before its scaling run put one
# instance in the slow state? On one stack, just started with an empty
# broker store (run from the repository's root, the stack's variables
# exported: eval "$(scripts/services.sh env)"), in order: A1, a scaling run
# of one instance at the main job's 0.10 CPU; the main job without its
# scaling run (verify and the two load runs); C1 and C2 as A1; D1, the
# default (calibrated) scaling run. OUT (default /tmp/exp) gets the runs.
# Usage: same-stack.sh BIN_DIR (holding loadgen and ticket-server)
bin=$1; out=${OUT:-/tmp/exp}
lone() {
    "$bin/loadgen" scale --instances 1 --cpus-per-instance 0.10 --repeats 2 --no-verify \
        --server-bin "$bin/ticket-server" --out "$out/$1" --quiet > "$out/$1.log" 2>&1
}
mkdir -p "$out"
lone A1
"$bin/loadgen" job --no-scale --server-bin "$bin/ticket-server" --reports-dir "$out/jobB" > "$out/B.log" 2>&1
lone C1
lone C2
"$bin/loadgen" scale --no-verify --server-bin "$bin/ticket-server" --out "$out/D1" --quiet > "$out/D1.log" 2>&1
python3 reports/lone-instance/steps.py "$out"/{A1,C1,C2,D1}
python3 reports/lone-instance/costs.py "$out"/{A1,C1,C2,D1}
