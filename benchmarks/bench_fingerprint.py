"""Cell-content (fingerprint) overlap on >= 1M cells vs a plain pandas merge on ids.

    .venv/bin/python benchmarks/bench_fingerprint.py [--replicates 100]

Uses a mirror whose mouse experiment holds the real 10k cells plus N SYNTHETIC thinned copies
(N=100: 1,010,000 cells). The eval set is the fingerprints of the real 10k cells plus 1,000 of
copy 1 (which the copy's counts must reproduce exactly). Steps, each in a fresh process:
- `scan_query_for_fingerprints` over every mouse cell (stream X, fingerprint, match): what a
  content audit does;
- the id-level check a plain pipeline would do: read obs (dataset_id, donor_id, observation_joinid)
  and `pandas.merge` with the eval ids.
"""

from __future__ import annotations

import argparse
import json
import shutil

from _measure import run_step
from bench_curation import WORK


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicates", type=int, default=100)
    args = parser.parse_args()
    root = WORK / f"mirror-x{args.replicates}"
    if not (root / "release.json").exists():
        from heldout.mirror.build import build_mirror

        shutil.rmtree(root, ignore_errors=True)
        build_mirror(root, replicate=args.replicates, write_h5ads=False, sources=["mouse-brain-10k"])
    uri = root / "cell-census" / "2025-11-08" / "soma" / "census_data" / "mus_musculus"
    prepare = f"""
import time, numpy as np, tiledbsoma as soma
from heldout.census import streaming_context
from heldout.leakage.fingerprint import cell_fingerprints, gene_keys
exp = soma.Experiment.open({str(uri)!r}, context=streaming_context())
var = exp.ms["RNA"].var.read(column_names=["soma_joinid", "feature_id"]).concat().to_pandas()
keys = gene_keys(var["feature_id"].to_numpy())
with exp.axis_query("RNA", obs_query=soma.AxisQuery(coords=(slice(0, 10_999),))) as q:
    eval_obs = q.obs(column_names=["dataset_id", "donor_id", "observation_joinid"]).concat().to_pandas()
    eval_fps = np.concatenate([cell_fingerprints(c, keys) for c, _ in q.X("raw").blockwise(axis=0, size=50_000).scipy()])
"""
    content = run_step(prepare + """
from heldout.leakage.evidence import scan_query_for_fingerprints
t = time.perf_counter()
with exp.axis_query("RNA") as q:
    n = q.n_obs
    found = scan_query_for_fingerprints(q, eval_fps)
s = time.perf_counter() - t
RESULT = {"step": "fingerprint scan (content)", "corpus_cells": n, "eval_cells": len(eval_fps),
          "eval_cells_found": int(found.sum()), "seconds": round(s, 2), "cells_per_s": round(n / s)}
""")
    ids = run_step(prepare + """
import pandas as pd
t = time.perf_counter()
obs = exp.obs.read(column_names=["dataset_id", "donor_id", "observation_joinid"]).concat().to_pandas()
hits = obs.merge(eval_obs, on=["observation_joinid"])
donors = obs[["dataset_id", "donor_id"]].drop_duplicates().merge(eval_obs[["dataset_id", "donor_id"]].drop_duplicates())
s = time.perf_counter() - t
RESULT = {"step": "pandas merge on ids", "corpus_cells": len(obs), "eval_cells": len(eval_obs),
          "eval_cells_found": int(len(hits)), "shared_donors": int(len(donors)), "seconds": round(s, 2),
          "cells_per_s": round(len(obs) / s)}
""")
    for row in (content, ids):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
