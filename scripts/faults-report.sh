#!/usr/bin/env bash
# The committed faults report (reports/faults/): scripts/faults.sh once per
# fault kind with a local action, each on a fresh private stack, then one
# table of every fault's row and each run's checks. Keeps each run's
# verdict.json (the histories stay out of git: they are rewritten by a run).
#
#   scripts/faults-report.sh [KIND@START+DURATION ...]
#
# About 2 minutes a kind once built. Exit status 0 even when a run fails:
# the report says what failed.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "$0")/.."

DEST=reports/faults
all=(kill-instance@2s+2s pause-instance@2s+4s restart-redis@2s+1s lose-redis@2s+1s
    failover-redis@2s+4s restart-postgres@2s+2s restart-broker@2s+2s pause-broker@2s+3s)
# Arguments run those again; the table has every kind's last run.
if [ $# -gt 0 ]; then faults=("$@"); else faults=("${all[@]}"); fi
mkdir -p "$DEST"
for f in "${faults[@]}"; do
    kind=${f%%@*}
    say "$f"
    rm -rf "${DEST:?}/${kind:?}"
    # Each kind on a fresh private stack: a fault does not inherit the last.
    FAULTS_OUT="$DEST/$kind" timeout 600 scripts/faults.sh "$f" >"$DEST/$kind.txt" 2>&1 || true
    # The instances' logs stay (ignored by git), the history is rewritten.
    rm -f "$DEST/$kind/history.jsonl"
    echo "scripts/faults.sh $f" >"$DEST/$kind/command.txt"
done

python3 - "$DEST" "${all[@]}" <<'PY' >"$DEST/table.md"
import json, sys
dest, faults = sys.argv[1], sys.argv[2:]
print("| schedule | verdict | start | duration | ok / refused / unknown during it | recovery | rate before (/s) | checks 1, 2, 6 |")
print("|---|---|---:|---:|---|---|---:|---|")
for f in faults:
    kind = f.split("@")[0]
    try:
        v = json.load(open(f"{dest}/{kind}/verdict.json"))
    except OSError:
        print(f"| `{f}` | no verdict (see {kind}.txt) | | | | | | |")
        continue
    checks = ", ".join(f'{c["check"]} {c["status"]}' for c in v["checks"] if c["check"] != "nemesis")
    for c in v["checks"]:
        if c["check"] != "nemesis":
            continue
        d = c["details"]
        rec = "never" if d["recoveryMs"] is None else f'{d["recoveryMs"]:.0f} ms' + ("" if d["rateMeasured"] else " (first answer)")
        rate = "" if d["rateBeforePerSec"] is None else f'{d["rateBeforePerSec"]:.1f}'
        print(f'| `{f}` | {"PASS" if v["pass"] else "FAIL"} | {d["startMs"]:.0f} ms | {d["durationMs"]:.0f} ms '
              f'| {d["ok"]} / {d["refused"]} / {d["unknown"]} | {rec} | {rate} | {checks} |')
PY
say "wrote $DEST/table.md"
