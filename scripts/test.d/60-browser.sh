#!/usr/bin/env bash
# The pages for people, in a real browser: headless Chromium from Debian's
# packages driven by playwright-core (pinned, from the npm registry, under
# ~/.cache/ticketbench/node), against ticket-server on both backends. The
# scenarios (tests/browser/*.mjs): a buyer types the event id on the home
# page, watches the position fall, reloads, keeps the place and buys
# (CONFIRMED), and a late buyer asking for more than is left sees SOLD_OUT;
# two buyers race for a seat
# (HELD within a second, AVAILABLE again after a short --hold-ttl); the
# operator pauses (positions stop, pages say paused) and resumes (admission
# in entry order); a load run's live dashboard (loadgen run --dashboard)
# shows successes per second each second and links the report at the end;
# a scaling run's (loadgen scale --dashboard, this server as a one-host
# deployment) names each step and links its one-page HTML report; the main
# job's (loadgen job --dashboard, quick, without scaling, its own embedded
# server: the embedded pass only) names both load runs and links its report.
# Before the browser, the pages' own logic (the wait shown from the
# server's estimates) is tested under node (tests/pages).
# Screenshots at desktop and phone sizes are kept under
# $TEST_OUTPUT_DIR/browser. Each scenario is bounded (90 s), the whole run
# too.
#
# The real backend needs REDIS_URL, POSTGRES_URL and KAFKA_BROKERS (the
# test command exports them); without them it fails under CI and is
# skipped, with a message, by hand.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$(dirname "$0")/../.."

PLAYWRIGHT_VERSION=1.65.1
HOLD_TTL_MS=3000
RUN_TIMEOUT=${BROWSER_TIMEOUT:-300}   # seconds per backend
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ticketbench/target}"
out="${TEST_OUTPUT_DIR:-$CARGO_TARGET_DIR/test-output}/browser"
node_dir="$HOME/.cache/ticketbench/node"

if [ ! -x /usr/bin/chromium ]; then
    apt_install "the browser the page tests drive" chromium
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt_install "node runs the page tests (playwright-core)" nodejs npm
fi
installed=$(node -p "require('$node_dir/node_modules/playwright-core/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$PLAYWRIGHT_VERSION" ]; then
    say "installing playwright-core $PLAYWRIGHT_VERSION into $node_dir (it drives /usr/bin/chromium; no browser is downloaded)"
    mkdir -p "$node_dir"
    [ -f "$node_dir/package.json" ] || echo '{"private": true}' >"$node_dir/package.json"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout 300 npm install --prefix "$node_dir" --no-audit --no-fund --silent \
        "playwright-core@$PLAYWRIGHT_VERSION"
fi

say "building ticket-server and loadgen"
cargo build --quiet --locked -p ticket-server -p loadgen
server_bin="$CARGO_TARGET_DIR/debug/ticket-server"
export LOADGEN_BIN="$CARGO_TARGET_DIR/debug/loadgen"
rm -rf "$out"
mkdir -p "$out"

say "page logic without a browser (node --test tests/pages)"
node --test tests/pages/*.test.mjs >"$out/page-logic.txt" 2>&1 ||
    { cat "$out/page-logic.txt" >&2; die "the page logic tests failed"; }
say "page logic: $(grep -c '^ok ' "$out/page-logic.txt") tests passed"

admin_token="browser-$(od -An -N6 -tx1 /dev/urandom | tr -d ' ')"
failed=0

# Runs the scenarios (all, or those in $SCENARIOS) against a fresh server
# started with "$@"; its output in $out/$1.txt; false if any failed.
run_scenarios() {
    local backend=$1 log="$out/server-$1.log" base='' pid deadline status=0
    shift
    "$server_bin" --listen 127.0.0.1:0 --admin-token "$admin_token" --hold-ttl "${HOLD_TTL_MS}ms" \
        --rate-limit-rps 0 --user-rate-limit-rps 0 "$@" >"$log" 2>&1 &
    pid=$!
    kill_on_exit "$pid"
    deadline=$((SECONDS + 60))
    while [ $SECONDS -lt $deadline ] && [ -z "$base" ]; do
        base=$(sed -n 's/^listening on \(http:.*\)$/\1/p' "$log" | head -1)
        kill -0 "$pid" 2>/dev/null || break
        [ -n "$base" ] || sleep 0.2
    done
    [ -n "$base" ] || not_ready "ticket-server ($backend) did not start" "$log"
    wait_http "ticket-server ($backend)" "$base/actuator/health" "$log"
    say "$backend: Chromium against $base"
    BASE_URL="$base" ADMIN_TOKEN="$admin_token" BACKEND="$backend" OUT_DIR="$out" \
        HOLD_TTL_MS="$HOLD_TTL_MS" PLAYWRIGHT_DIR="$node_dir" \
        timeout "$RUN_TIMEOUT" node tests/browser/run.mjs 2>&1 | tee "$out/$backend.txt" || status=1
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return "$status"
}

run_backend() {
    run_scenarios "$@" || { say "$1: FAILED (server log: $out/server-$1.log)"; failed=1; }
}

run_backend memory

# Negative control: against a server that admits while paused, the
# operator scenario must fail, on the buyer's position moving.
if SCENARIOS=operator run_scenarios unsafe-pause --unsafe-pause >/dev/null 2>&1; then
    die "negative control: the operator scenario passed against --unsafe-pause"
fi
grep -q "FAIL unsafe-pause: operator.*position moved to" "$out/unsafe-pause.txt" ||
    die "negative control: --unsafe-pause failed for another reason: $(cat "$out/unsafe-pause.txt")"
say "negative control caught: admission while paused ($(grep -o 'position moved to .*' "$out/unsafe-pause.txt" | head -1))"

if [ -n "${REDIS_URL:-}" ] && [ -n "${POSTGRES_URL:-}" ] && [ -n "${KAFKA_BROKERS:-}" ]; then
    # A namespace of its own: nothing this run creates meets other tests' data.
    run_backend real --backend real --namespace "browser_$$" \
        --redis-url "$REDIS_URL" --postgres-url "$POSTGRES_URL" --kafka-brokers "$KAFKA_BROKERS"
elif [ -n "${CI:-}" ]; then
    die "REDIS_URL/POSTGRES_URL/KAFKA_BROKERS missing under CI"
else
    say "real backend SKIPPED (run 'eval \"\$(scripts/services.sh env)\"' first)"
fi

say "screenshots in $out/screenshots"
exit "$failed"
