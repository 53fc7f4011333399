#!/usr/bin/env bash
# The real stack on 127.0.0.1, as child processes with their data in a
# scratch directory: Redis, PostgreSQL and the tansu Kafka-protocol broker.
# Installs what is missing (apt-get for Redis and PostgreSQL; cargo install
# for tansu, TANSU_INSTALL_TIME once). Idempotent.
#
#   scripts/services.sh start    install if needed, start, wait until ready
#   scripts/services.sh stop
#   scripts/services.sh status
#   scripts/services.sh env      the variables the server and tests read
#   scripts/services.sh stop-one redis|postgres|kafka      (failure tests)
#   scripts/services.sh start-one redis|postgres|kafka
#   scripts/services.sh start-cluster   a Redis Cluster of three primaries
#   scripts/services.sh stop-cluster    (stops it and forgets its slots)
#   scripts/services.sh status-cluster
#   scripts/services.sh start-sentinel  a replica of Redis and three Sentinels
#   scripts/services.sh stop-sentinel   (scripts/services-sentinel.sh)
#   scripts/services.sh failover start|end   the nemesis' failover-redis
#   scripts/services.sh reset-broker    empties the stopped broker's store
#       (the main job and the tests start on an empty one: a SQLite store
#       grown by earlier runs' topics, 330 MB here, made the flash sale's
#       P95 at 200/s 369 ms against 13 ms on an empty one)
#
# Ports (override with the variables): REDIS_PORT 16379, PG_PORT 15432,
# KAFKA_PORT 19092, REDIS_CLUSTER_PORTS "17001 17002 17003" (the cluster's
# primaries; `env` prints its URL as REDIS_CLUSTER_URL, for --redis-url),
# REDIS_REPLICA_PORT (REDIS_PORT + 1) and REDIS_SENTINEL_PORTS (the next
# three; `env` prints REDIS_SENTINEL_URL, for --redis-url).
# Data: $TICKETBENCH_SERVICES_DIR (default /tmp/ticketbench-services).
#
# The broker's storage, TANSU_STORAGE (reports/broker-storage.md compares them):
#   sqlite    (default) a SQLite file in the data directory: topics survive a
#             broker restart, fetch cost does not grow with the topic
#   postgres  a database of its own (tansu) in the PostgreSQL above
#   memory    nothing kept across a restart
# tansu is built with all three (cargo install --root $TANSU_ROOT); TANSU_BIN
# overrides the binary.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIR=${TICKETBENCH_SERVICES_DIR:-${TMPDIR:-/tmp}/ticketbench-services}
REDIS_PORT=${REDIS_PORT:-16379}
PG_PORT=${PG_PORT:-15432}
KAFKA_PORT=${KAFKA_PORT:-19092}
REDIS_CLUSTER_PORTS=${REDIS_CLUSTER_PORTS:-17001 17002 17003}
TANSU_VERSION=0.6.0
TANSU_STORAGE=${TANSU_STORAGE:-sqlite}
TANSU_FEATURES=dynostore,libsql,postgres
TANSU_ROOT=${TANSU_ROOT:-$HOME/.cache/ticketbench/tansu-$TANSU_VERSION}
TANSU_INSTALL_TIME="15-30 minutes on 2 cores"
# The postgres engine's schema is not in the crate: tansu's repository
# ships it, at the release's tag.
TANSU_PG_SCHEMA_URL=https://raw.githubusercontent.com/tansu-io/tansu/v$TANSU_VERSION/etc/initdb.d/010-schema.sql
TANSU_PG_SCHEMA_SHA256=e4941efd0bb20bbadc16db1a8d52d4d3aed10d9f12147fea1a116d47cbce626e
COMPONENTS="redis postgres kafka"
# shellcheck source=scripts/services-sentinel.sh
. "$(dirname "${BASH_SOURCE[0]}")/services-sentinel.sh"
case $TANSU_STORAGE in
    sqlite | postgres | memory) ;;
    *)
        say "TANSU_STORAGE must be sqlite, postgres or memory (not '$TANSU_STORAGE')"
        exit 2
        ;;
esac

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
    echo "export REDIS_CLUSTER_URL=$(cluster_url)"
    echo "export REDIS_SENTINEL_URL=$(sentinel_url)"
    # Read by loadgen's report, which says what the broker was.
    echo "export KAFKA_BROKER_KIND=tansu-$TANSU_VERSION-$TANSU_STORAGE"
}

pg_bin() {
    local b
    b=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -1)
    [ -n "$b" ] && [ -x "$b/postgres" ] && echo "$b"
}

tansu_bin() {
    local bin=${TANSU_BIN:-$TANSU_ROOT/bin/tansu}
    [ -x "$bin" ] && echo "$bin"
}

