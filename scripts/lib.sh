# shellcheck shell=bash
# Helpers shared by the scripts in scripts/. Each script sources it first:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
#   say MESSAGE...                 log to stderr as "<script>: MESSAGE"
#   die MESSAGE...                 say, then exit 1
#   port_open PORT                 is 127.0.0.1:PORT accepting connections?
#   wait_port NAME PORT [LOGFILE]  wait for NAME to open PORT, or fail loudly
#   wait_http NAME URL [LOGFILE]   wait for URL to answer 2xx, or fail loudly
#   apt_install WHY PACKAGE...     install Debian packages (root only)
#   on_exit COMMAND                run COMMAND when the script exits
#   kill_on_exit PID...            stop these processes when the script exits
#   services_start_own / services_stop_own
#                                  start the local real stack; stop again only
#                                  the components that were down before
#
# The waits give up after WAIT_SECS seconds (default 30).

# The name messages are prefixed with: the script's, without `.sh`.
LOG_NAME=${LOG_NAME:-$(basename "$0" .sh)}
# This directory, absolute (scripts may cd after sourcing).
SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

say() { printf '%s: %s\n' "$LOG_NAME" "$*" >&2; }

die() {
    say "$@"
    exit 1
}

as_root() { [ "$(id -u)" -eq 0 ]; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Says what did not become ready, shows the end of its log, exits 1.
not_ready() {
    local what=$1 log=${2:-}
    say "$what"
    if [ -n "$log" ] && [ -s "$log" ]; then
        say "last lines of $log:"
        tail -n 20 "$log" >&2
    elif [ -n "$log" ]; then
        say "its log $log is empty or missing"
    fi
    exit 1
}

# wait_port NAME PORT [LOGFILE]: returns once 127.0.0.1:PORT accepts
# connections; after WAIT_SECS says which service did not open which port
# within how long, shows the end of LOGFILE and exits 1.
wait_port() {
    local name=$1 port=$2 log=${3:-} secs=${WAIT_SECS:-30} i
    for ((i = 0; i < secs * 10; i++)); do
        port_open "$port" && return 0
        sleep 0.1
    done
    not_ready "$name did not open port $port within $secs s" "$log"
}

# wait_http NAME URL [LOGFILE]: as wait_port, for an HTTP URL answering 2xx
# (a server may accept connections before it is ready to serve).
wait_http() {
    local name=$1 url=$2 log=${3:-} secs=${WAIT_SECS:-30} i
    for ((i = 0; i < secs * 10; i++)); do
        curl -sf -o /dev/null --max-time 2 "$url" && return 0
        sleep 0.1
    done
    not_ready "$name did not answer $url within $secs s" "$log"
}

# apt_install WHY PACKAGE...: installs Debian packages, saying which and
# why. Refuses clearly when not root. `apt-get update` runs once per run
# (shared with the scripts this one calls).
apt_install() {
    local why=$1
    shift
    if ! as_root; then
        say "missing $* ($why): install with 'apt-get install $*', or run this as root"
        exit 1
    fi
    say "installing $* with apt-get ($why)"
    if [ -z "${TICKETBENCH_APT_UPDATED:-}" ]; then
        apt-get update -qq
        export TICKETBENCH_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Commands run at exit, newest first.
_exit_hooks=()

_run_exit_hooks() {
    local i
    for ((i = ${#_exit_hooks[@]} - 1; i >= 0; i--)); do
        eval "${_exit_hooks[i]}" || true
    done
}

# on_exit COMMAND: runs COMMAND (a string, evaluated) when the script exits,
# however it exits (an interrupt or SIGTERM too). Replaces any EXIT trap of
# the script.
on_exit() {
    _exit_hooks+=("$1")
    trap _run_exit_hooks EXIT
    trap 'exit 129' HUP
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# Processes this script started, stopped at exit.
_own_pids=()

_kill_own() {
    local pid i
    [ ${#_own_pids[@]} -gt 0 ] || return 0
    kill "${_own_pids[@]}" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        for pid in "${_own_pids[@]}"; do
            kill -0 "$pid" 2>/dev/null && break
            pid=
        done
        [ -z "$pid" ] && return 0
        sleep 0.1
    done
    kill -KILL "${_own_pids[@]}" 2>/dev/null || true
}

# kill_on_exit PID...: these processes (and only these) get SIGTERM when
# the script exits, and SIGKILL if still alive 5 s later.
kill_on_exit() {
    [ ${#_own_pids[@]} -gt 0 ] || on_exit _kill_own
    _own_pids+=("$@")
}

# The components of the local real stack this script found down, and so
# starts and owns.
_own_services=()

# Starts the local real stack (scripts/services.sh start); the components
# that were down before are stopped again at exit, or by services_stop_own.
# Components someone else started are left alone.
services_start_own() {
    mapfile -t _own_services < <("$SCRIPTS_DIR/services.sh" status | awk '$2 == "down" { print $1 }')
    on_exit services_stop_own
    "$SCRIPTS_DIR/services.sh" start
}

# Stops the components services_start_own started, newest first.
services_stop_own() {
    local i
    for ((i = ${#_own_services[@]} - 1; i >= 0; i--)); do
        "$SCRIPTS_DIR/services.sh" stop-one "${_own_services[i]}" >/dev/null 2>&1 || true
    done
    _own_services=()
}
