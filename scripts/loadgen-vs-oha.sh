#!/usr/bin/env bash
# loadgen beside oha (an established open-model HTTP generator, from
# crates.io) at the same offered rate against the same targets:
#  a. the embedded reference server's event read (a cheap read), and
#  b. the known-delay stand-in (testkit's delay_server: every GET answers
#     after DELAY_MS),
# ROUNDS alternating rounds each (loadgen, oha, loadgen, oha, ...), DURATION
# seconds a run. Prints one TSV line per run: target, tool, round, achieved
# rate, P50 and P95 in ms (loadgen: its raw and its corrected figures; oha:
# with --latency-correction). reports/loadgen-vs-oha.md has a measurement.
#   scripts/loadgen-vs-oha.sh [ROUNDS] [DURATION_SECS]
# Environment: READ_RATE (1000), DELAY_RATE (200), DELAY_MS (20), NO_BUILD=1
# (use the release binaries as built), GOOSE_CLIENT=1 (loadgen also through
# goose's reqwest client, --goose-metrics, as tool `loadgen-goose-client`,
# beside its own hyper connections).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
DURATION=${2:-10}
READ_RATE=${READ_RATE:-1000}
DELAY_RATE=${DELAY_RATE:-200}
DELAY_MS=${DELAY_MS:-20}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ticketbench/target}"
OHA_VERSION=1.16.0
OHA_ROOT="$HOME/.cache/ticketbench/oha"
OHA="$OHA_ROOT/bin/oha"
if ! [ -x "$OHA" ] || ! "$OHA" --version | grep -q "$OHA_VERSION"; then
    say "installing oha $OHA_VERSION from crates.io into $OHA_ROOT (several minutes on 2 cores)"
    env -u CARGO_TARGET_DIR cargo install oha --version "$OHA_VERSION" --locked --root "$OHA_ROOT"
fi
if [ "${NO_BUILD:-0}" = 1 ]; then
    say "using the release binaries already built (NO_BUILD=1)"
else
    say "building ticket-server, loadgen and the delay stand-in (release)"
    # Two builds: with --example, cargo builds only the examples of the
    # packages named, so the binaries would be left as they were.
    cargo build --release --locked -p ticket-server -p loadgen
    cargo build --release --locked -p testkit --example delay_server
fi
BIN=$CARGO_TARGET_DIR/release
OUT=$(mktemp -d)
on_exit "rm -rf '$OUT'"
PORT=18086
SERVER=http://127.0.0.1:$PORT

"$BIN/ticket-server" --listen 127.0.0.1:$PORT --admin-token T --rate-limit-rps 0 --user-rate-limit-rps 0 >"$OUT/ticket-server.log" 2>&1 &
kill_on_exit $!
wait_port ticket-server $PORT "$OUT/ticket-server.log"
curl -sf -X POST "$SERVER/api/v1/admin/events" -H 'Authorization: Bearer T' \
    -H 'Content-Type: application/json' -d '{"eventId":"cmp","stock":100}' >/dev/null
"$BIN/examples/delay_server" --delay-ms "$DELAY_MS" >"$OUT/delay.url" &
kill_on_exit $!
for _ in $(seq 1 50); do [ -s "$OUT/delay.url" ] && break; sleep 0.1; done
DELAYED=$(head -1 "$OUT/delay.url")
[ -n "$DELAYED" ] || die "the delay stand-in printed no URL"

# loadgen's browse reads the event 3 times in 4 (a reservation otherwise):
# its `event` transaction is the figure compared with oha's event read.
loadgen_run() { # TARGET_NAME HOST RATE ROUND [TOOL_LABEL EXTRA_ARG...]
    local target=$1 host=$2 rate=$3 round=$4 tool=${5:-loadgen}
    shift $(($# < 5 ? $# : 5))
    local dir="$OUT/lg-$tool-$target-$round"
    "$BIN/loadgen" run --host "$host" --admin-token T --scenario browse --rate "$rate" \
        --duration "$DURATION" --no-goose-report --quiet --out "$dir" "$@" >/dev/null
    python3 - "$dir/summary.json" "$target" "$round" "$tool" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
e = s["transactions"]["event"]
ms = lambda us: us / 1000
print(f"{sys.argv[2]}\t{sys.argv[4]}\t{sys.argv[3]}\t{s['tps']:.1f}\t{ms(e['raw']['p50']):.3f}\t{ms(e['raw']['p95']):.3f}"
      f"\t{ms(e['corrected']['p50']):.3f}\t{ms(e['corrected']['p95']):.3f}")
PY
}
# loadgen through goose's reqwest client, when GOOSE_CLIENT=1.
goose_client_run() { # TARGET_NAME HOST RATE ROUND
    [ "${GOOSE_CLIENT:-0}" = 1 ] || return 0
    loadgen_run "$1" "$2" "$3" "$4" loadgen-goose-client --goose-metrics
}
oha_run() { # TARGET_NAME URL RATE ROUND
    "$OHA" -z "${DURATION}s" -q "$3" --latency-correction -c "$(( $3 / 10 > 16 ? $3 / 10 : 16 ))" \
        --no-tui --output-format json "$2" >"$OUT/oha-$1-$4.json"
    python3 - "$OUT/oha-$1-$4.json" "$1" "$4" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
p = o["latencyPercentiles"]
ok = o.get("statusCodeDistribution", {})
assert set(ok) <= {"200"}, f"oha saw non-200 answers: {ok}"
print(f"{sys.argv[2]}\toha\t{sys.argv[3]}\t{o['summary']['requestsPerSec']:.1f}\t{p['p50'] * 1000:.3f}\t{p['p95'] * 1000:.3f}\t-\t-")
PY
}

printf 'target\ttool\tround\tachieved/s\tP50 ms\tP95 ms\tP50 corrected\tP95 corrected\n'
# Odd rounds loadgen first, even rounds oha first: a drift of the machine
# over the measurement falls on both alike.
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then
        loadgen_run read "$SERVER" "$READ_RATE" "$round"
        goose_client_run read "$SERVER" "$READ_RATE" "$round"
        oha_run read "$SERVER/api/v1/events/cmp" "$READ_RATE" "$round"
        loadgen_run delay "$DELAYED" "$DELAY_RATE" "$round"
        goose_client_run delay "$DELAYED" "$DELAY_RATE" "$round"
        oha_run delay "$DELAYED/api/v1/events/cmp" "$DELAY_RATE" "$round"
    else
        oha_run read "$SERVER/api/v1/events/cmp" "$READ_RATE" "$round"
        goose_client_run read "$SERVER" "$READ_RATE" "$round"
        loadgen_run read "$SERVER" "$READ_RATE" "$round"
        oha_run delay "$DELAYED/api/v1/events/cmp" "$DELAY_RATE" "$round"
        goose_client_run delay "$DELAYED" "$DELAY_RATE" "$round"
        loadgen_run delay "$DELAYED" "$DELAY_RATE" "$round"
    fi
done
