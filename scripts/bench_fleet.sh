#!/usr/bin/env bash
# Two `strata serve` instances over one Redis against that Redis alone, in the same run (the
# issue's target: the fleet serves a 90% read workload at >= 1.5x the throughput of Redis alone).
# The load is `strata-bench resp-load`: GET 90% / SET 10% of `key:{n}`, n uniform in 0..keys,
# 64-byte values, its clients spread round-robin over the servers it is given; Redis alone and
# the fleet alternate in each round (Redis first in odd rounds), medians of --rounds.
#
#   scripts/bench_fleet.sh [--rounds 3] [--seconds 10] [--clients 50] [--pipeline 1]
#                          [--keys 100000]
#
#   --rounds N     rounds, each one run of Redis alone and one of the fleet
#   --seconds N    measured seconds of each run (after resp-load's uncounted 1 s warm-up)
#   --clients N    connections of each run (the fleet's are split between its two servers)
#   --pipeline N   commands written at once by each connection
#   --keys N       the key universe, preloaded once before the first round
#
# Environment (not STRATA_*: strata reads every STRATA_* variable as configuration):
#   BENCH_TIMEOUT  seconds before one resp-load run is abandoned (default --seconds + 120).
#
# Builds target/release/strata and target/release/strata-bench when missing (`cargo build
# --release -p strata-server -p strata-bench`); an existing binary is used as it is, with a
# warning when sources are newer. Starts its own redis-server and two `strata serve` on free
# ports of 127.0.0.1, both configured with only `[redis] url = "redis://127.0.0.1:PORT"` (never
# touches an existing Redis), kills them on exit. Markdown report on stdout, progress on stderr.
# Needs redis-server, redis-cli, python3 and timeout.
#
# Preloading writes every key twice: straight into Redis, for Redis alone, and through the two
# strata servers (batches alternating between them), which write it through to Redis under
# their own prefix and encoding (`strata:{slot}:d:default:key:N`), so a key strata wrote is not
# the `key:N` Redis alone is asked for. Each side then runs on keys it holds.
set -euo pipefail

rounds=3
seconds=10
clients=50
pipeline=1
keys=100000

usage() { sed -n '8,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=${2:?}; shift 2 ;;
        --seconds) seconds=${2:?}; shift 2 ;;
        --clients) clients=${2:?}; shift 2 ;;
        --pipeline) pipeline=${2:?}; shift 2 ;;
        --keys) keys=${2:?}; shift 2 ;;
        -h|--help) usage ;;
        *) echo "bench_fleet: unknown argument: $1" >&2; usage ;;
    esac
done
for v in "$rounds" "$seconds" "$clients" "$pipeline" "$keys"; do
    [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "bench_fleet: not a positive number: $v" >&2; exit 2; }
done
bench_timeout=${BENCH_TIMEOUT:-$((seconds + 120))}
[[ "$bench_timeout" =~ ^[1-9][0-9]*$ ]] || { echo "bench_fleet: BENCH_TIMEOUT is not a positive number: $bench_timeout" >&2; exit 2; }

die() { echo "bench_fleet: error: $*" >&2; exit 1; }
log() { echo "bench_fleet: $*" >&2; }

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
for tool in redis-server redis-cli python3 timeout; do
    command -v "$tool" >/dev/null || die "$tool not found"
done

# --- the binaries ---------------------------------------------------------------------------
strata=target/release/strata
bench=target/release/strata-bench
if [ ! -x "$strata" ] || [ ! -x "$bench" ]; then
    log "$strata or $bench missing: cargo build --release -p strata-server -p strata-bench"
    cargo build --release -p strata-server -p strata-bench >&2 || die "cargo build failed"
fi
stale=$(find crates -path crates/strata-bench -prune -o -newer "$strata" \( -path '*/src/*.rs' -o -name Cargo.toml \) -print 2>/dev/null | head -n 1)
[ -z "$stale" ] || log "warning: $stale is newer than $strata: the binary may not be the tree's code (cargo build --release -p strata-server)"

work=$(mktemp -d "${TMPDIR:-/tmp}/bench_fleet.XXXXXX")
strata_config="$work/strata.toml"   # written once redis has its port

# shellcheck source=scripts/servers.sh
source "$root/scripts/servers.sh"
cleanup() {
    stop_all_servers
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server redis|strata_a|strata_b: a fresh server on free ports; sets PID[name] and
# PORT[name]. The strata servers need redis started first (their config names its port).
start_server() {
    local name=$1 port http logf="$work/$1.log"
    port=$(new_port)
    if [ "$name" = redis ]; then
        redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
            --dir "$work" --daemonize no >"$logf" 2>&1 &
    else
        PORT[$name]=$port   # taken, so the admin port differs
        http=$(new_port)
        "$strata" serve --config "$strata_config" --resp-addr "127.0.0.1:$port" \
            --http-addr "127.0.0.1:$http" >"$logf" 2>&1 &
    fi
    PID[$name]=$!
    PORT[$name]=$port
    await_ping "$name" "$logf"
}


# servers_of redis|fleet: the --servers list of that side.
servers_of() {
    case "$1" in
        redis) echo "127.0.0.1:${PORT[redis]}" ;;
        fleet) echo "127.0.0.1:${PORT[strata_a]},127.0.0.1:${PORT[strata_b]}" ;;
    esac
}

