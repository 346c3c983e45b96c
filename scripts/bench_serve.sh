#!/usr/bin/env bash
# `strata serve` against redis-server 7, side by side on this machine (the issue's targets):
#   - throughput: redis-benchmark -t set,get -r 100000 -d 64 -c 50, at -P 1 and -P 16, the two
#     servers alternating in each round (redis first in odd rounds, strata first in even ones),
#     medians of --rounds; target strata/redis >= 1.0x at P1 and >= 1.3x at P16;
#   - memory: resident memory (VmRSS) per key after loading --keys keys `key:%08d` with 64-byte
#     values into a fresh server; target strata/redis <= 0.7x.
#
#   scripts/bench_serve.sh [--rounds 3] [--requests N] [--requests-p16 N] [--keys 1000000]
#                          [--skip-throughput] [--skip-memory]
#
#   --requests N       requests per test at -P 1 (default 200000)
#   --requests-p16 N   requests per test at -P 16 (default 10 x --requests)
#
# Environment (not STRATA_*: strata reads every STRATA_* variable as configuration):
#   SERVE_CMD      the strata command, run as `$SERVE_CMD --resp-addr A --http-addr B --config F`
#                   (split on spaces; default `target/release/strata serve`, built with
#                   `cargo build --release -p strata-server` when missing). SERVE_CMD=redis uses
#                   a second redis-server as a stand-in for strata (to test this script).
#   SERVE_MAX_BYTES  strata's memory budget, written to the temporary config (default 2GiB).
#   BENCH_TIMEOUT   seconds before one redis-benchmark run is abandoned (default 600).
#
# Starts its own servers on free ports of 127.0.0.1 (never touches an existing Redis), kills them
# on exit. Markdown report on stdout, progress on stderr. Needs redis-server, redis-cli,
# redis-benchmark and python3.
set -euo pipefail

rounds=3
requests=200000
requests_p16=
keys=1000000
do_throughput=1
do_memory=1

usage() { sed -n '9,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=${2:?}; shift 2 ;;
        --requests) requests=${2:?}; shift 2 ;;
        --requests-p16) requests_p16=${2:?}; shift 2 ;;
        --keys) keys=${2:?}; shift 2 ;;
        --skip-throughput) do_throughput=0; shift ;;
        --skip-memory) do_memory=0; shift ;;
        -h|--help) usage ;;
        *) echo "bench_serve: unknown argument: $1" >&2; usage ;;
    esac
done
for v in "$rounds" "$requests" "$keys" ${requests_p16:+"$requests_p16"}; do
    [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "bench_serve: not a positive number: $v" >&2; exit 2; }
done
requests_p16=${requests_p16:-$((requests * 10))}
bench_timeout=${BENCH_TIMEOUT:-600}

die() { echo "bench_serve: error: $*" >&2; exit 1; }
log() { echo "bench_serve: $*" >&2; }

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
for tool in redis-server redis-cli redis-benchmark python3 timeout; do
    command -v "$tool" >/dev/null || die "$tool not found"
done

# --- the strata command ---------------------------------------------------------------------
stand_in=0
if [ "${SERVE_CMD:-}" = redis ]; then
    stand_in=1
    strata_label="redis-server (stand-in for strata)"
elif [ -n "${SERVE_CMD:-}" ]; then
    read -r -a strata_cmd <<<"$SERVE_CMD"
    strata_label="$SERVE_CMD"
else
    if [ ! -x target/release/strata ]; then
        log "target/release/strata missing: cargo build --release -p strata-server"
        cargo build --release -p strata-server >&2 || die "cargo build failed"
    fi
    strata_cmd=(target/release/strata serve)
    strata_label="target/release/strata serve"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/bench_serve.XXXXXX")
strata_config="$work/strata.toml"
printf 'max_bytes = "%s"\n' "${SERVE_MAX_BYTES:-2GiB}" >"$strata_config"

