#!/usr/bin/env bash
# The hit-ratio suite: generates the synthetic traces (once), computes libCacheSim's reference
# policies on them (once, cached in DIR/reference.tsv), replays strata, moka and quick_cache, and
# prints the comparison table that docs/benchmarks.md shows.
#   scripts/hit_ratio_suite.sh DIR      (needs: cargo build --release; pip install -r scripts/requirements.txt)
set -euo pipefail
dir=${1:?usage: scripts/hit_ratio_suite.sh DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
bench="$root/target/release/strata-bench"
[ -x "$bench" ] || { echo "build first: cargo build --release" >&2; exit 1; }
[ -f "$dir/suite.tsv" ] || "$bench" gen --out "$dir" >&2
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