install_missing() {
    command -v redis-server >/dev/null || apt_install "the real stack's Redis" redis-server
    pg_bin >/dev/null || apt_install "the real stack's PostgreSQL" postgresql
    if ! tansu_bin >/dev/null; then
        say "installing the tansu $TANSU_VERSION Kafka broker with its SQLite, PostgreSQL and memory storage into $TANSU_ROOT (cargo install, $TANSU_INSTALL_TIME, once)"
        local started=$SECONDS
        env -u CARGO_TARGET_DIR cargo install tansu --version "$TANSU_VERSION" --locked \
            --features "$TANSU_FEATURES" --root "$TANSU_ROOT" --quiet
        say "tansu $TANSU_VERSION installed in $(((SECONDS - started) / 60)) min $(((SECONDS - started) % 60)) s"
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
    # REDIS_APPENDONLY=yes keeps an append-only file (fsync every second):
    # the nemesis' restart-redis then crashes a Redis that has its data.
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$DIR/redis" \
        --save "" --appendonly "${REDIS_APPENDONLY:-no}" --appendfsync everysec --daemonize yes \
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

# The broker's own database in the PostgreSQL above (not the application's):
# created and given tansu's schema once.
tansu_pg_database() {
    local bin schema=$TANSU_ROOT/010-schema.sql
    bin=$(pg_bin)
    port_open "$PG_PORT" || die "the postgres storage needs PostgreSQL up on 127.0.0.1:$PG_PORT (scripts/services.sh start-one postgres)"
    if pg_run "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'tansu'" | grep -q 1; then
        return
    fi
    if ! echo "$TANSU_PG_SCHEMA_SHA256  $schema" | sha256sum -c --status 2>/dev/null; then
        say "downloading tansu's PostgreSQL schema ($TANSU_PG_SCHEMA_URL)"
        mkdir -p "$TANSU_ROOT"
        curl -sSfL --max-time 60 -o "$schema.part" "$TANSU_PG_SCHEMA_URL" ||
            die "could not download $TANSU_PG_SCHEMA_URL"
        echo "$TANSU_PG_SCHEMA_SHA256  $schema.part" | sha256sum -c --status ||
            die "$TANSU_PG_SCHEMA_URL is not the expected file (sha256 differs)"
        mv "$schema.part" "$schema"
    fi
    say "creating the broker's database tansu in PostgreSQL (once)"
    pg_run "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc \
        "CREATE DATABASE tansu OWNER ticketbench"
    pg_run "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U ticketbench -d tansu -q \
        -v ON_ERROR_STOP=1 -f - <"$schema" >/dev/null
}

start_kafka() {
    if port_open "$KAFKA_PORT"; then
        say "the tansu Kafka broker already up on 127.0.0.1:$KAFKA_PORT"
        return
    fi
    say "starting the tansu Kafka broker on 127.0.0.1:$KAFKA_PORT ($TANSU_STORAGE storage)"
    echo "--- $(date -Is) starting, $TANSU_STORAGE storage" >>"$DIR/kafka.log"
    local bin storage
    bin=$(tansu_bin) || die "no tansu binary at ${TANSU_BIN:-$TANSU_ROOT/bin/tansu} (scripts/services.sh start installs it)"
    mkdir -p "$DIR/kafka"
    case $TANSU_STORAGE in
        # A path relative to the broker's working directory.
        sqlite) storage=sqlite://tansu.db ;;
        postgres)
            tansu_pg_database
            storage=postgres://ticketbench:ticketbench@127.0.0.1:$PG_PORT/tansu
            ;;
        memory) storage=memory://tansu/ ;;
    esac
    (cd "$DIR/kafka" && exec env -u STORAGE_ENGINE nohup "$bin" broker \
        --storage-engine "$storage" \
        --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        >>"$DIR/kafka.log" 2>&1) &
    echo $! >"$DIR/kafka.pid"
    wait_port kafka "$KAFKA_PORT" "$DIR/kafka.log"
    say "Kafka broker ready ($storage, run in $DIR/kafka; log $DIR/kafka.log)"
}

# Empties the broker's store before a start, so that a run measures the
# broker, not what earlier runs left in it. Refuses nothing: a broker
# already up is someone's, and is kept as it is (said so).
reset_broker() {
    if port_open "$KAFKA_PORT"; then
        say "the Kafka broker is already up on 127.0.0.1:$KAFKA_PORT: its store is kept as it is"
        return
    fi
    case $TANSU_STORAGE in
        sqlite)
            if [ -e "$DIR/kafka/tansu.db" ]; then
                say "emptying the broker's store ($(du -sh "$DIR/kafka" | cut -f1) of earlier runs' topics in $DIR/kafka)"
                rm -f "$DIR/kafka"/tansu.db*
            fi
            ;;
        postgres)
            if port_open "$PG_PORT"; then
                say "emptying the broker's store (database tansu)"
                pg_run "$(pg_bin)/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres \
                    -qc 'DROP DATABASE IF EXISTS tansu' >/dev/null
            fi
            ;;
        memory) ;;
    esac
}

