#!/usr/bin/env bash
# The Redis failover question measured (reports/faults/failover/): can a
# failover lose acknowledged stock decrements? scripts/faults.sh
# failover-redis (a lagging replica promoted after the primary is killed)
# under the 200/100 race, N runs with the reference server's default (a
# reservation is acknowledged only once a replica has it: WAIT 1) and N
# with the unsafe variant (--debug-no-replica-wait), alternating; then how
# many runs of each the verifier failed, and the reserve latency before
# the fault (both variants on the same stack shape) side by side.
#
#   scripts/faults-failover.sh [N]     (default 10; about 1.5 minutes a run)
#
# Each run keeps its verdict.json, output and latency.json; the histories
# stay out of git. Exit status 0 even when runs fail: the summary says.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "$0")/.."

N=${1:-10}
DEST=reports/faults/failover
SCHEDULE=failover-redis@2s+4s
mkdir -p "$DEST"
for ((i = 1; i <= N; i++)); do
    for variant in safe unsafe; do
        run=$DEST/$variant-$i
        # Runs already judged are kept (an interrupted series resumes).
        [ -f "$run/verdict.json" ] && continue
        flags=
        [ "$variant" = unsafe ] && flags=--debug-no-replica-wait
        say "$variant run $i of $N"
        rm -rf "${run:?}"
        mkdir -p "$run"
        FAULTS_OUT=$run FAULTS_SERVER_FLAGS=$flags timeout 600 \
            scripts/faults.sh "$SCHEDULE" >"$run.txt" 2>&1 || true
        # Reserve latency of the purchases answered before the fault began.
        python3 - "$run/history.jsonl" >"$run/latency.json" <<'PY' || true
import json, sys
ops = [json.loads(l) for l in open(sys.argv[1])]
start = min((o["value"].get("invoked", o["time"]) for o in ops
             if o["process"] == "verify" and o["f"] == "nemesis"
             and o["value"].get("phase") == "start"), default=None)
invoked, lat = {}, []
for o in ops:
    if o["f"] != "reserve":
        continue
    if o["type"] == "invoke":
        invoked[o["process"]] = o["time"]
    elif o["process"] in invoked:
        t0 = invoked.pop(o["process"])
        if o["type"] == "ok" and (start is None or o["time"] < start):
            lat.append((o["time"] - t0) / 1e6)
print(json.dumps({"beforeFaultOkMs": sorted(lat)}))
PY
        rm -f "$run/history.jsonl"
        echo "FAULTS_SERVER_FLAGS='$flags' scripts/faults.sh $SCHEDULE" >"$run/command.txt"
    done
done

python3 - "$DEST" >"$DEST/summary.md" <<'PY'
import glob, json, os, sys
dest = sys.argv[1]
def pct(xs, p):
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")
print("| variant | runs | failed by the verifier | failed checks (runs) | reserve latency before the fault: n, p50, p95, p99 (ms) |")
print("|---|---:|---:|---|---|")
for variant in ("safe", "unsafe"):
    runs = sorted(glob.glob(f"{dest}/{variant}-*/"))
    failed, checks, lat = 0, {}, []
    judged = 0
    for r in runs:
        try:
            v = json.load(open(os.path.join(r, "verdict.json")))
        except OSError:
            continue
        judged += 1
        if not v["pass"]:
            failed += 1
        for c in v["checks"]:
            if c["status"] != "pass":
                checks[c["check"]] = checks.get(c["check"], 0) + 1
        try:
            lat += json.load(open(os.path.join(r, "latency.json")))["beforeFaultOkMs"]
        except (OSError, ValueError):
            pass
    lat.sort()
    which = ", ".join(f"{k} {n}" for k, n in sorted(checks.items())) or "none"
    print(f"| {variant} | {judged} | {failed} | {which} | {len(lat)}, {pct(lat, 50):.1f}, {pct(lat, 95):.1f}, {pct(lat, 99):.1f} |")
print()
print("Per run, reserve latency before the fault, p50/p95 (ms), runs 1 to N:")
print()
for variant in ("safe", "unsafe"):
    cells = []
    for r in sorted(glob.glob(f"{dest}/{variant}-*/latency.json"),
                    key=lambda p: int(p.rstrip("/").split("/")[-2].split("-")[1])):
        try:
            lat = sorted(json.load(open(r))["beforeFaultOkMs"])
        except (OSError, ValueError):
            continue
        cells.append(f"{pct(lat, 50):.1f}/{pct(lat, 95):.0f}")
    print(f"- {variant}: " + ", ".join(cells))
PY
say "wrote $DEST/summary.md"
