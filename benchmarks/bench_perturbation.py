"""Perturbation evaluation (issue 25): heldout against a bare cell-eval 0.8.2 and a bare cell-eval2 call.

    .venv/bin/python benchmarks/bench_perturbation.py [--replicates 90] [--repeats 3] [--skip-full-at-scale]

Two scales, each step in a fresh process (``_measure.run_step``), side by side in one run:

* **Norman**: the curated Norman 2019 cells (PerturBench's subset, 3,375 cells x 495 genes), split by
  GEARS' simulation split; 16 held-out conditions, 1,600 held-out cells.
* **synthetic ~300k**: every Norman cell replicated ``--replicates`` times with Poisson-resampled counts
  (a new cell id, the original's condition and split), so conditions keep their real responses at
  ~90x the cells.

The prediction is the additive baseline's cells (log1p CP10k), written once as an h5ad; the real side
is the held-out cells, log1p(CP10k), written once. Steps:

1. ``cell-eval 0.8.2``: ``MetricsEvaluator(pred.h5ad, real.h5ad).compute(profile="full")``, bare.
2. ``cell-eval2``: ``compute_metrics`` with heldout's two presets (``cell-eval-0.7.6`` and ``vcc2026``),
   bare, on the same files: the engine alone, the same metrics heldout asks for.
3. ``heldout, model entry``: what heldout adds around the engine for one entry: the held-out cells
   built from the dataset (log1p), the prediction file read and checked against the task (genes, order,
   conditions, NaN, sign, scale), both engine runs, and the per-subgroup aggregation. Its ratio to step
   2 is heldout's overhead over its engine.
4. ``heldout, whole evaluation``: the model, control, mean, additive and linear baselines and five
   technical-replicate seeds, scored in parallel on 2 workers, with the vcc2026 score per subgroup.

The largest difference between steps 1 and 3 over the metrics both compute is reported.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from _measure import run_step
from bench_curation import WORK
from bench_published import bundled_mirror, fresh_project

REPO = Path(__file__).resolve().parents[1]
NORMAN = "norman-2019"

SETUP = """
from pathlib import Path
from heldout.curation import curate
from heldout.project import Project
from heldout.splits import split_dataset
project = Project(Path({root!r}))
curate({name!r}, project=project, mirror_root={mirror!r}, progress=False)
split_dataset({name!r}, project=project)
RESULT = {{}}
"""

# Builds the eval set at a scale (the curated cells, or a Poisson replication), its prediction and real files.
PREPARE = """
import numpy as np, pandas as pd, anndata as ad, scipy.sparse as sp
from pathlib import Path
from heldout.evaluation.inputs import EvalDataset
from heldout.evaluation.perturbation import baselines
from heldout.evaluation.perturbation.data import perturbation_data
root, out, reps = Path({root!r}), Path({out!r}), {replicates}
adata = ad.read_h5ad(root / "data" / "curated" / "{name}.h5ad")
split = pd.read_parquet(root / "splits" / "{name}" / "assignment.parquet").set_index("observation_joinid")
split = split.reindex(adata.obs_names)
if reps > 1:
    rng = np.random.default_rng(0)
    x = sp.csr_matrix(adata.X)
    blocks = []
    for r in range(reps):
        b = x.copy(); b.data = rng.poisson(b.data).astype(np.float32); b.eliminate_zeros(); blocks.append(b)
    obs = pd.concat([adata.obs] * reps)
    obs.index = [f"{{i}}-{{r}}" for r in range(reps) for i in adata.obs_names]
    adata = ad.AnnData(sp.vstack(blocks).tocsr(), obs=obs, var=adata.var)
    split = pd.concat([split] * reps); split.index = adata.obs_names
ds = EvalDataset(name="{name}", version="bench", adata=adata, split=split["split"].to_numpy(), audit_data=None,
                 split_sha256="", subgroup=split["subgroup"].to_numpy(dtype=str))
data = perturbation_data(ds, train_splits=["train", "validation"], test_splits=["test"])
[line] = data.lines
pred = baselines.additive_entry(data, baselines.training(data)).preds[line]
pred = pred[pred.obs["perturbation"] != "control"].copy()
out.mkdir(parents=True, exist_ok=True)
pred.write_h5ad(out / "pred.h5ad")
data.real[line].write_h5ad(out / "real.h5ad")
adata.write_h5ad(out / "dataset.h5ad")
split.reset_index(names="observation_joinid").to_parquet(out / "split.parquet")
import json; (out / "targets.json").write_text(json.dumps(data.target_gene_map))
RESULT = {{"cells": int(adata.n_obs), "held_out_cells": int(data.real[line].n_obs), "pred_cells": int(pred.n_obs),
          "conditions": len(data.expected)}}