# The Redis Cluster: primaries only (no replicas), slots spread evenly by
# `redis-cli --cluster create`, nothing persisted.

cluster_url() {
    local port nodes=""
    for port in $REDIS_CLUSTER_PORTS; do nodes="$nodes,127.0.0.1:$port"; done
    echo "redis+cluster://${nodes#,}"
}

# The value of FIELD in `cluster info` of the node on PORT (empty if none).
cluster_info() {
    redis-cli -p "$1" cluster info 2>/dev/null | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'
}

# True when every node says the cluster is ok and knows all the others.
cluster_ok() {
    local port count
    count=$(echo "$REDIS_CLUSTER_PORTS" | wc -w)
    for port in $REDIS_CLUSTER_PORTS; do
        [ "$(cluster_info "$port" cluster_state)" = ok ] || return 1
        [ "$(cluster_info "$port" cluster_known_nodes)" = "$count" ] || return 1
    done
}

start_cluster() {
    local port dir nodes=() i secs=${WAIT_SECS:-30}
    command -v redis-server >/dev/null || apt_install "the Redis Cluster" redis-server
    if cluster_ok; then
        say "Redis Cluster already up on $REDIS_CLUSTER_PORTS"
        return
    fi
    for port in $REDIS_CLUSTER_PORTS; do
        nodes+=("127.0.0.1:$port")
        port_open "$port" && continue
        dir=$DIR/redis-cluster/$port
        say "starting Redis Cluster node on 127.0.0.1:$port"
        mkdir -p "$dir"
        redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" \
            --cluster-enabled yes --cluster-config-file nodes.conf \
            --cluster-node-timeout 5000 \
            --save "" --appendonly no --daemonize yes \
            --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
        wait_port "redis cluster node" "$port" "$dir/redis.log"
    done
    # Nodes restarted from their nodes.conf rejoin by themselves; fresh ones
    # (one node known, no slot) are made into a cluster.
    if [ "$(cluster_info "${REDIS_CLUSTER_PORTS%% *}" cluster_known_nodes)" = 1 ]; then
        say "creating the Redis Cluster (${nodes[*]}, no replicas)"
        redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$DIR/redis-cluster/create.log" 2>&1 ||
            not_ready "redis-cli --cluster create failed (scripts/services.sh stop-cluster forgets a half-made cluster)" "$DIR/redis-cluster/create.log"
    fi
    for ((i = 0; i < secs * 10; i++)); do
        if cluster_ok; then
            say "Redis Cluster ready: $(cluster_url)"
            return
        fi
        sleep 0.1
    done
    not_ready "the Redis Cluster on $REDIS_CLUSTER_PORTS did not reach cluster_state:ok within $secs s" \
        "$DIR/redis-cluster/${REDIS_CLUSTER_PORTS%% *}/redis.log"
}

stop_cluster() {
    local port dir i
    for port in $REDIS_CLUSTER_PORTS; do
        dir=$DIR/redis-cluster/$port
        if [ -f "$dir/redis.pid" ]; then
            kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
        fi
        for ((i = 0; i < 50; i++)); do port_open "$port" || break; sleep 0.1; done
    done
    # Forgets the slots too: the next start makes a fresh cluster.
    rm -rf "$DIR/redis-cluster"
}

status_cluster() {
    if cluster_ok; then
        echo "redis-cluster up: $(cluster_url)"
    else
        echo "redis-cluster down"
    fi
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
    start | stop | status | env | reset-broker | start-cluster | stop-cluster | status-cluster | start-sentinel | stop-sentinel)
        [ $# -eq 1 ] || usage
        ;;
    failover)
        if [ $# -ne 2 ] || { [ "$2" != start ] && [ "$2" != end ]; }; then usage; fi
        ;;
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
    stop) stop_sentinel; stop_kafka; stop_postgres; stop_redis ;;
    status) status ;;
    env) print_env ;;
    stop-one) "stop_$2" ;;
    start-one) "start_$2" ;;
    start-cluster) start_cluster ;;
    stop-cluster) stop_cluster ;;
    status-cluster) status_cluster ;;
    start-sentinel) start_sentinel ;;
    stop-sentinel) stop_sentinel ;;
    failover) "failover_$2" ;;
    reset-broker) reset_broker ;;
esac
