"""heldout's integration and clustering evaluation against scib-metrics' Benchmarker, side by side (issue 27).

    .venv/bin/python benchmarks/bench_scib.py [--replicates 46] [--steps prepare heldout scib compare]
                                              [--tasks integration clustering]

The eval set is bench_evaluate's 100k run: 46 SYNTHETIC thinned copies of Baron human (100,674 cells,
188 donors), every cell scored, batch = donor. Its task cards run seeds 42, 0, 1, 2, 3: scib-metrics'
k-means uses seed 0 and its Leiden seed 42, so both have a heldout run to be compared with.

Steps, each in a fresh process (its wall time and peak RSS are its own); results go to
``benchmarks/work/scib-<cells>/``:

1. ``prepare``: the model's embedding (the simple baseline's PCA, as in bench_evaluate) and the
   four controls ``heldout evaluate`` scores beside it, drawn by heldout's own code on the task's
   cells: random, shuffled, oracle, unintegrated. Saved once (``embeddings.npz``), so both sides
   score the same five embeddings.
2. ``heldout``: ``heldout.evaluation.run.evaluate`` (what ``heldout evaluate`` calls) with the model's
   embedding: 5 entries x 5 seeds, the controls recomputed as a user's run does.
3. ``scib``: ``scib_metrics.benchmark.Benchmarker`` on the same five embeddings: for integration its
   default metrics, for clustering only its Leiden and k-means NMI/ARI (Leiden over its 10
   resolutions, ``n_jobs=-1``). It is given heldout's two documented choices, so both compute the
   same definitions: exact neighbours (``prepare(neighbor_computer=...)``, its API for this) and
   an exact kNN on kBET's diffusion embedding (``metrics.exact_diffusion_nn``, in place of
   pynndescent).
4. ``compare``: the largest difference of any metric between the two, per task.
"""

from __future__ import annotations

import argparse
import json

from _measure import run_step
from bench_curation import WORK
from bench_evaluate import baron_100k

SEEDS = [42, 0, 1, 2, 3]

PREPARE = """
import pathlib, numpy as np, pandas as pd
from heldout.evaluation import controls
from heldout.evaluation.inputs import load_task_datasets
from heldout.evaluation.run import _simple, _task_data
from heldout.evaluation.tasks import load_task_card
from heldout.project import Project
project = Project(pathlib.Path({root!r}))
card = load_task_card("baron-100k-integration", project.registry)
loaded = load_task_datasets(card, ["baron-100k@curated"], registry=None, project=project)
data = _task_data(card, loaded)
simple = _simple(card, loaded)
entries = [controls.Entry(name="pca", role="model", embedding=simple),
           *controls.embedding_controls(data.labels, data.group, simple, seed=card.seeds[0], integration=True)]
ids = np.concatenate([d.adata.obs_names.to_numpy(dtype=str) for d in loaded])
out = pathlib.Path({out!r})
out.mkdir(parents=True, exist_ok=True)
pd.DataFrame(simple, index=pd.Index(ids, name="observation_joinid")).rename(columns=str).to_parquet(out / "model.parquet")
np.savez(out / "embeddings.npz", labels=data.labels, batches=data.batch, scored=data.scored,
         **{{e.name: e.embedding for e in entries}})
RESULT = {{"cells": len(ids), "entries": [e.name for e in entries]}}
"""

HELDOUT = """
import pathlib, time
from heldout.evaluation.run import evaluate
from heldout.project import Project
project = Project(pathlib.Path({root!r}))
out = pathlib.Path({out!r})
t = time.perf_counter()
r = evaluate(task="baron-100k-{task}", datasets=["baron-100k@curated"], model="pca", embeddings=out / "model.parquet",
             results_dir=out / "results-{task}", project=project)
RESULT = {{"seconds": round(time.perf_counter() - t, 1), "seeds": r.seeds, "scored": r.n_scored,
          "values": {{e: {{m: s["values"] for m, s in ms.items()}} for e, ms in r.scores.items()}},
          "timings": r.timings}}
"""

