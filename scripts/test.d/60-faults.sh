#!/usr/bin/env bash
# Faults under load (scripts/faults.sh): each fault kind the reference
# stack has a local action for, injected while 200 buyers race for 100
# items on two instances; checks 1, 2 and 6 and the fault must pass. And
# the negative controls: an unknown fault kind is refused before any
# request (exit 2), a fault whose command fails fails the verdict, a
# target that never comes back fails it as never recovered, and a Redis
# lost with its rebuild turned off (a test hook) fails checks 1 and 2.
# On its own private stack (scripts/faults.sh's ports), so the default
# stack other suites use is never faulted. About 9 minutes.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$(dirname "$0")/../.."

export FAULTS_KEEP_SERVICES=1
export REDIS_PORT=${FAULTS_REDIS_PORT:-24379} PG_PORT=${FAULTS_PG_PORT:-24432} KAFKA_PORT=${FAULTS_KAFKA_PORT:-24092}
# Its own data directory too, like its ports: a TICKETBENCH_SERVICES_DIR
# exported for the test command's stack must not be shared with it.
export TICKETBENCH_SERVICES_DIR=${FAULTS_SERVICES_DIR:-${TMPDIR:-/tmp}/ticketbench-faults}
export REDIS_APPENDONLY=yes
on_exit "scripts/services.sh stop >/dev/null 2>&1"
out=$(mktemp -d)
on_exit "rm -rf '$out'"

# verify's executable as cargo reports it (see scripts/faults.sh).
VERIFY=$(cargo build --locked -q -p verify --message-format=json-render-diagnostics |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "verify":
        print(m["executable"])')
[ -x "$VERIFY" ] || die "cargo reported no verify executable"

# An unknown kind: exit 2, named, before any request (the target does not
# exist: had a request been sent, the error would be an unreachable one).
set +e
"$VERIFY" --target http://127.0.0.1:9 --admin-token x --nemesis kill-redis@1s+1s >"$out/unknown.txt" 2>&1
code=$?
set -e
[ "$code" = 2 ] || die "an unknown fault kind: exit $code, not 2"
grep -q "unknown fault 'kill-redis'" "$out/unknown.txt" || die "an unknown fault kind was not named: $(cat "$out/unknown.txt")"
say "negative control: an unknown fault kind refused before any request"

# A fault whose action fails fails the verdict (the in-process server).
set +e
"$VERIFY" --quiet --checks oversell --no-variants --release-over-ms 1000 \
    --nemesis 'restart-redis@200ms+200ms' --fault-cmd 'restart-redis=exit 3' \
    --out "$out/failed-action" >"$out/failed-action.txt" 2>&1
code=$?
set -e
[ "$code" = 1 ] || die "a failing fault command: exit $code, not 1: $(cat "$out/failed-action.txt")"
grep -q "action failed" "$out/failed-action.txt" || die "the failed action was not named: $(cat "$out/failed-action.txt")"
say "negative control: a fault whose command fails fails the verdict"

run() {
    local faults=$1
    shift
    say "faults: $faults"
    FAULTS_OUT="$out/$(echo "$faults" | tr ',@+' '___')" \
        timeout 300 scripts/faults.sh "$faults" -- "$@"
}

for f in kill-instance@2s+2s pause-instance@2s+4s restart-redis@2s+1s lose-redis@2s+1s \
    restart-postgres@2s+2s restart-broker@2s+2s pause-broker@2s+3s; do
    run "$f" || die "$f: the verdict failed (above)"
done

# A target that never comes back: an instance paused for good by the
# user's command. The run must fail, naming the fault as never recovered.
set +e
# (The second instance: the first also serves the verifier's set-up.)
# shellcheck disable=SC2016 # expanded by the fault command's own shell
FAULTS_CHECKS=oversell run 'kill-instance@2s+1s' --recovery-deadline 5 --request-timeout 5 \
    --fault-cmd 'kill-instance=[ "$1" = start ] && kill -STOP ${FAULTS_INSTANCE_PIDS##* } || true' \
    >"$out/never.txt" 2>&1
code=$?
set -e
[ "$code" = 1 ] || die "an instance that never came back: exit $code, not 1: $(tail -20 "$out/never.txt")"
grep -q "never recovered\|stayed below 90%\|past the recovery deadline" "$out/never.txt" || die "the unrecovered fault was not named: $(tail -20 "$out/never.txt")"
say "negative control: a target that never recovers fails the verdict"

# Redis lost with the rebuild turned off: every purchase after the loss is
# 404 and PostgreSQL holds sales Redis no longer has; checks 1 and 2 must
# fail, naming them.
set +e
FAULTS_CHECKS=oversell,stores FAULTS_SERVER_FLAGS=--debug-no-redis-rebuild \
    run 'lose-redis@2s+1s' --recovery-deadline 10 >"$out/no-rebuild.txt" 2>&1
code=$?
set -e
[ "$code" = 1 ] || die "a lost Redis not rebuilt: exit $code, not 1: $(tail -20 "$out/no-rebuild.txt")"
if ! grep -q "FAIL oversell" "$out/no-rebuild.txt" || ! grep -q "not recorded in Redis" "$out/no-rebuild.txt"; then
    die "a lost Redis not rebuilt was not caught by checks 1 and 2: $(tail -20 "$out/no-rebuild.txt")"
fi
say "negative control: a lost Redis not rebuilt fails checks 1 and 2"
