# shellcheck shell=bash
# Redis with a replica and three Sentinels, for the nemesis' failover-redis
# (sourced by scripts/services.sh, which documents the commands):
#
#   start-sentinel   a replica of the stack's Redis (REDIS_PORT) on
#                    REDIS_REPLICA_PORT and three Sentinels on
#                    REDIS_SENTINEL_PORTS watching it as REDIS_SENTINEL_MASTER
#                    (quorum 2, a primary unanswered for 1.5 s is down)
#   stop-sentinel
#   failover start   the fault: the replica is stopped (SIGSTOP) and cut off
#                    (the primary drops its link: what the kernel had not
#                    yet delivered would otherwise still arrive) for
#                    FAILOVER_LAG_MS (default 800) while the primary keeps
#                    acknowledging writes, so it lags as a busy or distant
#                    replica does; then the primary is killed (SIGKILL), the
#                    replica continued, and the Sentinels promote it (waited
#                    for, up to 30 s)
#   failover end     the killed server started again on its data: the
#                    Sentinels make it a replica of the new primary (waited for)
#
# Sentinel is Debian's redis-sentinel (installed with apt-get when missing).
# Which node is the primary changes with every failover: the Sentinels say.

REDIS_REPLICA_PORT=${REDIS_REPLICA_PORT:-$((REDIS_PORT + 1))}
REDIS_SENTINEL_PORTS=${REDIS_SENTINEL_PORTS:-$((REDIS_PORT + 2)) $((REDIS_PORT + 3)) $((REDIS_PORT + 4))}
REDIS_SENTINEL_MASTER=${REDIS_SENTINEL_MASTER:-ticketbench}

sentinel_url() {
    local port nodes=""
    for port in $REDIS_SENTINEL_PORTS; do nodes="$nodes,127.0.0.1:$port"; done
    echo "redis+sentinel://${nodes#,}/$REDIS_SENTINEL_MASTER"
}

# The primary's port as the first answering Sentinel names it (empty if none).
sentinel_primary() {
    local port
    for port in $REDIS_SENTINEL_PORTS; do
        if redis-cli -p "$port" sentinel get-master-addr-by-name "$REDIS_SENTINEL_MASTER" 2>/dev/null |
            tr -d '\r' | sed -n 2p | grep .; then
            return
        fi
    done
}

# The pid file of the Redis node on PORT (the primary's or the replica's).
node_pidfile() {
    if [ "$1" = "$REDIS_PORT" ]; then echo "$DIR/redis.pid"; else echo "$DIR/redis-replica.pid"; fi
}

start_replica() {
    port_open "$REDIS_REPLICA_PORT" && return
    say "starting a Redis replica on 127.0.0.1:$REDIS_REPLICA_PORT (of $REDIS_PORT)"
    mkdir -p "$DIR/redis-replica"
    redis-server --bind 127.0.0.1 --port "$REDIS_REPLICA_PORT" --dir "$DIR/redis-replica" \
        --replicaof 127.0.0.1 "$REDIS_PORT" \
        --save "" --appendonly "${REDIS_APPENDONLY:-no}" --appendfsync everysec --daemonize yes \
        --pidfile "$DIR/redis-replica.pid" --logfile "$DIR/redis-replica.log"
    wait_port "redis replica" "$REDIS_REPLICA_PORT" "$DIR/redis-replica.log"
}

# True when the node on PORT is a replica whose link to its primary is up.
replica_synced() {
    local info
    info=$(redis-cli -p "$1" info replication 2>/dev/null | tr -d '\r') || return 1
    grep -qx 'role:slave' <<<"$info" && grep -qx 'master_link_status:up' <<<"$info"
}

