"""Validation's share of curation at 1M cells: the whole `heldout curate`, and validate_tables alone.

    .venv/bin/python benchmarks/bench_validation.py [--replicates 100]

Uses the mouse mirror with N SYNTHETIC thinned copies (N=100: 1,010,000 cells; built by
bench_corpus.py / bench_curation.py into benchmarks/work/, reused). Step 1 curates a card selecting
every cell (streaming, validation, fingerprints). Step 2, in a fresh process, reads the curated
h5ad's obs and var and times `validate_tables` on them with the X summary (every ontology check,
each distinct value once, the cross-column rules and GENCODE feature ids), then the X summary's
computation by itself (it runs inside curation's streaming loop, on a worker thread).
"""

from __future__ import annotations

import argparse
import json

from _measure import run_step
from bench_curation import WORK, project

CURATE = """
import time
from pathlib import Path
from heldout.curation import curate
from heldout.project import Project
t = time.perf_counter()
r = curate("bench-mouse", project=Project(Path({proj!r})), mirror_root={mirror!r}, progress=False)
RESULT = {{"step": "heldout curate (all cells)", "cells": r.lock.n_cells, "seconds": round(time.perf_counter() - t, 2)}}
"""

VALIDATE = """
import time, anndata as ad, pandas as pd, scipy.sparse as sp
from heldout.validation import validate_tables, x_cell_summary
a = ad.read_h5ad({h5ad!r}, backed="r")
obs, var = a.obs, a.var
t = time.perf_counter()
parts = [x_cell_summary(sp.csr_matrix(a.X[s:s + 50_000]), s) for s in range(0, a.n_obs, 50_000)]
summary = pd.concat(parts)
x_s = time.perf_counter() - t
t = time.perf_counter()
report = validate_tables("bench", obs, var, summary, (a.n_obs, a.n_vars), schemas_dir={schemas!r},
                         organism="mus_musculus")
v_s = time.perf_counter() - t
RESULT = {{"step": "validate_tables (obs, var, X summary)", "cells": a.n_obs, "ok": report.ok,
          "failures": len(report.failures), "seconds": round(v_s, 2),
          "x_summary_seconds_incl_read": round(x_s, 2)}}
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicates", type=int, default=100)
    args = parser.parse_args()
    mirror = WORK / f"mirror-mouse-brain-10k-x{args.replicates}"
    if not (mirror / "release.json").exists():
        from heldout.mirror.build import build_mirror

        build_mirror(mirror, replicate=args.replicates, write_h5ads=False, sources=["mouse-brain-10k"])
    proj = project(mirror)
    curated = run_step(CURATE.format(proj=str(proj), mirror=str(mirror)))
    print(json.dumps(curated), flush=True)
    h5ad = proj / "data" / "curated" / "bench-mouse.h5ad"
    validated = run_step(VALIDATE.format(h5ad=str(h5ad), schemas=str(proj / "schemas")))
    print(json.dumps(validated), flush=True)
    share = validated["seconds"] / curated["seconds"]
    print(json.dumps({"step": "validation share of curation", "share": round(share, 3), "target": 0.15}))


if __name__ == "__main__":
    main()
