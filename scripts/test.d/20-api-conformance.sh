#!/usr/bin/env bash
# The API tester: schemathesis (pinned, in a venv under ~/.cache/ticketbench)
# runs every check of docs/openapi.yaml against the server on both backends,
# with a fixed seed and a random one, a bounded example count and the
# stateful phase (the spec's links lead from enter to the token-gated
# operations, through a completed payment: the hooks supply the schedule,
# seat and points the schema cannot know). Any failure, or no completed
# payment on a backend, fails the suite. Reports (JUnit, NDJSON) are kept
# under $TEST_OUTPUT_DIR/api-conformance.
#
# The real backend needs REDIS_URL, POSTGRES_URL and KAFKA_BROKERS (the test
# command exports them from scripts/services.sh env); without them it fails
# under CI and is skipped, with a message, by hand.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=scripts/test.d

SCHEMATHESIS_VERSION=4.32.5
EXAMPLES=${API_CONFORMANCE_EXAMPLES:-25}
FIXED_SEED=20261121
RANDOM_SEED=${API_CONFORMANCE_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
RUN_TIMEOUT=${API_CONFORMANCE_TIMEOUT:-240}   # seconds per schemathesis run
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ticketbench/target}"
out="${TEST_OUTPUT_DIR:-$CARGO_TARGET_DIR/test-output}/api-conformance"
venv="$HOME/.cache/ticketbench/venv-schemathesis"

if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    echo "api-conformance: installing schemathesis $SCHEMATHESIS_VERSION into $venv"
    python3 -m venv "$venv"
    timeout 600 "$venv/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

echo "api-conformance: building ticket-server"
cargo build --quiet --locked -p ticket-server
server_bin="$CARGO_TARGET_DIR/debug/ticket-server"

rm -rf "$out"
mkdir -p "$out"
hooks_dir=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$hooks_dir"
}
trap cleanup EXIT
cp "$here/20-api-conformance.hooks.py" "$hooks_dir/st_hooks.py"

# Starts the server with "$@" on a free port; sets server_pid and base_url.
start_server() {
    local log=$1; shift
    "$server_bin" --listen 127.0.0.1:0 --admin-token api-conformance "$@" >"$log" 2>&1 &
    server_pid=$!
    local deadline=$((SECONDS + 60))
    base_url=
    while [ $SECONDS -lt $deadline ]; do
        base_url=$(sed -n 's/^listening on \(http:.*\)$/\1/p' "$log" | head -1)
        [ -n "$base_url" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.2
    done
    echo "api-conformance: the server did not start; its log:" >&2
    cat "$log" >&2
    return 1
}

stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

failed=0
run_backend() {
    local backend=$1; shift
    local payments=0
    for seed in "$FIXED_SEED" "$RANDOM_SEED"; do
        rm -f "$hooks_dir/st_paid_path.json"
        local dir="$out/$backend-seed-$seed"
        mkdir -p "$dir"
        start_server "$dir/server.log" "$@"
        echo "api-conformance: $backend backend at $base_url, seed $seed, $EXAMPLES examples per operation"
        if ! (cd "$hooks_dir" && SCHEMATHESIS_HOOKS=st_hooks PYTHONPATH="$hooks_dir" timeout "$RUN_TIMEOUT" \
            "$venv/bin/st" --config-file "$OLDPWD/$here/20-api-conformance.toml" run "$OLDPWD/docs/openapi.yaml" \
            --url "$base_url" -H "Authorization: Bearer api-conformance" \
            --checks all --seed "$seed" --max-examples "$EXAMPLES" --workers 1 \
            --report junit,ndjson --report-dir "$dir" --output-truncate true) >"$dir/schemathesis.txt" 2>&1; then
            echo "api-conformance: FAILED on the $backend backend with seed $seed" >&2
            tail -120 "$dir/schemathesis.txt" >&2
            failed=1
        fi
        grep -E "generated|passed|failures?" "$dir/schemathesis.txt" | tail -3 || true
        # What the stateful phase reached on the paid path (the hooks count
        # 201 holds and 200 payments).
        local reached='{"holds": 0, "payments": 0}'
        [ -f "$hooks_dir/st_paid_path.json" ] && reached=$(cat "$hooks_dir/st_paid_path.json")
        cp "$hooks_dir/st_paid_path.json" "$dir/paid-path.json" 2>/dev/null || true
        echo "api-conformance: $backend, seed $seed: paid path reached $reached"
        payments=$((payments + $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["payments"])' "$reached")))
        stop_server
    done
    if [ "$payments" -eq 0 ]; then
        echo "api-conformance: FAILED on the $backend backend: no run completed a payment (create -> enter -> hold -> pay never reached 200)" >&2
        failed=1
    fi
}

# The rate limits (on by default, 10/s per IP and per user) are off here
# whatever the environment says: the stateful phase drives every operation
# from 127.0.0.1 faster than that, and a 429 would hide the answer under
# test. The limits have their own tests in server/tests/abuse_limits.rs and
# server/tests/abuse_connections.rs.
limits_off=(--rate-limit-rps 0 --user-rate-limit-rps 0)

run_backend memory "${limits_off[@]}"

if [ -n "${REDIS_URL:-}" ] && [ -n "${POSTGRES_URL:-}" ] && [ -n "${KAFKA_BROKERS:-}" ]; then
    # A namespace of its own: nothing this run creates meets other tests' data.
    run_backend real "${limits_off[@]}" --backend real --namespace "apiconf_$$" \
        --redis-url "$REDIS_URL" --postgres-url "$POSTGRES_URL" --kafka-brokers "$KAFKA_BROKERS"
elif [ -n "${CI:-}" ]; then
    echo "api-conformance: REDIS_URL/POSTGRES_URL/KAFKA_BROKERS missing under CI" >&2
    exit 1
else
    echo "api-conformance: real backend SKIPPED (run 'eval \"\$(scripts/services.sh env)\"' first)"
fi

echo "api-conformance: reports in $out"
exit "$failed"
