#!/usr/bin/env bash
# The comparison both hit-ratio suites end with: for every trace in DIR/suite.tsv (file,
# description, capacities), libCacheSim's reference policies and Belady (computed once, cached
# in DIR/reference.tsv), then strata, moka and quick_cache (or IMPLS) replayed read-through,
# and the table docs/benchmarks.md shows.
#   scripts/compare_suite.sh DIR      (called by hit_ratio_suite.sh and real_trace_suite.sh)
set -euo pipefail
dir=${1:?usage: scripts/compare_suite.sh DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
bench="$root/target/release/strata-bench"
[ -x "$bench" ] || { echo "build first: cargo build --release" >&2; exit 1; }
if [ ! -s "$dir/reference.tsv" ]; then
    tail -n +2 "$dir/suite.tsv" | while IFS=$'\t' read -r file _ caps; do
        python3 "$root/scripts/reference_hit_ratios.py" "$dir/$file" --capacity "$caps" --tsv
    done > "$dir/reference.tsv.part"
    mv "$dir/reference.tsv.part" "$dir/reference.tsv"
fi
tail -n +2 "$dir/suite.tsv" | while IFS=$'\t' read -r file _ caps; do
    echo "# trace $file"
    "$bench" replay "$dir/$file" --capacity "$caps" --impl "${IMPLS:-strata,moka,quick_cache}" | grep '^impl='
done > "$dir/replay.txt"
python3 "$root/scripts/suite_table.py" "$dir/reference.tsv" "$dir/replay.txt"