SCIB = """
import pathlib, time, warnings
import anndata as ad, numpy as np, pandas as pd
warnings.simplefilter("ignore")
from scib_metrics.benchmark import Benchmarker, BatchCorrection, BioConservation
from heldout.evaluation import metrics
out = pathlib.Path({out!r})
z = np.load(out / "embeddings.npz", allow_pickle=True)
names = ["pca", "random", "shuffled", "oracle", "unintegrated"]
keep = z["scored"]
adata = ad.AnnData(obs=pd.DataFrame({{"cell_type": z["labels"][keep], "donor_id": z["batches"][keep]}}))
adata.obs.index = adata.obs.index.astype(str)
for name in names:
    adata.obsm[name] = np.asarray(z[name][keep])
if {task!r} == "integration":
    bio, batch = BioConservation(), BatchCorrection()
else:
    bio = BioConservation(isolated_labels=False, silhouette_label=False, clisi_knn=False,
                          nmi_ari_cluster_labels_leiden={{"n_jobs": -1}}, nmi_ari_cluster_labels_kmeans=True)
    batch = BatchCorrection(bras=False, ilisi_knn=False, kbet_per_label=False, graph_connectivity=False,
                            pcr_comparison=False)
t = time.perf_counter()
bm = Benchmarker(adata, batch_key="donor_id", label_key="cell_type", embedding_obsm_keys=names,
                 pre_integrated_embedding_obsm_key="unintegrated", bio_conservation_metrics=bio,
                 batch_correction_metrics=batch, progress_bar=False, n_jobs=-1)
with metrics._exact_kbet_neighbours():
    bm.prepare(neighbor_computer=metrics.exact_neighbors)
    bm.benchmark()
seconds = time.perf_counter() - t
if {task!r} == "integration":  # with the aggregates
    table = bm.get_results(min_max_scale=False, clean_names=False)
else:  # get_results needs batch metrics; the raw table (metric x embedding) has the values
    table = bm._results.drop(columns=["Metric Type"]).T
values = {{name: {{str(k): float(v) for k, v in table.loc[name].items() if k != "Metric Type"}} for name in names}}
RESULT = {{"seconds": round(seconds, 1), "values": values}}
"""

# Benchmarker's metric names -> heldout's (integration: the scIB set and its aggregates; clustering: Leiden)
NAMES = {
    "integration": {"isolated_labels": "isolated_labels", "nmi_ari_cluster_labels_kmeans_nmi": "kmeans_nmi",
                    "nmi_ari_cluster_labels_kmeans_ari": "kmeans_ari", "silhouette_label": "silhouette_label",
                    "clisi_knn": "clisi", "bras": "bras", "ilisi_knn": "ilisi", "kbet_per_label": "kbet",
                    "graph_connectivity": "graph_connectivity", "pcr_comparison": "pcr_comparison",
                    "Bio conservation": "bio_conservation", "Batch correction": "batch_correction",
                    "Total": "total"},
    "clustering": {"nmi_ari_cluster_labels_leiden_nmi": "nmi_leiden", "nmi_ari_cluster_labels_leiden_ari": "ari_leiden"},
}
# the seed each of Benchmarker's metrics ran with, per task
SCIB_SEED = {"integration": 0, "clustering": 42}
HELDOUT_NAME = {"pca": "pca", "random": "random", "shuffled": "shuffled", "oracle": "oracle",
                "unintegrated": {"integration": "unintegrated", "clustering": "simple"}}


def compare(task: str, ours: dict, theirs: dict) -> dict:
    """The largest absolute difference of any shared metric, with where it is."""
    seed_index = ours["seeds"].index(SCIB_SEED[task])
    worst = (0.0, None)
    compared = 0
    for entry, metric_values in theirs["values"].items():
        name = HELDOUT_NAME[entry] if isinstance(HELDOUT_NAME[entry], str) else HELDOUT_NAME[entry][task]
        for scib_name, value in metric_values.items():
            metric = NAMES[task].get(scib_name)
            if metric is None:
                continue
            diff = abs(ours["values"][name][metric][seed_index] - value)
            compared += 1
            if diff > worst[0] or worst[1] is None:
                worst = (diff, f"{name}/{metric}")
    return {"task": task, "compared": compared, "largest_difference": worst[0], "where": worst[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=46)
    parser.add_argument("--steps", nargs="+", default=["prepare", "heldout", "scib", "compare"],
                        choices=["prepare", "heldout", "scib", "compare"])
    parser.add_argument("--tasks", nargs="+", default=["integration", "clustering"],
                        choices=["integration", "clustering"])
    args = parser.parse_args()
    proj, _ = baron_100k(args.replicates, seeds=SEEDS)
    out = WORK / f"scib-x{args.replicates}"
    if "prepare" in args.steps or not (out / "embeddings.npz").exists():
        print("prepare", json.dumps(run_step(PREPARE.format(root=str(proj.root), out=str(out)))), flush=True)
    for task in args.tasks:
        for step, code in (("heldout", HELDOUT), ("scib", SCIB)):
            if step in args.steps:
                result = run_step(code.format(root=str(proj.root), out=str(out), task=task))
                (out / f"{step}-{task}.json").write_text(json.dumps(result, indent=1))
                print(step, task, json.dumps({k: v for k, v in result.items() if k in ("seconds", "peak_rss_mib")}),
                      flush=True)
        if "compare" in args.steps:
            ours, theirs = (json.loads((out / f"{s}-{task}.json").read_text()) for s in ("heldout", "scib"))
            print("compare", json.dumps({**compare(task, ours, theirs), "heldout_s": ours["seconds"],
                                         "heldout_mib": ours["peak_rss_mib"], "scib_s": theirs["seconds"],
                                         "scib_mib": theirs["peak_rss_mib"]}), flush=True)


if __name__ == "__main__":
    main()
