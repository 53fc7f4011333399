#!/usr/bin/env bash
# The main job, one command: provisions the local real stack with the same
# script as the tests (scripts/services.sh: Redis, PostgreSQL, tansu) where
# it can, otherwise falls back to the embedded backend and says so; then
# verify, the flash_sale and hold_and_pay load runs and the scaling run
# (1, 2, 4 instances), reported in
# reports/<run-id>/ with reports/latest pointing at it.
#   scripts/run.sh                 # the whole job (8.5-12 minutes measured)
#   scripts/run.sh --quick         # about 2 minutes
#   scripts/run.sh --baseline reports/<earlier-run>/report.json
#   scripts/run.sh --seat-comparison   # then the seat-hold strategies,
#       the seat-map cache and delayed expiry side by side under
#       hold_and_pay (scripts/bench-seat-lock.sh: 3 interleaved rounds,
#       about 15 minutes more), added to the job's report (report.html,
#       report.md and report.json of reports/<run-id>/)
# Other options: target/release/loadgen job --help
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release --locked -p ticket-server -p loadgen
bin="${CARGO_TARGET_DIR:-target}/release"

# restart-redis crashes a Redis that keeps its data (an append-only file,
# fsync every second): without one it is lose-redis by another name.
for arg in "$@"; do
    case "$arg" in --faults | --faults=*) export REDIS_APPENDONLY=yes ;; esac
done
if [ "${REDIS_APPENDONLY:-}" = yes ]; then
    echo "--faults: Redis (if started here) keeps an append-only file, fsync every second" >&2
fi

reason=
mkdir -p reports
# Starts what is not running; stops at exit (or at once, on failure) only
# what it started. Set-up says what it does as it goes (the first time it
# installs Redis, PostgreSQL and the broker, several minutes), and keeps a
# copy in reports/.services.log.
echo "setting up the real stack (Redis, PostgreSQL, Kafka broker) on 127.0.0.1" >&2
# The job measures the broker on an empty store: one grown by earlier
# runs' topics (330 MB) made the flash sale's P95 at 200/s 369 ms against
# 13 ms (scripts/services.sh reset-broker; a broker already up is kept).
if { scripts/services.sh reset-broker && services_start_own; } > >(tee reports/.services.log >&2) 2>&1; then
    eval "$(scripts/services.sh env)"
else
    reason="scripts/services.sh start failed: $(tail -n 1 reports/.services.log)"
    echo "real stack unavailable, using the embedded backend ($reason)" >&2
    services_stop_own
    unset REDIS_URL KAFKA_BROKERS POSTGRES_URL
fi

seat_comparison=
job_args=()
for arg in "$@"; do
    if [ "$arg" = --seat-comparison ]; then seat_comparison=1; else job_args+=("$arg"); fi
done

"$bin/loadgen" job --server-bin "$bin/ticket-server" ${reason:+--fallback-reason "$reason"} "${job_args[@]}"

# The comparison needs the real stack (its strategies exist only there),
# and is far longer than the job's own sections: a flag, not a default.
if [ -n "$seat_comparison" ]; then
    if [ -n "$reason" ]; then
        echo "seat comparison skipped: no real stack ($reason)" >&2
    else
        cargo build --release --locked -p verify
        run_dir=$(readlink -f reports/latest)
        TARGET="$bin" OUT="$run_dir/seat-comparison" scripts/bench-seat-lock.sh \
            >"$run_dir/seat-comparison.tsv"
        # Into the job's report: report.json, report.md and report.html
        # gain the comparison's section.
        "$bin/loadgen" report --from "$run_dir/report.json" \
            --seat-comparison "$run_dir/seat-comparison.tsv" --out "$run_dir" >/dev/null
        echo "seat comparison: in $run_dir/report.html (section \"Seat-hold strategies\")" >&2
    fi
fi