# check_alive NAME...: dies with the log of the first server that is gone.
check_alive() {
    local name
    for name in "$@"; do
        kill -0 "${PID[$name]}" 2>/dev/null || { tail -n 20 "$work/$name.log" >&2; die "$name died (log above)"; }
    done
}

# resp_load SIDE OUT ARGS...: strata-bench resp-load against that side, its JSON line in OUT.
resp_load() {
    local side=$1 out=$2 rc=0
    shift 2
    timeout --foreground "$bench_timeout" "$bench" resp-load --servers "$(servers_of "$side")" \
        --keys "$keys" --value-size 64 "$@" >"$out" 2>"$work/resp_load.err" </dev/null || rc=$?
    if [ "$side" = redis ]; then check_alive redis; else check_alive redis strata_a strata_b; fi
    [ "$rc" = 0 ] || { cat "$out" "$work/resp_load.err" >&2; die "resp-load against $side failed (exit $rc$([ "$rc" = 124 ] && echo ", timed out after ${bench_timeout}s"))"; }
}

# --- servers and preload --------------------------------------------------------------------
start_server redis
[ "$(cli redis DBSIZE)" = 0 ] || die "the fresh redis is not empty"
log "preloading $keys keys into redis (port ${PORT[redis]})"
resp_load redis "$work/preload.json" --preload --seconds 0
dbsize=$(cli redis DBSIZE)
[ "$dbsize" = "$keys" ] || die "redis holds $dbsize keys after preloading $keys"

printf '[redis]\nurl = "redis://127.0.0.1:%s"\n' "${PORT[redis]}" >"$strata_config"
start_server strata_a
start_server strata_b
log "strata on ${PORT[strata_a]} and ${PORT[strata_b]}"
log "preloading $keys keys through the two strata servers"
resp_load fleet "$work/preload.json" --preload --seconds 0
dbsize=$(cli redis DBSIZE)
[ "$dbsize" -ge $((2 * keys)) ] || die "redis holds $dbsize keys after preloading $keys through strata as well: was not everything written through?"
held_a=$(cli strata_a DBSIZE)
held_b=$(cli strata_b DBSIZE)

# --- header ---------------------------------------------------------------------------------
echo "# Two strata serve over one Redis vs that Redis alone"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- host: $(uname -srm), nproc $(nproc), $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
awk '{exit !($1 > 0.5)}' /proc/loadavg && log "warning: load average $(cut -d' ' -f1 /proc/loadavg) at start: other work on this machine will skew the results"
echo "- git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (dirty tree)')"
echo "- $($strata --version 2>/dev/null | head -n 1) (\`$strata\`, built $(date -u -r "$strata" '+%Y-%m-%d %H:%M UTC')$([ -z "$stale" ] || echo ", older than the sources"))"
echo "- $(redis-server --version)"
echo "- strata config: \`[redis] url = \"redis://127.0.0.1:PORT\"\`, nothing else"
echo "- after preloading: redis DBSIZE $dbsize, strata DBSIZE $held_a and $held_b"

# --- rounds ---------------------------------------------------------------------------------
raw="$work/runs.tsv"
: >"$raw"
for ((round = 1; round <= rounds; round++)); do
    if ((round % 2)); then order=(redis fleet); else order=(fleet redis); fi
    for side in "${order[@]}"; do
        log "round $round/$rounds: $side (${seconds}s)"
        load=$(cut -d' ' -f1 /proc/loadavg)
        resp_load "$side" "$work/run.json" --seconds "$seconds" --clients "$clients" \
            --pipeline "$pipeline" --read-ratio 0.9
        printf '%s\t%s\t%s\t%s\n' "$round" "$side" "$(cat "$work/run.json")" "$load" >>"$raw"
    done
done

echo
echo "## Throughput"
echo
echo "\`$bench resp-load --servers S --seconds $seconds --clients $clients --pipeline $pipeline --read-ratio 0.9 --keys $keys --value-size 64\`,"
echo "S = redis alone or the two strata servers; $rounds round(s), alternating (redis first in odd rounds)."
python3 - "$raw" <<'PY'
import json, statistics, sys
runs = [line.split("\t") for line in open(sys.argv[1]).read().splitlines()]
ops = {}
for round_, side, report, _ in runs:
    ops.setdefault(int(round_), {})[side] = json.loads(report)["ops_per_sec"]
ratios = {r: v["fleet"] / v["redis"] for r, v in ops.items()}
print()
print("| round | redis alone ops/s | fleet ops/s | fleet/redis |")
print("|---:|---:|---:|---:|")
for r in sorted(ops):
    print(f"| {r} | {ops[r]['redis']:.0f} | {ops[r]['fleet']:.0f} | {ratios[r]:.2f}x |")
med = {s: statistics.median(v[s] for v in ops.values()) for s in ("redis", "fleet")}
ratio = statistics.median(ratios.values())
print(f"| median | {med['redis']:.0f} | {med['fleet']:.0f} | {ratio:.2f}x |")
print()
print(f"Median fleet/redis ratio: {ratio:.2f}x (target >= 1.5x: {'met' if ratio >= 1.5 else 'missed'}).")
print()
print("Runs in the order run:")
print()
print("| round | side | ops/s | ops | reads | GET misses | writes | errors | seconds | load avg before |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for round_, side, report, load in runs:
    j = json.loads(report)
    print(f"| {round_} | {side} | {j['ops_per_sec']:.0f} | {j['ops']} | {j['reads']} | {j['misses']} "
          f"| {j['writes']} | {j['errors']} | {j['seconds']:.2f} | {load} |")
PY
echo
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