# Waits up to 30 s for CONDITION (a command) to hold, or fails naming WHAT.
await() {
    local what=$1 log=$2 i
    shift 2
    for ((i = 0; i < 300; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    not_ready "$what within 30 s" "$log"
}

start_sentinel() {
    local port dir
    command -v redis-sentinel >/dev/null ||
        apt_install "Redis Sentinel, which fails the stack's Redis over to its replica" redis-sentinel
    start_replica
    await "the replica on $REDIS_REPLICA_PORT in sync" "$DIR/redis-replica.log" replica_synced "$REDIS_REPLICA_PORT"
    for port in $REDIS_SENTINEL_PORTS; do
        port_open "$port" && continue
        dir=$DIR/sentinel-$port
        mkdir -p "$dir"
        # Sentinel rewrites its configuration file as it learns: one each.
        cat >"$dir/sentinel.conf" <<EOF
bind 127.0.0.1
port $port
dir $dir
sentinel monitor $REDIS_SENTINEL_MASTER 127.0.0.1 $REDIS_PORT 2
sentinel down-after-milliseconds $REDIS_SENTINEL_MASTER 1500
sentinel failover-timeout $REDIS_SENTINEL_MASTER 10000
sentinel parallel-syncs $REDIS_SENTINEL_MASTER 1
EOF
        say "starting Redis Sentinel on 127.0.0.1:$port"
        redis-sentinel "$dir/sentinel.conf" --daemonize yes \
            --pidfile "$dir/sentinel.pid" --logfile "$dir/sentinel.log"
        wait_port "redis sentinel" "$port" "$dir/sentinel.log"
    done
    await "the Sentinels agreeing on a primary" "$DIR/sentinel-${REDIS_SENTINEL_PORTS%% *}/sentinel.log" sentinel_primary
    say "Redis Sentinel ready: $(sentinel_url) (primary on $(sentinel_primary))"
}

stop_sentinel() {
    local port
    for port in $REDIS_SENTINEL_PORTS; do
        if [ -f "$DIR/sentinel-$port/sentinel.pid" ]; then
            kill "$(cat "$DIR/sentinel-$port/sentinel.pid")" 2>/dev/null || true
        fi
    done
    stop_pidfile redis-replica "$REDIS_REPLICA_PORT"
    rm -rf "$DIR"/sentinel-* "$DIR/failover.killed"
}

# True when the Sentinels name another primary than the one on PORT.
moved_from() {
    local now
    now=$(sentinel_primary)
    [ -n "$now" ] && [ "$now" != "$1" ]
}

failover_start() {
    local primary replica pidfile
    primary=$(sentinel_primary)
    [ -n "$primary" ] || not_ready "no Sentinel names a primary" "$DIR/redis.log"
    if [ "$primary" = "$REDIS_PORT" ]; then replica=$REDIS_REPLICA_PORT; else replica=$REDIS_PORT; fi
    pidfile=$(node_pidfile "$replica")
    kill -STOP "$(cat "$pidfile")"
    redis-cli -p "$primary" client kill type replica >/dev/null
    sleep "$(awk -v ms="${FAILOVER_LAG_MS:-800}" 'BEGIN { print ms / 1000 }')"
    kill -KILL "$(cat "$(node_pidfile "$primary")")"
    kill -CONT "$(cat "$pidfile")"
    echo "$primary" >"$DIR/failover.killed"
    await "a Sentinel failover from $primary" "$DIR/sentinel-${REDIS_SENTINEL_PORTS%% *}/sentinel.log" moved_from "$primary"
    say "failover: the primary on $primary killed after its replica lagged ${FAILOVER_LAG_MS:-800} ms; now $(sentinel_primary)"
}

failover_end() {
    local port
    port=$(cat "$DIR/failover.killed" 2>/dev/null) || not_ready "no failover to undo" "$DIR/redis.log"
    rm -f "$(node_pidfile "$port")"
    if [ "$port" = "$REDIS_PORT" ]; then start_redis; else start_replica; fi
    await "the old primary on $port a synced replica" "$DIR/redis.log" replica_synced "$port"
    rm -f "$DIR/failover.killed"
    say "failover undone: $port is a replica of $(sentinel_primary)"
}
