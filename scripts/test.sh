#!/usr/bin/env bash
# The project's test command: formatting, lints, and every test of the
# workspace. This is what .ci/run calls and what the README tells you to run.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
