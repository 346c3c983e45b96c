#!/usr/bin/env python3
"""Reference request hit ratios from libCacheSim (PyPI `libcachesim`, pinned
0.3.5 in scripts/requirements.txt) for an oracleGeneral trace.

Usage:
    python3 scripts/reference_hit_ratios.py TRACE --capacity 1000[,5000,...]
        [--policies lru,arc,wtinylfu,s3fifo,sieve,belady] [--tsv] [--jobs N]

Output (default), one line per (capacity, policy):
    policy=lru capacity=1000 hit_ratio=0.4312
With --tsv: header-less `trace<TAB>policy<TAB>capacity<TAB>hit_ratio`.

Semantics
---------
* Capacity is in bytes in libCacheSim; every record of our traces has
  obj_size = 1, so capacity N == N objects.  The script checks that all sizes
  are 1 (disable with --no-size-check).
* hit_ratio = 1 - libCacheSim "object miss ratio" = hits / requests, counted
  over *all* requests of the trace (cold misses included, no warm-up skipped).
* Every request is a read (get): on a miss the object is admitted (subject to
  the policy's own admission logic) -- libCacheSim `cache_get_base`.

libcachesim 0.3.5 class -> policy, with the DEFAULT parameters used here
(taken from the Python wrappers and the bundled C sources):
  lru      LRU        plain LRU, no parameters.
  arc      ARC        Megiddo & Modha ARC, T1/T2 + ghosts B1/B2, p starts at 0
                      (float p), no parameters.
  wtinylfu WTinyLFU   main-cache=SLRU, window-size=0.01:
                      window LRU = floor(0.01*C), main = C - window, main is
                      SLRU "seg-size=1:4" (probation 20% / protected 80% of main).
                      Frequency sketch: counting Bloom filter (10 hashes,
                      ~14.4 x main_size 32-bit counters, "error 0.001"),
                      all counters halved every 32*main_size *main-cache hits*;
                      window victim admitted iff est(victim) > est(main victim).
  s3fifo   S3FIFO     small-size-ratio=0.10, ghost-size-ratio=0.90,
                      move-to-main-threshold=2 (small S = floor(0.1*C),
                      main M = C - S, ghost = floor(0.9*C) ids).
  sieve    Sieve      SIEVE (1 visited bit, hand moves tail->head), no params.
  belady   Belady     offline MIN using the trace's next_access field
                      (-1 = never).  Demand-paging variant: the missed object is
                      always inserted; the victim is the resident object with the
                      farthest next access (no bypass of the incoming object).

Capacity limits caused by libCacheSim's integer rounding (the script refuses
or warns): WTinyLFU needs C >= 100 (window = floor(0.01*C) must be >= 1,
otherwise nothing is ever admitted -> hit ratio 0); S3FIFO needs C >= 20
(small queue floor(0.1*C) must be >= 2 for a unit object to be insertable).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import libcachesim as lcs

# Our name -> (libcachesim class, minimum capacity for sane behaviour)
POLICIES = {
    "lru": (lcs.LRU, 1),
    "arc": (lcs.ARC, 1),
    "wtinylfu": (lcs.WTinyLFU, 100),
    "s3fifo": (lcs.S3FIFO, 20),
    "sieve": (lcs.Sieve, 1),
    "belady": (lcs.Belady, 1),
}
DEFAULT_POLICIES = "lru,arc,wtinylfu,s3fifo,sieve,belady"
RECORD_SIZE = 24  # u32 time, u64 id, u32 size, i64 next_access


def check_trace(path: str) -> int:
    """Return number of records; verify record size and that obj_size == 1."""
    size = os.path.getsize(path)
    if size == 0 or size % RECORD_SIZE != 0:
        sys.exit(f"{path}: size {size} is not a positive multiple of {RECORD_SIZE} bytes")
    return size // RECORD_SIZE


def check_unit_sizes(path: str) -> None:
    import numpy as np

    dt = np.dtype([("time", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])
    rec = np.memmap(path, dtype=dt, mode="r")
    sizes = rec["size"]
    if not (sizes == 1).all():
        bad = int((sizes != 1).sum())
        sys.exit(f"{path}: {bad} records have obj_size != 1; capacities would be in bytes, "
                 f"not objects (use --no-size-check to run anyway)")
    nxt = rec["next"]
    if (nxt == 0).all():
        print(f"warning: {path}: next_access field is all zero; belady is meaningless",
              file=sys.stderr)


def open_reader(path: str) -> lcs.TraceReader:
    return lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE)


def run_one(path: str, policy: str, capacity: int) -> tuple[str, int, float, float]:
    cls, _ = POLICIES[policy]
    reader = open_reader(path)  # one reader per run: readers are stateful
    cache = cls(cache_size=capacity)
    t0 = time.perf_counter()
    obj_miss, _byte_miss = cache.process_trace(reader)
    elapsed = time.perf_counter() - t0
    # NB: do not call reader.close(): in libcachesim 0.3.5 the wrapper frees the
    # reader again on destruction -> "double free detected" abort.
    return policy, capacity, 1.0 - obj_miss, elapsed


def parse_capacities(s: str) -> list[int]:
    out = []
    for part in s.split(","):
        part = part.strip()
        if not part:
            continue
        v = int(part)
        if v <= 0:
            raise argparse.ArgumentTypeError(f"capacity must be positive: {v}")
        out.append(v)
    if not out:
        raise argparse.ArgumentTypeError("no capacity given")
    return out


def parse_policies(s: str) -> list[str]:
    out = [p.strip().lower() for p in s.split(",") if p.strip()]
    unknown = [p for p in out if p not in POLICIES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown policy {unknown}; choose from {','.join(POLICIES)}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(
        description="libCacheSim reference request hit ratios (unit-size objects)")
    ap.add_argument("trace", help="oracleGeneral binary trace (24-byte records)")
    ap.add_argument("--capacity", required=True, type=parse_capacities,
                    help="cache capacity in objects, comma separated")
    ap.add_argument("--policies", default=DEFAULT_POLICIES, type=parse_policies,
                    help=f"comma separated subset of {DEFAULT_POLICIES}")
    ap.add_argument("--tsv", action="store_true",
                    help="print trace<TAB>policy<TAB>capacity<TAB>hit_ratio")
    ap.add_argument("--jobs", type=int, default=1,
                    help="parallel simulations (threads; libCacheSim releases the GIL)")
    ap.add_argument("--timing", action="store_true",
                    help="print seconds per simulation to stderr")
    ap.add_argument("--no-size-check", action="store_true",
                    help="skip the obj_size == 1 check")
    args = ap.parse_args()

    n_req = check_trace(args.trace)
    if not args.no_size_check:
        check_unit_sizes(args.trace)

    tasks = []
    for cap in args.capacity:
        for pol in args.policies:
            min_cap = POLICIES[pol][1]
            if cap < min_cap:
                print(f"warning: skipping policy={pol} capacity={cap}: libCacheSim's "
                      f"{POLICIES[pol][0].__name__} needs capacity >= {min_cap}",
                      file=sys.stderr)
                continue
            tasks.append((pol, cap))

    trace_name = os.path.basename(args.trace)
    t_start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        futures = [ex.submit(run_one, args.trace, pol, cap) for pol, cap in tasks]
        for fut in futures:  # preserves (capacity, policy) order
            pol, cap, hr, elapsed = fut.result()
            if args.tsv:
                print(f"{trace_name}\t{pol}\t{cap}\t{hr:.4f}", flush=True)
            else:
                print(f"policy={pol} capacity={cap} hit_ratio={hr:.4f}", flush=True)
            if args.timing:
                print(f"timing: policy={pol} capacity={cap} requests={n_req} "
                      f"seconds={elapsed:.2f}", file=sys.stderr)
    if args.timing:
        print(f"timing: total wall seconds={time.perf_counter() - t_start:.2f}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
