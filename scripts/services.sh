#!/usr/bin/env bash
# The real stack on 127.0.0.1, as child processes with their data in a
# scratch directory: Redis, PostgreSQL and the tansu Kafka-protocol broker.
# Installs what is missing (apt-get for Redis and PostgreSQL; cargo install
# for tansu, 10-15 minutes once). Idempotent.
#
#   scripts/services.sh start    install if needed, start, wait until ready
#   scripts/services.sh stop
#   scripts/services.sh status
#   scripts/services.sh env      the variables the server and tests read
#   scripts/services.sh stop-one redis|postgres|kafka      (failure tests)
#   scripts/services.sh start-one redis|postgres|kafka
#
# Ports (override with the variables): REDIS_PORT 16379, PG_PORT 15432,
# KAFKA_PORT 19092. Data: $TICKETBENCH_SERVICES_DIR (default /tmp/ticketbench-services).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIR=${TICKETBENCH_SERVICES_DIR:-${TMPDIR:-/tmp}/ticketbench-services}
REDIS_PORT=${REDIS_PORT:-16379}
PG_PORT=${PG_PORT:-15432}
KAFKA_PORT=${KAFKA_PORT:-19092}
TANSU_VERSION=0.6.0
COMPONENTS="redis postgres kafka"

port_of() {
    case $1 in
        redis) echo "$REDIS_PORT" ;;
        postgres) echo "$PG_PORT" ;;
        kafka) echo "$KAFKA_PORT" ;;
    esac
}

print_env() {
    echo "export REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
    echo "export POSTGRES_URL=postgres://ticketbench:ticketbench@127.0.0.1:$PG_PORT/ticketbench"
    echo "export KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT"
    # Read by loadgen's report, which says what the broker was.
    echo "export KAFKA_BROKER_KIND=tansu-0.6.0-memory"
}

pg_bin() {
    local b
    b=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -1)
    [ -n "$b" ] && [ -x "$b/postgres" ] && echo "$b"
}

tansu_bin() {
    command -v tansu 2>/dev/null || { [ -x "$HOME/.cargo/bin/tansu" ] && echo "$HOME/.cargo/bin/tansu"; }
}

install_missing() {
    command -v redis-server >/dev/null || apt_install "the real stack's Redis" redis-server
    pg_bin >/dev/null || apt_install "the real stack's PostgreSQL" postgresql
    if ! tansu_bin >/dev/null; then
        say "installing tansu $TANSU_VERSION (cargo install, 10-15 minutes once)"
        env -u CARGO_TARGET_DIR cargo install tansu --version "$TANSU_VERSION" --locked \
            --features dynostore --quiet
        say "tansu $TANSU_VERSION installed"
    fi
}

