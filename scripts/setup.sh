#!/usr/bin/env bash
# Installs what the project needs beyond cargo, idempotently. Called by
# scripts/test.sh and scripts/run.sh; safe to run by hand.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v python3 >/dev/null 2>&1 ||
    apt_install "the black-box client of the tests and the bench scripts' reports" python3
