#!/usr/bin/env bash
# The main job. For now: start the reference server on the embedded backend
# (Ctrl-C or SIGTERM to stop). Extra arguments go to ticket-server, e.g.
#   scripts/run.sh --admin-token T --listen 127.0.0.1:8080
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
exec cargo run --release --locked -p ticket-server -- "$@"