# shellcheck source=scripts/servers.sh
source "$root/scripts/servers.sh"
cleanup() {
    stop_all_servers
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server redis|strata: a fresh server on free ports; sets PID[name] and PORT[name].
start_server() {
    local name=$1 port http logf="$work/$1.log"
    port=$(free_port)
    if [ "$name" = redis ] || [ "$stand_in" = 1 ]; then
        redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
            --dir "$work" --daemonize no >"$logf" 2>&1 &
    else
        http=$(free_port)
        while [ "$http" = "$port" ]; do http=$(free_port); done
        "${strata_cmd[@]}" --resp-addr "127.0.0.1:$port" --http-addr "127.0.0.1:$http" \
            --config "$strata_config" >"$logf" 2>&1 &
    fi
    PID[$name]=$!
    PORT[$name]=$port
    await_ping "$name" "$logf"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/${PID[$1]}/status"; }
used_memory() { cli "$1" INFO memory 2>/dev/null | tr -d '\r' | awk -F: '$1 == "used_memory" {print $2}'; }

# --- header ---------------------------------------------------------------------------------
echo "# strata serve vs redis-server"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- host: $(uname -srm), nproc $(nproc), $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
awk '{exit !($1 > 0.5)}' /proc/loadavg && log "warning: load average $(cut -d' ' -f1 /proc/loadavg) at start: other work on this machine will skew the results"
echo "- strata: \`$strata_label\`, git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (dirty tree)')"
if [ "$stand_in" = 0 ]; then
    echo "- strata --version: $(timeout 5 "${strata_cmd[0]}" --version 2>/dev/null | head -n 1 || true)"
fi
echo "- $(redis-server --version)"
echo "- $(redis-benchmark --version)"
echo "- $(redis-cli --version)"

# --- throughput -----------------------------------------------------------------------------
if [ "$do_throughput" = 1 ]; then
    raw="$work/trials.tsv"
    : >"$raw"
    start_server redis
    start_server strata
    echo
    echo "## Throughput"
    echo
    echo "\`redis-benchmark -h 127.0.0.1 -p PORT -t set,get -r 100000 -d 64 -c 50 -P {1,16} -n N -q --csv\`,"
    echo "N = $requests at P1 and $requests_p16 at P16, $rounds rounds alternating (redis first in odd rounds)."
    for p in 1 16; do
        n=$requests
        [ "$p" = 16 ] && n=$requests_p16
        for ((round = 1; round <= rounds; round++)); do
            if ((round % 2)); then order=(redis strata); else order=(strata redis); fi
            for server in "${order[@]}"; do
                out="$work/bench.out"
                log "P$p round $round/$rounds $server (-n $n)"
                load=$(cut -d' ' -f1 /proc/loadavg)
                rc=0
                timeout --foreground "$bench_timeout" redis-benchmark -h 127.0.0.1 -p "${PORT[$server]}" \
                    -t set,get -r 100000 -d 64 -c 50 -P "$p" -n "$n" -q --csv \
                    >"$out" 2>"$work/bench.err" </dev/null || rc=$?
                kill -0 "${PID[$server]}" 2>/dev/null || { tail -n 20 "$work/$server.log" >&2; die "$server died during redis-benchmark (log above)"; }
                [ "$rc" = 0 ] || { cat "$out" "$work/bench.err" >&2; die "redis-benchmark against $server failed (exit $rc$([ "$rc" = 124 ] && echo ", timed out after ${bench_timeout}s"))"; }
                if grep -q "^Error" "$out" "$work/bench.err"; then
                    grep -h "^Error" "$out" "$work/bench.err" | head -5 >&2
                    die "$server answered redis-benchmark with errors (above)"
                fi
                set_rps=$(awk -F'"' '$2 == "SET" {print $4}' "$out")
                get_rps=$(awk -F'"' '$2 == "GET" {print $4}' "$out")
                [ -n "$set_rps" ] && [ -n "$get_rps" ] || { cat "$out" "$work/bench.err" >&2; die "no SET/GET rps in redis-benchmark's output against $server"; }
                printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$p" "$round" "$server" "$set_rps" "$get_rps" "$load" >>"$raw"
            done
        done
    done
    dbsize_redis=$(cli redis DBSIZE)
    dbsize_strata=$(cli strata DBSIZE)
    stop_server redis
    stop_server strata
    python3 - "$raw" <<'PY'
import statistics, sys
trials = [line.split("\t") for line in open(sys.argv[1]).read().splitlines()]
target = {"1": 1.0, "16": 1.3}
print()
print("| test | P | redis rps (median) | strata rps (median) | strata/redis | per-round ratios | target |")
print("|---|---:|---:|---:|---:|---|---|")
for p in ("1", "16"):
    for col, test in ((3, "SET"), (4, "GET")):
        rows = {s: {int(t[1]): float(t[col]) for t in trials if t[0] == p and t[2] == s} for s in ("redis", "strata")}
        med = {s: statistics.median(v.values()) for s, v in rows.items()}
        ratio = med["strata"] / med["redis"]
        per_round = ", ".join(f"{rows['strata'][r] / rows['redis'][r]:.2f}" for r in sorted(rows["redis"]))
        ok = "met" if ratio >= target[p] else "missed"
        print(f"| {test} | {p} | {med['redis']:.0f} | {med['strata']:.0f} | {ratio:.2f}x | {per_round} | >= {target[p]}x ({ok}) |")
print()
print("Raw trials (requests/s, in the order run):")
print()
print("| P | round | server | SET | GET | load avg before |")
print("|---:|---:|---|---:|---:|---:|")
for t in trials:
    print(f"| {t[0]} | {t[1]} | {t[2]} | {float(t[3]):.0f} | {float(t[4]):.0f} | {t[5]} |")
PY
    echo
    echo "Keys left after the throughput runs (DBSIZE): redis $dbsize_redis, strata $dbsize_strata."
fi

# --- memory per key -------------------------------------------------------------------------
# RESP SET commands for keys key:%08d (0 <= i < N) with 64-byte values, for redis-cli --pipe.
gen_py='
import sys
n = int(sys.argv[1]); out = sys.stdout.buffer; chunk = []
for i in range(n):
    key = b"key:%08d" % i
    value = (b"%08d" % i) * 8   # 64 bytes, distinct per key
    chunk.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$64\r\n%s\r\n" % (len(key), key, value))
    if len(chunk) == 10000:
        out.write(b"".join(chunk)); chunk = []
out.write(b"".join(chunk))
'
if [ "$do_memory" = 1 ]; then
    mem="$work/memory.tsv"
    : >"$mem"
    for server in redis strata; do
        start_server "$server"
        sleep 1
        before=$(rss_kib "$server")
        used_before=$(used_memory "$server")
        [ "$(cli "$server" DBSIZE)" = 0 ] || die "fresh $server is not empty"
        log "memory: loading $keys keys into $server"
        t0=$(date +%s%N)
        rc=0
        python3 -c "$gen_py" "$keys" | timeout --foreground "$bench_timeout" redis-cli -h 127.0.0.1 -p "${PORT[$server]}" --pipe \
            >"$work/pipe.out" 2>&1 || rc=$?
        t1=$(date +%s%N)
        [ "$rc" = 0 ] || { cat "$work/pipe.out" >&2; die "redis-cli --pipe into $server failed (exit $rc)"; }
        summary=$(tr -d '\r' <"$work/pipe.out" | grep '^errors:' || true)
        [ "$summary" = "errors: 0, replies: $keys" ] || { cat "$work/pipe.out" >&2; die "loading $server: expected 'errors: 0, replies: $keys', got '$summary'"; }
        dbsize=$(cli "$server" DBSIZE)
        [ "$dbsize" = "$keys" ] || die "$server holds $dbsize keys after loading $keys (evictions? strata's budget is ${SERVE_MAX_BYTES:-2GiB})"
        sleep 1
        after=$(rss_kib "$server")
        used_after=$(used_memory "$server")
        hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/${PID[$server]}/status")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$before" "$after" "$hwm" \
            "${used_before:--}" "${used_after:--}" "$(( (t1 - t0) / 1000000 ))" >>"$mem"
        stop_server "$server"
    done
    echo
    echo "## Memory per key"
    echo
    echo "Fresh server each, $keys SETs of \`key:%08d\` -> 64-byte value through \`redis-cli --pipe\`,"
    echo "all $keys keys present (DBSIZE) afterwards; per key = (VmRSS after - VmRSS before) / keys."
    python3 - "$mem" "$keys" <<'PY'
import sys
keys = int(sys.argv[2])
rows = {r[0]: r for r in (line.split("\t") for line in open(sys.argv[1]).read().splitlines())}
def per_key(r):
    return (int(r[2]) - int(r[1])) * 1024 / keys
def used(r):
    return f"{(int(r[5]) - int(r[4])) / keys:.1f}" if r[4] != "-" and r[5] != "-" else "-"
print()
print("| server | VmRSS before | VmRSS after | VmHWM | RSS bytes/key | used_memory bytes/key | load time |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name in ("redis", "strata"):
    r = rows[name]
    print(f"| {name} | {int(r[1]) / 1024:.1f} MiB | {int(r[2]) / 1024:.1f} MiB | {int(r[3]) / 1024:.1f} MiB "
          f"| {per_key(r):.1f} | {used(r)} | {int(r[6]) / 1000:.1f} s |")
ratio = per_key(rows["strata"]) / per_key(rows["redis"])
print()
print(f"strata/redis resident bytes per key: {ratio:.2f}x (target <= 0.7x: {'met' if ratio <= 0.7 else 'missed'})")
PY
fi
echo
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
