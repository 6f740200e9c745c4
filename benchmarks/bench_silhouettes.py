"""The scIB silhouettes (issue 27): heldout's blockwise BLAS pass against scib-metrics 0.5.10's functions.

    .venv/bin/python benchmarks/bench_silhouettes.py [--cells 20000 100000] [--scib-up-to 20000]

A Gaussian-mixture embedding (30 dimensions, 12 labels, 4 batches; float32, seeded) stands in for a
model's embedding: the silhouettes' cost depends on the cell count, the dimension and the label
count only. Each step is a fresh process:

1. scib-metrics: ``silhouette_label``, ``isolated_labels`` and ``bras`` as scib-metrics' Benchmarker
   calls them (three jitted pairwise passes; run up to ``--scib-up-to`` cells, it is O(n^2));
2. heldout: ``label_silhouettes`` (one fused pass for both label silhouettes) and ``bras`` (linear);
3. the BLAS floor: the matrix products of one Euclidean pass alone (``n x n x d`` and ``n x n x
   labels``, block by block), the least any exact method built on them can take.

The largest difference between 1 and 2 is reported wherever both ran.
"""

from __future__ import annotations

import argparse

from _measure import run_step

DATA = """
import numpy as np
rng = np.random.default_rng(0)
n = {n}
labels = rng.integers(0, 12, n).astype(str)
batches = rng.integers(0, 4, n).astype(str)
centres = rng.normal(0, 3, (12, 30))
x = (centres[labels.astype(int)] + rng.normal(0, 1, (n, 30))).astype(np.float32)
"""

SCIB = DATA + """
import time, warnings, scib_metrics
warnings.simplefilter("ignore")
t = time.perf_counter()
values = [float(scib_metrics.silhouette_label(x, labels)), float(scib_metrics.isolated_labels(x, labels, batches)),
          float(scib_metrics.bras(x, labels, batches))]
RESULT = {{"wall_s": round(time.perf_counter() - t, 2), "values": values}}
"""

HELDOUT = DATA + """
import time
from heldout.evaluation import silhouettes as s
t = time.perf_counter()
per_cell = s.label_silhouettes(x, labels)
values = [s.silhouette_label(per_cell), s.isolated_labels(per_cell, labels, batches), s.bras(x, labels, batches)]
RESULT = {{"wall_s": round(time.perf_counter() - t, 2), "values": values}}
"""

FLOOR = DATA + """
import time
xd = x.astype(np.float64)
onehot = np.zeros((n, 12)); onehot[np.arange(n), labels.astype(int)] = 1
rows = max(1, 128 * 2**20 // (8 * n))  # 128 MiB row blocks: BLAS at full speed on every core
t = time.perf_counter()
for start in range(0, n, rows):
    gram = xd[start:start + rows] @ xd.T
    gram @ onehot
RESULT = {{"wall_s": round(time.perf_counter() - t, 2)}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--scib-up-to", type=int, default=20_000)
    args = parser.parse_args()
    for n in args.cells:
        ours = run_step(HELDOUT.format(n=n))
        floor = run_step(FLOOR.format(n=n))
        line = (f"{n:>8,} cells: heldout {ours['wall_s']:7.1f} s, {ours['peak_rss_mib']:6.0f} MiB;"
                f" BLAS floor of one pass {floor['wall_s']:6.1f} s")
        if n <= args.scib_up_to:
            theirs = run_step(SCIB.format(n=n))
            diff = max(abs(a - b) for a, b in zip(ours["values"], theirs["values"], strict=True))
            line += (f"; scib-metrics {theirs['wall_s']:7.1f} s, {theirs['peak_rss_mib']:6.0f} MiB"
                     f" ({theirs['wall_s'] / ours['wall_s']:.1f}x); largest difference {diff:.1e}")
        print(line, flush=True)


if __name__ == "__main__":
    main()
