"""Curation throughput and peak memory vs a plain cellxgene_census.get_anndata of the same query.

    .venv/bin/python benchmarks/bench_curation.py [--replicates 10 40]

Builds mirrors with N SYNTHETIC thinned copies of every dataset (benchmarks/work/, reused), then
for each size runs, in fresh processes: `heldout.curation.curate` of a card selecting every mouse
cell (streams X in 25k-cell blocks to the h5ad, validates, fingerprints) and plain
`get_anndata` of the same filter with cellxgene_census' default context, with and without writing
the h5ad. Prints one JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from _measure import run_step

WORK = Path(__file__).resolve().parent / "work"
REPO = Path(__file__).resolve().parents[1]
FILTER = "tissue == 'brain' and is_primary_data == True"

CARD = f"""schema_version: 1
name: bench-mouse
description: every mouse cell of the benchmark mirror
census: {{source: mirror, version: "2025-11-08", organism: mus_musculus, obs_value_filter: "tissue == 'brain'"}}
labels: [cell_type]
license: BSD-3-Clause
citation: benchmark
split: {{fractions: {{test: 1.0}}}}
"""


def mirror(replicates: int) -> Path:
    root = WORK / f"mirror-x{replicates}"
    if not (root / "release.json").exists():
        from heldout.mirror.build import build_mirror

        shutil.rmtree(root, ignore_errors=True)
        build_mirror(root, replicate=replicates, write_h5ads=False, sources=["mouse-brain-10k"])
    return root


def project(root: Path) -> Path:
    proj = WORK / f"project-{root.name}"
    shutil.rmtree(proj, ignore_errors=True)
    (proj / "registry" / "datasets").mkdir(parents=True)
    (proj / "registry" / "datasets" / "bench-mouse.yaml").write_text(CARD)
    shutil.copytree(REPO / "schemas", proj / "schemas")
    return proj


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicates", type=int, nargs="+", default=[10, 40])
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    for n in args.replicates:
        root = mirror(n)
        proj = project(root)
        uri = root / "cell-census" / "2025-11-08" / "soma"
        curate = run_step(f"""
import time
from heldout.curation import curate
from heldout.project import Project
t = time.perf_counter()
r = curate("bench-mouse", project=Project(__import__("pathlib").Path({str(proj)!r})), mirror_root={str(root)!r},
           progress=False)
RESULT = {{"step": "heldout curate", "cells": r.lock.n_cells, "seconds": round(time.perf_counter() - t, 2)}}
""")
        plain = run_step(f"""
import time, cellxgene_census
t = time.perf_counter()
with cellxgene_census.open_soma(uri={str(uri)!r}) as c:
    a = cellxgene_census.get_anndata(c, "Mus musculus", obs_value_filter={FILTER!r})
read = time.perf_counter() - t
a.write_h5ad({str(WORK / 'plain.h5ad')!r})
RESULT = {{"step": "get_anndata (+ write_h5ad)", "cells": a.n_obs, "seconds": round(read, 2),
          "seconds_with_write": round(time.perf_counter() - t, 2)}}
""")
        for row in (curate, plain):
            row["replicates"] = n
            row["cells_per_s"] = round(row["cells"] / row["seconds"])
            print(json.dumps(row))
        print(json.dumps({"replicates": n, "time_ratio_curate_vs_get_anndata": round(curate["seconds"] / plain["seconds"], 2),
                          "time_ratio_vs_get_anndata_plus_write": round(curate["seconds"] / plain["seconds_with_write"], 2)}))


if __name__ == "__main__":
    main()
