#!/usr/bin/env bash
# Fuzzes strata's parsers with libFuzzer, on the stable toolchain: every target for SECONDS
# seconds each (default 60), or the targets named.
#
#   scripts/fuzz.sh [SECONDS] [TARGET ...]
#
# Targets (their docs say what each checks):
#   decode    crates/strata-server/fuzz  the RESP request decoder, fed in any chunking
#   commands  crates/strata-server/fuzz  commands read in any chunking, run against a small
#                                        store: no panic, the store within its budget
#   config    crates/strata/fuzz         the TOML configuration and STRATA_* environment
#
# Each target is built the way cargo-fuzz builds it (SanitizerCoverage instrumentation,
# `--cfg fuzzing`, debug assertions and overflow checks), without AddressSanitizer, so no
# nightly toolchain or cargo-fuzz is needed; with them, `cargo fuzz run TARGET` in the fuzz
# directory works too. The corpus of each target is kept in its fuzz directory's corpus/
# (git-ignored), so later runs start where earlier ones stopped. A crash or a failed check
# stops the run with a non-zero status and leaves the input in artifacts/TARGET/; replay it
# with the built binary: `target/x86_64-unknown-linux-gnu/release/TARGET artifacts/TARGET/FILE`
# (libFuzzer's full output is in artifacts/TARGET.log).
set -euo pipefail

seconds="${1:-60}"
case "$seconds" in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS] [TARGET ...]" >&2
    exit 2
    ;;
esac
shift || true

root="$(cd "$(dirname "$0")/.." && pwd)"
declare -A dir=(
    [decode]="$root/crates/strata-server/fuzz"
    [commands]="$root/crates/strata-server/fuzz"
    [config]="$root/crates/strata/fuzz"
)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(decode commands config)
fi

host="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks"

for target in "${targets[@]}"; do
    fuzz="${dir[$target]:-}"
    if [ -z "$fuzz" ]; then
        echo "fuzz: no target '$target' (targets: ${!dir[*]})" >&2
        exit 2
    fi
    echo "== fuzz $target (${seconds}s)"
    # --target keeps the instrumentation off build scripts, as cargo-fuzz does.
    (cd "$fuzz" && cargo build --quiet --release --target "$host" --bin "$target")
    mkdir -p "$fuzz/corpus/$target" "$fuzz/artifacts/$target"
    dict=()
    if [ -f "$fuzz/$target.dict" ]; then
        dict=("-dict=$fuzz/$target.dict")
    fi
    log="$fuzz/artifacts/$target.log"
    status=0
    "$fuzz/target/$host/release/$target" "${dict[@]}" \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$fuzz/artifacts/$target/" \
        "$fuzz/corpus/$target" >"$log" 2>&1 || status=$?
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done)' "$log" || true
    if [ "$status" -ne 0 ]; then
        # A crash, a failed check, a leak or the memory limit: show what libFuzzer said.
        tail -n 40 "$log" >&2
        echo "fuzz: $target failed (status $status); the input is in $fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
