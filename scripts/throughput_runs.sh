#!/usr/bin/env bash
# The throughput target, measured as docs/benchmarks.md reports it: RUNS complete runs of
# strata-bench throughput (each alternating strata, moka and quick_cache in rounds on the same
# keys and hasher), then the median of each implementation and of strata's ratios to the others.
#   scripts/throughput_runs.sh [CAPACITY] [RUNS]      (needs: cargo build --release)
set -euo pipefail
capacity=${1:-100000}
runs=${2:-5}
bench="$(cd "$(dirname "$0")/.." && pwd)/target/release/strata-bench"
for _ in $(seq "$runs"); do
    "$bench" throughput --impl strata,moka,quick_cache --threads 2 --keys 1000000 \
        --capacity "$capacity" --zipf 1.0 --seconds 10 --rounds 5 2>/dev/null | tr '\n' ' '
    echo
done | python3 -c '
import re, statistics, sys
runs = [dict(re.findall(r"impl=(\S+) mops=([0-9.]+)", line)) for line in sys.stdin if "impl=" in line]
mops = {k: [float(r[k]) for r in runs] for k in runs[0]}
for name, values in mops.items():
    print(f"impl={name} median_mops={statistics.median(values):.2f} runs=" + ",".join(f"{v:.2f}" for v in values))
for other in ("quick_cache", "moka"):
    ratios = [float(r["strata"]) / float(r[other]) for r in runs]
    print(f"strata/{other} median_ratio={statistics.median(ratios):.2f} runs=" + ",".join(f"{v:.2f}" for v in ratios))
'
