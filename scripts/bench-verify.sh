#!/usr/bin/env bash
# Wall time of a default `verify` run (all checks, the 200/100 race and its
# variants) against the in-process reference server, release build, measured
# with hyperfine. Writes reports/verify-timing.md.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}

command -v hyperfine >/dev/null || apt_install "the benchmark runner this measurement uses" hyperfine
cargo build --release --locked -p verify
BIN=${CARGO_TARGET_DIR:-target}/release/verify
out=$(mktemp -d)
on_exit "rm -rf '$out'"

hyperfine --warmup 2 --runs "$RUNS" --export-json "$out/all.json" \
    "$BIN --quiet --out $out/v1" >/dev/null
hyperfine --warmup 2 --runs "$RUNS" --export-json "$out/race.json" \
    "$BIN --quiet --checks oversell --no-variants --out $out/v2" >/dev/null
"$BIN" --quiet --out "$out/v3" > "$out/verdict.txt"

row() {
    python3 - "$1" "$2" <<'PY'
import json, statistics, sys
r = json.load(open(sys.argv[1]))["results"][0]
t = sorted(r["times"])
p = lambda q: t[min(len(t) - 1, round(q * (len(t) - 1)))]
print("| %s | %.0f ms | %.0f ms | %.0f ms | %.0f ms |" % (
    sys.argv[2], 1000 * r["mean"], 1000 * statistics.median(t), 1000 * p(0.95), 1000 * max(t)))
PY
}

mkdir -p reports
cat > reports/verify-timing.md <<MD
# verify: wall time against the default target

Measured $(date -u +%Y-%m-%d) with \`scripts/bench-verify.sh\` (hyperfine, $RUNS runs after 2 warm-ups,
release build) on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, kernel $(uname -r).
The target is the reference server started in process on the embedded backend
(the default); the time includes starting and stopping it.

| run | mean | median | p95 | max |
|---|---:|---:|---:|---:|
$(row "$out/all.json" "\`verify\` (all checks: 3 races of 200 buyers, FIFO and display with 40 users, tokens)")
$(row "$out/race.json" "\`verify --checks oversell --no-variants\` (the 200/100 race alone)")

Target: the default 200/100 run finishes in under 2 s wall.

One of the measured runs, as printed:

\`\`\`
$(sed "s#$out/v3#verify-out#g" "$out/verdict.txt")
\`\`\`
MD
cat reports/verify-timing.md
