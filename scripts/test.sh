#!/usr/bin/env bash
# The project's test command: formatting, lints, and every test of the
# workspace, on both backends. It starts the real stack (Redis, PostgreSQL,
# the tansu Kafka broker) on 127.0.0.1 with scripts/services.sh, installing
# what is missing, and stops what it started, and only that. This is what
# .ci/run calls and what the README tells you to run.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

# Starts what is not running, a broker on an empty store (one grown by
# earlier runs made every broker call slower); stops at exit only what it
# started.
scripts/services.sh reset-broker
services_start_own
eval "$(scripts/services.sh env)"

cargo test --workspace --locked

# Suites that need tools beyond cargo (an API tester, fuzzers, a browser,
# manifest validation): each is one script here, run in name order, and each
# installs what it needs, says so, and bounds its own time.
for suite in scripts/test.d/*.sh; do
    [ -e "$suite" ] || continue
    echo "== $suite"
    bash "$suite"
done