"""

CELL_EVAL = """
import time, warnings, anndata as ad
warnings.simplefilter("ignore")
from cell_eval import MetricsEvaluator
from pathlib import Path
out = Path({out!r})
t = time.perf_counter()
pred, real = ad.read_h5ad(out / "pred.h5ad"), ad.read_h5ad(out / "real.h5ad")
controls = real[real.obs["perturbation"] == "control"]
pred = ad.concat([pred, controls], index_unique="-")  # cell-eval 0.8.2 takes the prediction's own controls
for a in (pred, real):
    a.var_names = [{symbols!r}.get(g, g) for g in a.var_names]
results, agg = MetricsEvaluator(adata_pred=pred, adata_real=real, control_pert="control", pert_col="perturbation",
                                num_threads=2, outdir=str(out / "cell-eval")).compute(profile="full", write_csv=False)
wall = time.perf_counter() - t
results.write_parquet(out / "cell_eval_0_8_2.parquet")
RESULT = {{"wall_s": round(wall, 2)}}
"""

ENGINE = """
import time, json, warnings, logging, contextlib, io, anndata as ad
warnings.simplefilter("ignore")
from pathlib import Path
from cell_eval2 import compute_metrics
from heldout.evaluation.perturbation.engine import Engine, RAW_PRESET, SCORE_PRESET
out = Path({out!r})
engine = Engine(target_gene_map=json.loads((out / "targets.json").read_text()), num_threads=2)
t = time.perf_counter()
pred, real = ad.read_h5ad(out / "pred.h5ad"), ad.read_h5ad(out / "real.h5ad")
controls = real[real.obs["perturbation"] == "control"]
pred = ad.concat([pred, controls], index_unique="-")
with contextlib.redirect_stderr(io.StringIO()):
    for preset in (RAW_PRESET, SCORE_PRESET):
        compute_metrics(pred, real, config=engine.config(preset))
RESULT = {{"wall_s": round(time.perf_counter() - t, 2)}}
"""

HELDOUT_ENTRY = """
import time, warnings, anndata as ad, pandas as pd
warnings.simplefilter("ignore")
from pathlib import Path
from heldout.evaluation.inputs import EvalDataset
from heldout.evaluation.perturbation.data import perturbation_data
from heldout.evaluation.perturbation.engine import Engine, aggregate
from heldout.evaluation.perturbation.evaluate import model_predictions, score_entries
from heldout.evaluation.perturbation.baselines import Entry
out = Path({out!r})
adata = ad.read_h5ad(out / "dataset.h5ad")
split = pd.read_parquet(out / "split.parquet").set_index("observation_joinid").reindex(adata.obs_names)
t = time.perf_counter()
ds = EvalDataset(name="{name}", version="bench", adata=adata, split=split["split"].to_numpy(), audit_data=None,
                 split_sha256="", subgroup=split["subgroup"].to_numpy(dtype=str))
data = perturbation_data(ds, train_splits=["train", "validation"], test_splits=["test"])
preds, n = model_predictions(out / "pred.h5ad", "log1p", data)
engine = Engine(target_gene_map=data.target_gene_map, num_threads=2)
rows = score_entries([Entry("model", "model", preds)], data, engine, workers=1)
[frame] = rows.values()
agg = aggregate(frame, data.subgroups, engine)
wall = time.perf_counter() - t
frame[frame["run"] == "raw"].to_parquet(out / "heldout_raw.parquet")
RESULT = {{"wall_s": round(wall, 2)}}
"""

HELDOUT_FULL = """
import time, warnings, anndata as ad, pandas as pd
warnings.simplefilter("ignore")
from pathlib import Path
from heldout.evaluation.inputs import EvalDataset
from heldout.evaluation.perturbation.data import perturbation_data
from heldout.evaluation.perturbation.engine import Engine
from heldout.evaluation.perturbation.evaluate import entries_for, model_predictions, score_entries, summarise
from heldout.evaluation.tasks import load_task_card
out = Path({out!r})
adata = ad.read_h5ad(out / "dataset.h5ad")
split = pd.read_parquet(out / "split.parquet").set_index("observation_joinid").reindex(adata.obs_names)
task = load_task_card("norman-perturbation", Path({registry!r}))
t = time.perf_counter()
ds = EvalDataset(name="{name}", version="bench", adata=adata, split=split["split"].to_numpy(), audit_data=None,
                 split_sha256="", subgroup=split["subgroup"].to_numpy(dtype=str))
data = perturbation_data(ds, train_splits=task.train_splits, test_splits=task.test_splits)
preds, n = model_predictions(out / "pred.h5ad", "log1p", data)
entries, notes = entries_for(data, "model", preds, task)
engine = Engine(target_gene_map=data.target_gene_map, num_threads=1)
rows = score_entries(entries, data, engine, workers=2)
scores, scaled, flags = summarise(rows, {{e.name: e.role for e in entries}}, data, engine)
RESULT = {{"wall_s": round(time.perf_counter() - t, 2), "jobs": len(rows),
          "vcc2026": {{e: round(scores[e]["vcc2026_score"]["mean"], 3) for e in scores
                      if scores[e]["vcc2026_score"]["mean"] is not None}}}}
