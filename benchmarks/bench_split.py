"""How long a donor-disjoint stratified split of a 1M-cell obs takes.

    .venv/bin/python benchmarks/bench_split.py [--cells 1000000]

The obs is SYNTHETIC (ids and labels only, no counts): 1M cells in 100 datasets with 20 donors
each (2,000 donor groups of uneven size), 30 cell-type labels with a skewed frequency, 2% of
cells with donor 'unknown'. Times `heldout.splits.assign_splits` (StratifiedGroupKFold, and
GroupKFold without labels) in fresh processes.
"""

from __future__ import annotations

import argparse
import json

from _measure import run_step

SETUP = """
import time, numpy as np
rng = np.random.default_rng(0)
n = {cells}
dataset = rng.integers(0, 100, n)
donor = np.where(rng.random(n) < 0.02, "unknown", (rng.zipf(1.5, n) % 20).astype(str))
groups = (dataset.astype(str).astype(object) + "::" + donor.astype(object))
labels = (rng.zipf(1.3, n) % 30).astype(str)
from heldout.splits import assign_splits
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cells", type=int, default=1_000_000)
    args = parser.parse_args()
    for stratify in (True, False):
        result = run_step(SETUP.format(cells=args.cells) + f"""
t = time.perf_counter()
split, engine = assign_splits(groups, labels if {stratify} else None, {{"train": 0.6, "validation": 0.2, "test": 0.2}}, 0)
RESULT = {{"cells": n, "groups": int(len(np.unique(groups))), "engine": engine,
          "seconds": round(time.perf_counter() - t, 2),
          "fractions": {{s: round(float(np.mean(split == s)), 3) for s in ("train", "validation", "test")}}}}
""")
        print(json.dumps(result))


if __name__ == "__main__":
    main()
