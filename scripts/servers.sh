# Servers a benchmark script starts on free ports of 127.0.0.1 and stops on exit: sourced by
# bench_serve.sh and bench_fleet.sh, which define `die` and start each server themselves
# (the commands differ), then call `await_ping`. PID[name] and PORT[name] hold what runs.
# shellcheck shell=bash

declare -A PID=() PORT=()

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A port no server of this run has taken yet (free_port can hand out the same one twice).
new_port() {
    local port taken p
    while :; do
        port=$(free_port)
        taken=0
        for p in "${PORT[@]}"; do [ "$p" != "$port" ] || taken=1; done
        [ "$taken" = 1 ] || { echo "$port"; return; }
    done
}

# await_ping NAME LOG: waits (up to 30 s) until server NAME, started in the background as
# PID[NAME] on PORT[NAME], answers PING; dies with the tail of LOG if it exits or never does.
await_ping() {
    local name=$1 logf=$2 i
    for ((i = 0; i < 300; i++)); do
        if ! kill -0 "${PID[$name]}" 2>/dev/null; then
            unset "PID[$name]"
            tail -n 20 "$logf" >&2
            die "$name exited during start-up (log above)"
        fi
        if [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "${PORT[$name]}" PING 2>/dev/null)" = PONG ]; then
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$logf" >&2
    die "$name did not answer PING on 127.0.0.1:${PORT[$name]} within 30 s (log above)"
}

# stop_server NAME: SIGTERM, then SIGKILL after 5 s.
stop_server() {
    local name=$1 pid=${PID[$1]:-} i
    [ -n "$pid" ] || return 0
    unset "PID[$name]"
    kill "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

stop_all_servers() {
    local name
    for name in "${!PID[@]}"; do stop_server "$name"; done
}

# cli NAME ARGS...: redis-cli against server NAME.
cli() { timeout 10 redis-cli -h 127.0.0.1 -p "${PORT[$1]}" "${@:2}"; }