"""

DIFF = """
import numpy as np, pandas as pd, polars as pl
from pathlib import Path
out = Path({out!r})
ours = pd.read_parquet(out / "heldout_raw.parquet")
theirs = pl.read_parquet(out / "cell_eval_0_8_2.parquet").to_pandas()
theirs = theirs.melt(id_vars=["perturbation"], var_name="metric", value_name="value")
both = ours.merge(theirs, on=["perturbation", "metric"], suffixes=("_h", "_c"))
a, b = both["value_h"].to_numpy(float), both["value_c"].to_numpy(float)
ok = ~(np.isnan(a) | np.isnan(b))
RESULT = {{"shared_metrics": int(both["metric"].nunique()), "values": int(ok.sum()),
          "nan_pattern_equal": bool((np.isnan(a) == np.isnan(b)).all()),
          "max_abs_diff": float(np.abs(a[ok] - b[ok]).max())}}
"""


def project_dir(mirror: Path) -> Path:
    root = WORK / "perturbation"
    if not (root / "splits" / NORMAN / "assignment.parquet").exists():
        run_step(SETUP.format(root=str(fresh_project(root)), name=NORMAN, mirror=str(mirror)))
    return root


def measure(root: Path, label: str, replicates: int, full: bool, repeats: int) -> None:
    import anndata as ad

    out = WORK / "perturbation-runs" / label
    shape = run_step(PREPARE.format(root=str(root), out=str(out), replicates=replicates, name=NORMAN))
    var = ad.read_h5ad(root / "data" / "curated" / f"{NORMAN}.h5ad", backed="r").var
    symbols = dict(zip(var.index.astype(str), var["feature_name"].astype(str), strict=True))
    print(f"== {label}: {shape['cells']:,} cells, {shape['held_out_cells']:,} held-out cells, "
          f"{shape['pred_cells']:,} predicted cells, {shape['conditions']} held-out conditions")
    bare = run_step(CELL_EVAL.format(out=str(out), symbols=symbols))
    engines, entries = [], []
    for _ in range(repeats):  # alternating, so both see the same minutes
        engines.append(run_step(ENGINE.format(out=str(out))))
        entries.append(run_step(HELDOUT_ENTRY.format(out=str(out), name=NORMAN)))
    engine = min(engines, key=lambda r: r["wall_s"]) | {"wall_s": statistics.median(r["wall_s"] for r in engines)}
    entry = min(entries, key=lambda r: r["wall_s"]) | {"wall_s": statistics.median(r["wall_s"] for r in entries)}
    diff = run_step(DIFF.format(out=str(out)))
    ratios = sorted(e["wall_s"] / g["wall_s"] for e, g in zip(entries, engines, strict=True))
    print(f"  cell-eval 0.8.2, bare (full profile)          {bare['wall_s']:8.1f} s  peak {bare['peak_rss_mib']:7.0f} MiB")
    print(f"  cell-eval2, bare (heldout's two presets)      {engine['wall_s']:8.1f} s  peak {engine['peak_rss_mib']:7.0f} MiB")
    print(f"  heldout, model entry (checks + same calls)    {entry['wall_s']:8.1f} s  peak {entry['peak_rss_mib']:7.0f} MiB"
          f"  = {entry['wall_s'] / engine['wall_s']:.2f}x cell-eval2, {entry['wall_s'] / bare['wall_s']:.2f}x cell-eval")
    print(f"    medians of {repeats}; runs: cell-eval2 {[r['wall_s'] for r in engines]}, heldout "
          f"{[r['wall_s'] for r in entries]}; paired ratios {[round(r, 2) for r in ratios]}")
    print(f"  largest difference vs cell-eval 0.8.2: {diff['max_abs_diff']:.2e} over {diff['shared_metrics']} shared "
          f"metrics ({diff['values']:,} values; NaN pattern equal: {diff['nan_pattern_equal']})")
    if full:
        whole = run_step(HELDOUT_FULL.format(out=str(out), name=NORMAN, registry=str(REPO / "registry")))
        print(f"  heldout, whole evaluation ({whole['jobs']} scored entries x seeds, 2 workers) "
              f"{whole['wall_s']:8.1f} s  peak {whole['peak_rss_mib']:7.0f} MiB (the driver; a worker scores one "
              f"prediction against its reference)")
        print(f"    vcc2026 score: {whole['vcc2026']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=90, help="copies of every Norman cell (~300k at 90)")
    parser.add_argument("--skip-full-at-scale", action="store_true", help="time only the model entry at scale")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the engine and the model entry (median)")
    args = parser.parse_args()
    root = project_dir(bundled_mirror())
    measure(root, "norman", 1, True, args.repeats)
    measure(root, f"synthetic-x{args.replicates}", args.replicates, not args.skip_full_at_scale, args.repeats)


if __name__ == "__main__":
    main()
