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
exec "$root/scripts/compare_suite.sh" "$dir"
