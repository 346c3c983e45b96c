#!/usr/bin/env python3
"""Write a small synthetic trace in libCacheSim *oracleGeneral* binary format.

Only meant for testing ``reference_hit_ratios.py`` until the Rust trace
generator exists.

Format (no header, little endian, 24 bytes per record):
    u32 clock_time   -- here: request index + 1 (1-based)
    u64 obj_id       -- here: key rank + 1 (1..K); rank 1 = most popular for zipf
    u32 obj_size     -- always 1 (unit-size objects)
    i64 next_access  -- clock_time (= 1-based request number) of the next
                        request to the same obj_id, or -1 if there is none.
                        This is the same convention libCacheSim's own
                        oracleGeneral converter uses ("reference count of the
                        next access, starting with 1").

Kinds:
    zipf : i.i.d. requests, P(key rank r) ~ 1 / r**alpha, r = 1..K
    loop : cyclic scan 1, 2, ..., K, 1, 2, ... (alpha ignored)

Example:
    python3 scripts/gen_test_trace.py /tmp/zipf.oracleGeneral --kind zipf \
        --n 2000000 --keys 100000 --alpha 1.0 --seed 42
"""
import argparse
import sys

import numpy as np

RECORD = np.dtype(
    [("time", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")]
)
assert RECORD.itemsize == 24


def zipf_ids(n: int, keys: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    ranks = np.arange(1, keys + 1, dtype=np.float64)
    weights = ranks ** (-alpha)
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    u = rng.random(n)
    idx = np.searchsorted(cdf, u, side="right")
    np.minimum(idx, keys - 1, out=idx)  # guard against u == cdf[-1] rounding
    return idx.astype(np.uint64) + 1


def loop_ids(n: int, keys: int) -> np.ndarray:
    return (np.arange(n, dtype=np.uint64) % np.uint64(keys)) + 1


def next_access(ids: np.ndarray) -> np.ndarray:
    """1-based index of the next request to the same id, -1 if none."""
    n = ids.shape[0]
    order = np.lexsort((np.arange(n), ids))  # group by id, stable in time
    nxt = np.full(n, -1, dtype=np.int64)
    same = ids[order[:-1]] == ids[order[1:]]
    nxt[order[:-1][same]] = order[1:][same].astype(np.int64) + 1
    return nxt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="output file (oracleGeneral binary)")
    ap.add_argument("--kind", choices=["zipf", "loop"], required=True)
    ap.add_argument("--n", type=int, required=True, help="number of requests")
    ap.add_argument("--keys", type=int, required=True, help="number of distinct keys K")
    ap.add_argument("--alpha", type=float, default=1.0, help="zipf exponent (zipf only)")
    ap.add_argument("--seed", type=int, default=42, help="RNG seed (zipf only)")
    args = ap.parse_args()

    if args.n <= 0 or args.keys <= 0:
        ap.error("--n and --keys must be positive")
    if args.n >= 2**32:
        ap.error("--n must fit in u32 clock_time")

    if args.kind == "zipf":
        ids = zipf_ids(args.n, args.keys, args.alpha, np.random.default_rng(args.seed))
    else:
        ids = loop_ids(args.n, args.keys)

    rec = np.empty(args.n, dtype=RECORD)
    rec["time"] = np.arange(1, args.n + 1, dtype=np.uint32)
    rec["id"] = ids
    rec["size"] = 1
    rec["next"] = next_access(ids)
    rec.tofile(args.out)
    print(f"wrote {args.n} requests ({len(np.unique(ids))} distinct ids) to {args.out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
