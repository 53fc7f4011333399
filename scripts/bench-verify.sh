#!/usr/bin/env bash
# Wall time of a default `verify` run (every default check: the 200/100 race
# and its variants, FIFO, display, tokens and the seat map) against the
# in-process reference server, release build, measured with hyperfine; and
# the same split into its parts, to show where the time goes. Writes
# reports/verify-timing.md.
#   scripts/bench-verify.sh            (RUNS=20 runs of each after 2 warm-ups)
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
[ "$RUNS" -ge 5 ] || die "RUNS=$RUNS: at least 5 runs, for a spread"

command -v hyperfine >/dev/null || apt_install "the benchmark runner this measurement uses" hyperfine
cargo build --release --locked -p verify
BIN=${CARGO_TARGET_DIR:-target}/release/verify
out=$(mktemp -d)
on_exit "rm -rf '$out'"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# name|verify's arguments (each run writes to its own --out)
cases=(
    "all|"
    "noseat|--checks oversell,fifo,display,tokens"
    "seat|--checks seatmap"
    "seat1s|--checks seatmap --hold-ttl-ms 1000"
    "race|--checks oversell --no-variants"
)
for c in "${cases[@]}"; do
    name=${c%%|*} args=${c#*|}
    say "$name: $RUNS runs of verify $args"
    hyperfine --warmup 2 --runs "$RUNS" --export-json "$out/$name.json" \
        "$BIN --quiet $args --out $out/$name" >/dev/null
done
"$BIN" --quiet --out "$out/v" > "$out/verdict.txt"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# row JSON LABEL: "| LABEL | min | median | mean | max |" in seconds
row() {
    python3 - "$1" "$2" <<'PY'
import json, statistics, sys
t = json.load(open(sys.argv[1]))["results"][0]["times"]
print("| %s | %.2f s | %.2f s | %.2f s | %.2f s |" % (
    sys.argv[2], min(t), statistics.median(t), statistics.mean(t), max(t)))
PY
}
# judge JSON: "met" when every run finished under 2 s, else "not met"
judge() {
    python3 - "$1" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["results"][0]["times"]
print("met" if max(t) < 2.0 else "not met")
PY
}
secs() {
    python3 - "$1" "$2" <<'PY'
import json, statistics, sys
t = json.load(open(sys.argv[1]))["results"][0]["times"]
print("%.2f s" % {"min": min, "median": statistics.median, "max": max}[sys.argv[2]](t))
PY
}

mkdir -p reports
cat > reports/verify-timing.md <<MD
# verify: wall time against the default target

Measured $(date -u +%Y-%m-%d) with \`scripts/bench-verify.sh\` (hyperfine, $RUNS runs of each
row after 2 warm-ups, release build) on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, kernel $(uname -r);
load average $load_before before and $load_after after (the machine is shared).
The target is the reference server started in process on the embedded backend
(the default); each time includes starting and stopping it.

| run | min | median | mean | max |
|---|---:|---:|---:|---:|
$(row "$out/all.json" "\`verify\` (the default: all checks: 3 races of 200 buyers, FIFO and display with 40 users, tokens, seat map)")
$(row "$out/noseat.json" "\`verify --checks oversell,fifo,display,tokens\` (the default without the seat map)")
$(row "$out/seat.json" "\`verify --checks seatmap\` (the seat map alone, hold TTL 2000 ms, the default)")
$(row "$out/seat1s.json" "\`verify --checks seatmap --hold-ttl-ms 1000\` (the seat map alone, TTL 1000 ms)")
$(row "$out/race.json" "\`verify --checks oversell --no-variants\` (the 200/100 race alone)")

Each row is \`hyperfine --warmup 2 --runs $RUNS '<row's command> --quiet --out DIR'\`.

Where the time goes: the seat-map check (check 6, in the default run)
waits for its holds to lapse. The embedded target is started with
\`--hold-ttl 2000ms\` (verify's \`--hold-ttl-ms\`, default 2000). After the
race the check reads the seat map every 100 ms until every unpaid hold has
been seen AVAILABLE again, then holds those seats afresh, and its late
payers pay only once their hold has certainly lapsed: TTL +
\`--expiry-tolerance-ms\` (1000) after it was granted. So the check takes at
least the TTL, and about TTL + 1 s whenever a late payer got a hold. Medians: the seat map alone $(secs "$out/seat.json" median) with the
2000 ms TTL and $(secs "$out/seat1s.json" median) with 1000 ms; the default run without it $(secs "$out/noseat.json" median).

Target: the default run finishes in under 2 s wall (every run).
Result: the default run, min $(secs "$out/all.json" min), median $(secs "$out/all.json" median), max $(secs "$out/all.json" max): **$(judge "$out/all.json")**;
the 200/100 race alone, max $(secs "$out/race.json" max): $(judge "$out/race.json"); the default without the seat map,
max $(secs "$out/noseat.json" max): $(judge "$out/noseat.json"). With the seat map in the default run and its 2 s TTL,
the default run cannot meet this target.

One of the measured runs (\`verify --quiet\`), as printed:

\`\`\`
$(sed "s#$out/v#verify-out#g" "$out/verdict.txt")
\`\`\`
MD
cat reports/verify-timing.md
