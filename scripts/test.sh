#!/usr/bin/env bash
# The project's test command: formatting, lints, and every test of the
# workspace, on both backends. It starts the real stack (Redis, PostgreSQL,
# the tansu Kafka broker) on 127.0.0.1 with scripts/services.sh, installing
# what is missing, and stops what it started. This is what .ci/run calls and
# what the README tells you to run.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

started=
if [ "$(scripts/services.sh status | grep -c ' up ')" -lt 3 ]; then
    started=yes
fi
scripts/services.sh start
[ -n "$started" ] && trap 'scripts/services.sh stop' EXIT
eval "$(scripts/services.sh env)"

cargo test --workspace --locked
