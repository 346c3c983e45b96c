#!/usr/bin/env bash
# The real-trace suite: every trace in TRACES (text, one key a line, .txt.xz as in
# ../shared/traces) at about 0.1%, 1% and 10% of its distinct keys (never below 128 entries),
# with libCacheSim's reference policies and Belady (computed once, cached in DIR/reference.tsv)
# beside strata, moka and quick_cache, all replaying the converted files in DIR
# (scripts/compare_suite.sh). Prints the table docs/benchmarks.md shows.
#   scripts/real_trace_suite.sh TRACES DIR   (needs: cargo build --release; pip install -r scripts/requirements.txt)
set -euo pipefail
traces=${1:?usage: scripts/real_trace_suite.sh TRACES DIR}
dir=${2:?usage: scripts/real_trace_suite.sh TRACES DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
bench="$root/target/release/strata-bench"
[ -x "$bench" ] || { echo "build first: cargo build --release" >&2; exit 1; }
mkdir -p "$dir"

# DIR/suite.tsv: file, capacities (as hit_ratio_suite.sh's).
if [ ! -s "$dir/suite.tsv" ]; then
    printf 'file\tdistinct\tcapacities\n' > "$dir/suite.tsv.part"
    for t in "$traces"/*.txt.xz; do
        name=$(basename "$t" .txt.xz)
        distinct=$("$bench" convert "$t" "$dir/$name.oracleGeneral" | sed -n 's/.*distinct=\([0-9]*\).*/\1/p')
        caps=$(for per_mille in 1 10 100; do
            c=$(( distinct * per_mille / 1000 )); echo $(( c < 128 ? 128 : c ))
        done | sort -nu | paste -sd, -)
        printf '%s\t%s\t%s\n' "$name.oracleGeneral" "$distinct" "$caps" >> "$dir/suite.tsv.part"
    done
    mv "$dir/suite.tsv.part" "$dir/suite.tsv"
fi
exec "$root/scripts/compare_suite.sh" "$dir"
