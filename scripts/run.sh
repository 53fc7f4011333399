#!/usr/bin/env bash
# The main job, one command: provisions the local real stack with the same
# script as the tests (scripts/services.sh: Redis, PostgreSQL, tansu) where
# it can, otherwise falls back to the embedded backend and says so; then
# verify, the flash_sale and hold_and_pay load runs and the scaling run
# (1, 2, 4 instances), reported in
# reports/<run-id>/ with reports/latest pointing at it.
#   scripts/run.sh                 # the whole job (about 8.5 minutes)
#   scripts/run.sh --quick         # about 2 minutes
#   scripts/run.sh --baseline reports/<earlier-run>/report.json
# Other options: target/release/loadgen job --help
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release --locked -p ticket-server -p loadgen
bin="${CARGO_TARGET_DIR:-target}/release"

reason=
mkdir -p reports
# Starts what is not running; stops at exit (or at once, on failure) only
# what it started. Set-up says what it does as it goes (the first time it
# installs Redis, PostgreSQL and the broker, several minutes), and keeps a
# copy in reports/.services.log.
echo "setting up the real stack (Redis, PostgreSQL, Kafka broker) on 127.0.0.1" >&2
if services_start_own > >(tee reports/.services.log >&2) 2>&1; then
    eval "$(scripts/services.sh env)"
else
    reason="scripts/services.sh start failed: $(tail -n 1 reports/.services.log)"
    echo "real stack unavailable, using the embedded backend ($reason)" >&2
    services_stop_own
    unset REDIS_URL KAFKA_BROKERS POSTGRES_URL
fi

"$bin/loadgen" job --server-bin "$bin/ticket-server" ${reason:+--fallback-reason "$reason"} "$@"