# PostgreSQL refuses to run as root: run it as the postgres user then.
pg_run() {
    if as_root; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir "$DIR" postgres
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start_redis() {
    if port_open "$REDIS_PORT"; then
        say "Redis already up on 127.0.0.1:$REDIS_PORT"
        return
    fi
    say "starting Redis on 127.0.0.1:$REDIS_PORT"
    mkdir -p "$DIR/redis"
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$DIR/redis" \
        --save "" --appendonly no --daemonize yes \
        --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log"
    wait_port redis "$REDIS_PORT" "$DIR/redis.log"
    say "Redis ready"
}

start_postgres() {
    if port_open "$PG_PORT"; then
        say "PostgreSQL already up on 127.0.0.1:$PG_PORT"
        return
    fi
    say "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    local bin
    bin=$(pg_bin)
    mkdir -p "$DIR/pg"
    as_root && chown -R postgres "$DIR/pg" && chmod 700 "$DIR/pg"
    if [ ! -f "$DIR/pg/PG_VERSION" ]; then
        say "creating PostgreSQL's data directory in $DIR/pg (once)"
        pg_run "$bin/initdb" -D "$DIR/pg" -U postgres --auth=trust -E UTF8 >/dev/null
    fi
    touch "$DIR/postgres.log"
    as_root && chown postgres "$DIR/postgres.log"
    local opts="-p $PG_PORT -k $DIR/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400"
    if ! pg_run "$bin/pg_ctl" -D "$DIR/pg" -l "$DIR/postgres.log" -w -t 30 -o "$opts" start >/dev/null; then
        # A server killed hard leaves its lock file; once its processes are
        # gone, the file is stale.
        sleep 2
        rm -f "$DIR/pg/postmaster.pid"
        pg_run "$bin/pg_ctl" -D "$DIR/pg" -l "$DIR/postgres.log" -w -t 30 -o "$opts" start >/dev/null
    fi
    pg_run "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc \
        "SELECT 1 FROM pg_roles WHERE rolname = 'ticketbench'" | grep -q 1 ||
        pg_run "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc \
            "CREATE ROLE ticketbench LOGIN PASSWORD 'ticketbench' SUPERUSER"
    pg_run "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'ticketbench'" | grep -q 1 ||
        pg_run "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc \
            "CREATE DATABASE ticketbench OWNER ticketbench"
    say "PostgreSQL ready (database ticketbench)"
}

start_kafka() {
    if port_open "$KAFKA_PORT"; then
        say "the tansu Kafka broker already up on 127.0.0.1:$KAFKA_PORT"
        return
    fi
    say "starting the tansu Kafka broker on 127.0.0.1:$KAFKA_PORT"
    local bin
    bin=$(tansu_bin)
    nohup "$bin" broker \
        --storage-engine memory://tansu/ \
        --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        >"$DIR/kafka.log" 2>&1 &
    echo $! >"$DIR/kafka.pid"
    wait_port kafka "$KAFKA_PORT" "$DIR/kafka.log"
    say "Kafka broker ready"
}

# Kills the process named in $DIR/NAME.pid and waits for its port to close.
stop_pidfile() {
    local name=$1 port=$2
    if [ -f "$DIR/$name.pid" ]; then
        kill "$(cat "$DIR/$name.pid")" 2>/dev/null || true
    fi
    rm -f "$DIR/$name.pid"
    for _ in $(seq 1 50); do port_open "$port" || return 0; sleep 0.1; done
}

stop_redis() { stop_pidfile redis "$REDIS_PORT"; }

stop_postgres() {
    local bin
    bin=$(pg_bin) || return 0
    if [ -f "$DIR/pg/postmaster.pid" ]; then
        pg_run "$bin/pg_ctl" -D "$DIR/pg" -m fast -w stop >/dev/null 2>&1 || true
    fi
}

stop_kafka() { stop_pidfile kafka "$KAFKA_PORT"; }

status() {
    local name port
    for name in $COMPONENTS; do
        port=$(port_of "$name")
        if port_open "$port"; then echo "$name up on 127.0.0.1:$port"; else echo "$name down"; fi
    done
}

# The header comment above, on stderr.
usage() {
    awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0" >&2
    exit 2
}

# The component named by stop-one / start-one, or usage and exit 2.
component() {
    local c
    [ $# -eq 1 ] || usage
    for c in $COMPONENTS; do
        [ "$1" = "$c" ] && return 0
    done
    say "unknown component '$1' (one of: $COMPONENTS)"
    usage
}

case "${1:-}" in
    start | stop | status | env) [ $# -eq 1 ] || usage ;;
    stop-one | start-one) component "${@:2}" ;;
    *)
        [ $# -gt 0 ] && say "unknown command '$1'"
        usage
        ;;
esac

mkdir -p "$DIR"
case "$1" in
    start)
        install_missing
        start_redis
        start_postgres
        start_kafka
        say "up (data in $DIR)"
        ;;
    stop) stop_kafka; stop_postgres; stop_redis ;;
    status) status ;;
    env) print_env ;;
    stop-one) "stop_$2" ;;
    start-one) "start_$2" ;;
esac
