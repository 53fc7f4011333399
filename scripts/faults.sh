#!/usr/bin/env bash
# Faults under load against the reference stack, in one command: a private
# real stack (Redis with an append-only file, PostgreSQL, the tansu broker,
# on ports of its own, so the default stack other runs use is left alone),
# two ticket-server instances on it, and `verify --nemesis` racing 200
# buyers for 100 items while the faults are injected; then checks 1, 2 and
# 6 and the fault table (docs/VERIFY.md, "Faults").
#
#   scripts/faults.sh [FAULTS] [-- VERIFY-FLAGS...]
#
#   FAULTS   verify's --nemesis schedule (default kill-instance@2s+2s),
#            e.g. "pause-instance@2s+5s,restart-broker@6s+2s"
#
# Variables: FAULTS_OUT (default verify-out/faults: verdict, history,
# instance logs), FAULTS_INSTANCE_PIDS (set for --fault-cmd commands: the
# instances' pids), FAULTS_RELEASE_OVER_MS (8000: the purchases are spread
# over this long), FAULTS_CHECKS (oversell,stores,seatmap),
# FAULTS_KEEP_SERVICES=1 (leave the private stack up),
# FAULTS_PORTS (the two instances', default "24081 24082"),
# FAULTS_SERVER_FLAGS (more flags for both instances, e.g. a negative
# control's test hook), and the private
# stack's REDIS_PORT 24379, PG_PORT 24432, KAFKA_PORT 24092,
# TICKETBENCH_SERVICES_DIR /tmp/ticketbench-faults (all below Linux's ephemeral
# range, 32768-60999, where an outgoing connection may hold the port for a
# moment, and the restarted processes must bind again). A port already taken by
# something this stack did not start stops the run: the nemesis must fault
# only its own processes.
# Exit status: verify's (0 pass, 1 a check or fault failed, 2 not run).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "$0")/.."

FAULTS=${1:-kill-instance@2s+2s}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
OUT=${FAULTS_OUT:-verify-out/faults}
RELEASE_OVER_MS=${FAULTS_RELEASE_OVER_MS:-8000}
export REDIS_PORT=${REDIS_PORT:-24379} PG_PORT=${PG_PORT:-24432} KAFKA_PORT=${KAFKA_PORT:-24092}
export TICKETBENCH_SERVICES_DIR=${TICKETBENCH_SERVICES_DIR:-${TMPDIR:-/tmp}/ticketbench-faults}
read -r -a PORTS <<<"${FAULTS_PORTS:-24081 24082}"
read -r -a SERVER_FLAGS <<<"${FAULTS_SERVER_FLAGS:-}"
# restart-redis crashes a Redis that keeps an append-only file.
export REDIS_APPENDONLY=yes
ADMIN=faults-admin-$$
SECRET=faults-secret-$$
NAMESPACE=faults$(date +%s)$$

# Whether the service on PORT is the one whose pid is in this stack's FILE.
ours() {
    local port=$1 file=$2 pid
    pid=$(head -1 "$TICKETBENCH_SERVICES_DIR/$file" 2>/dev/null) || return 1
    [ -n "$pid" ] && ss -ltnpH "sport = :$port" 2>/dev/null | grep -q "pid=$pid,"
}
for svc in "redis $REDIS_PORT redis.pid" "postgres $PG_PORT pg/postmaster.pid" "kafka $KAFKA_PORT kafka.pid"; do
    read -r name port file <<<"$svc"
    if port_open "$port" && ! ours "$port" "$file"; then
        die "port $port ($name) is taken by a process this stack did not start; choose other ports (REDIS_PORT, PG_PORT, KAFKA_PORT)"
    fi
done

if [ "${FAULTS_KEEP_SERVICES:-}" != 1 ]; then
    on_exit "scripts/services.sh stop >/dev/null 2>&1"
fi
say "the private real stack (ports $REDIS_PORT, $PG_PORT, $KAFKA_PORT; data in $TICKETBENCH_SERVICES_DIR)"
scripts/services.sh start
# failover-redis needs a replica and Sentinels; the instances then find the
# primary through them.
SENTINEL=
case $FAULTS in *failover-redis*) SENTINEL=1 ;; esac
if [ -n "$SENTINEL" ]; then
    scripts/services.sh start-sentinel
fi
eval "$(scripts/services.sh env)"
if [ -n "$SENTINEL" ]; then REDIS_URL=$REDIS_SENTINEL_URL; fi

say "building ticket-server and verify"
# The executables of this build, by the paths cargo reports (a target
# directory shared with other checkouts may link another build's binary
# under target/debug/).
built=$(cargo build --locked -q -p ticket-server -p verify --message-format=json-render-diagnostics |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in ("ticket-server", "verify"):
        print(m["target"]["name"], m["executable"])')
SERVER=$(awk '$1 == "ticket-server" {print $2}' <<<"$built")
VERIFY=$(awk '$1 == "verify" {print $2}' <<<"$built")
if [ ! -x "$SERVER" ] || [ ! -x "$VERIFY" ]; then
    die "cargo reported no ticket-server and verify executables"
fi

mkdir -p "$OUT"
pids=() targets=()
for port in "${PORTS[@]}"; do
    port_open "$port" && die "port $port is taken: another faults run?"
    # Without a backtrace, so a failed start's log ends with its reason.
    RUST_BACKTRACE=0 "$SERVER" --listen "127.0.0.1:$port" --backend real \
        --redis-url "$REDIS_URL" --kafka-brokers "$KAFKA_BROKERS" --postgres-url "$POSTGRES_URL" \
        --namespace "$NAMESPACE" --kafka-partitions 2 --hold-ttl 2s ${SERVER_FLAGS[@]+"${SERVER_FLAGS[@]}"} \
        --admin-token "$ADMIN" --token-secret "$SECRET" --rate-limit-rps 0 --user-rate-limit-rps 0 >"$OUT/instance-$port.log" 2>&1 &
    pids+=($!) targets+=("http://127.0.0.1:$port")
    kill_on_exit $!
done
for i in 0 1; do
    WAIT_SECS=90 wait_http "instance ${targets[i]}" "${targets[i]}/actuator/health" "$OUT/instance-${PORTS[i]}.log"
done

# Instances the nemesis started again are not this script's children: their
# pids are in the history's nemesis notes.
# shellcheck disable=SC2317 # run by on_exit
restarted_on_exit() {
    local pid
    grep -ho 'started instance again as pid [0-9]*' "$OUT/history.jsonl" 2>/dev/null | awk '{print $NF}' |
        while read -r pid; do
            kill -CONT "$pid" 2>/dev/null || true
            kill "$pid" 2>/dev/null || true
        done
}
on_exit restarted_on_exit

# For --fault-cmd commands that act on the instances.
export FAULTS_INSTANCE_PIDS="${pids[*]}"
say "verify --nemesis $FAULTS"
status=0
"$VERIFY" --quiet --target "$(IFS=,; echo "${targets[*]}")" --admin-token "$ADMIN" \
    --checks "${FAULTS_CHECKS:-oversell,stores,seatmap}" --no-variants --hold-ttl-ms 2000 \
    --redis-url "$REDIS_URL" --kafka-brokers "$KAFKA_BROKERS" --postgres-url "$POSTGRES_URL" \
    --namespace "$NAMESPACE" \
    --nemesis "$FAULTS" --instance-pid "$(IFS=,; echo "${pids[*]}")" \
    --release-over-ms "$RELEASE_OVER_MS" --out "$OUT" "$@" || status=$?
exit "$status"
