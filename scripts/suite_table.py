#!/usr/bin/env python3
"""Joins reference hit ratios (reference_hit_ratios.py --tsv) with strata-bench replay lines
into one markdown table: per trace and capacity, each implementation, the best of the five
reference policies, strata's gap to it (target: >= -0.01) and to Belady's optimum; then, per
implementation, the rows it meets and its mean gap to Belady.

Usage: suite_table.py REFERENCE_TSV REPLAY_TXT
  REPLAY_TXT holds lines `# trace FILE` followed by `impl=NAME capacity=N hit_ratio=X` lines.
"""
import re
import sys
from collections import defaultdict

POLICIES = ["lru", "arc", "wtinylfu", "s3fifo", "sieve"]


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    ref = defaultdict(dict)  # (trace, cap) -> policy -> ratio
    for line in open(sys.argv[1]):
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 4:
            continue
        trace, policy, cap, ratio = parts
        trace = trace.rsplit("/", 1)[-1].removesuffix(".oracleGeneral")
        ref[(trace, int(cap))][policy] = float(ratio)
    ours = defaultdict(dict)  # (trace, cap) -> impl -> ratio
    impls = []
    trace = None
    for line in open(sys.argv[2]):
        if line.startswith("# trace "):
            trace = line.split()[2].rsplit("/", 1)[-1].removesuffix(".oracleGeneral")
            continue
        m = re.match(r"impl=(\S+) capacity=(\d+) hit_ratio=([0-9.]+)", line)
        if m and trace:
            name = m.group(1)
            if name not in impls:
                impls.append(name)
            ours[(trace, int(m.group(2)))][name] = float(m.group(3))
    head = ["trace", "capacity"] + impls + POLICIES + ["best", "strata - best", "belady", "strata - belady"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    met = total = 0
    belady_gaps = defaultdict(list)  # impl -> its gap to Belady on each row
    impl_met = defaultdict(int)  # impl -> rows within 0.01 of the best reference policy
    for key in sorted(ours, key=lambda k: (list(dict.fromkeys(t for t, _ in ours)).index(k[0]), k[1])):
        r = ref.get(key, {})
        best = max((r[p] for p in POLICIES if p in r), default=float("nan"))
        s = ours[key].get("strata", float("nan"))
        gap = s - best
        total += 1
        met += gap >= -0.01
        for i in impls:
            if i in ours[key] and "belady" in r:
                belady_gaps[i].append(r["belady"] - ours[key][i])
            impl_met[i] += ours[key].get(i, float("nan")) - best >= -0.01
        row = [key[0], str(key[1])]
        row += [f"{ours[key].get(i, float('nan')):.4f}" for i in impls]
        row += [f"{r[p]:.4f}" if p in r else "" for p in POLICIES]
        row += [f"{best:.4f}", f"{gap:+.4f}", f"{r.get('belady', float('nan')):.4f}",
                f"{s - r.get('belady', float('nan')):+.4f}"]
        print("| " + " | ".join(row) + " |")
    print(f"\nrows within 0.01 of the best reference policy: {met} of {total}")
    print("\n| implementation | rows within 0.01 of the best | mean gap to Belady |")
    print("|---|---|---|")
    for i in impls:
        gaps = belady_gaps[i]
        mean = sum(gaps) / len(gaps) if gaps else float("nan")
        print(f"| {i} | {impl_met[i]} of {total} | {mean:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
