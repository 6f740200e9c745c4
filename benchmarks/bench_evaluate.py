"""Wall time of `heldout evaluate` per task card, with the simple baseline's PCA as the model.

    .venv/bin/python benchmarks/bench_evaluate.py

Works in benchmarks/work/project-evaluate (a copy of this project's cards, schemas and curation
maps; curates and splits the task datasets there) against benchmarks/work/mirror (built if missing).
Each evaluation runs in a fresh process and includes both baselines (the simple baseline's
normalise/HVG/PCA is recomputed, as every evaluation does).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from _measure import run_step
from bench_curation import REPO, WORK


def main() -> None:
    from heldout.curation import artifact_paths, curate
    from heldout.evaluation.tasks import list_task_cards, load_task_card
    from heldout.project import Project
    from heldout.splits import split_dataset

    from heldout.mirror.build import build_mirror

    mirror = WORK / "mirror"
    if not (mirror / "release.json").exists():
        shutil.rmtree(mirror, ignore_errors=True)
        build_mirror(mirror, write_h5ads=False)
    root = WORK / "project-evaluate"
    for folder in ("registry", "schemas", "curation"):
        if not (root / folder).exists():
            shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("releases"))
    project = Project(root)
    for task in list_task_cards(project.registry):
        card = load_task_card(task, project.registry)
        if not artifact_paths(project, card.dataset)[0].exists():
            curate(card.dataset, project=project, mirror_root=mirror, progress=False)
        split_dataset(card.dataset, project=project)
        result = run_step(f"""
import time, anndata as ad, numpy as np, tempfile, pathlib
from heldout.evaluation.baselines import simple_embedding
from heldout.evaluation.run import evaluate
from heldout.project import Project
project = Project(pathlib.Path({str(root)!r}))
adata = ad.read_h5ad(project.curated / "{card.dataset}.h5ad")
tmp = pathlib.Path(tempfile.mkdtemp())
np.save(tmp / "pca.npy", simple_embedding(adata))
(tmp / "pca.ids.txt").write_text("\\n".join(adata.obs_names))
t = time.perf_counter()
r = evaluate(dataset="{card.dataset}@curated", task="{task}", model="simple-pca", embeddings=tmp / "pca.npy",
             results_dir=tmp / "results", project=project, mirror_root={str(mirror)!r})
RESULT = {{"task": "{task}", "dataset": "{card.dataset}", "cells": adata.n_obs, "n_test": r.n_test,
          "seconds": round(time.perf_counter() - t, 2)}}
""")
        print(json.dumps(result))


if __name__ == "__main__":
    main()
