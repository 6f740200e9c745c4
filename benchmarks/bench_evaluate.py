"""Time and peak memory of the full evaluation suite: every task, its controls, 5 seeds.

    .venv/bin/python benchmarks/bench_evaluate.py [--replicates 46] [--skip-large] [--only TASK ...]

Works in benchmarks/work/project-evaluate (a copy of this project's cards, schemas and curation maps)
on curated data (``NAME@curated``). The model is the simple baseline's PCA of each task's datasets, so
every run scores five entries (model, random, shuffled, oracle, simple/unintegrated) over five seeds.

The large run uses a mirror with N SYNTHETIC thinned copies of Baron human (N=46: 100,674 cells,
188 synthetic donors) and runs annotation, clustering and integration on all of it. Each evaluation
runs in a fresh process (peak RSS is its own).
"""

from __future__ import annotations

import argparse
import json
import shutil

import yaml
from _measure import run_step
from bench_curation import REPO, WORK

STEP = """
import time, pathlib, tempfile, numpy as np, pandas as pd, anndata as ad
from heldout.evaluation.simple_baseline import joint_simple_embedding, simple_embedding
from heldout.evaluation.run import evaluate
from heldout.evaluation.tasks import load_task_card
from heldout.project import Project
project = Project(pathlib.Path({root!r}))
card = load_task_card({task!r}, project.registry)
parts = []
for name in card.dataset_names:
    a = ad.read_h5ad(project.curated / f"{{name}}.h5ad")
    other = project.curated / f"{{name}}.homo_sapiens.h5ad"
    parts.append(ad.read_h5ad(other) if a.var_names[0].startswith("ENSMUSG") and len(card.dataset_names) > 1
                 else a)
ids = np.concatenate([p.obs_names.to_numpy() for p in parts])
x = simple_embedding(parts[0]) if len(parts) == 1 else joint_simple_embedding(parts)
tmp = pathlib.Path(tempfile.mkdtemp())
pd.DataFrame(x, index=pd.Index(ids, name="observation_joinid")).rename(columns=str).to_parquet(tmp / "e.parquet")
t = time.perf_counter()
r = evaluate(task={task!r}, datasets=[f"{{n}}@curated" for n in card.dataset_names], model="pca",
             embeddings=tmp / "e.parquet", results_dir=tmp / "results", project=project)
RESULT = {{"task": {task!r}, "kind": r.kind, "cells": int(sum(d["n_cells"] for d in r.datasets)),
          "scored": r.n_scored, "entries": len(r.roles), "seeds": len(r.seeds),
          "seconds": round(time.perf_counter() - t, 1)}}
"""


def copy_declarations(root) -> None:  # noqa: ANN001
    """This repo's registry (without releases), schemas and curation maps into a benchmark project, once."""
    for folder in ("registry", "schemas", "curation"):
        if not (root / folder).exists():
            shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("releases"))


def project(root, mirror, cards: dict[str, dict] | None = None, tasks: dict[str, dict] | None = None):  # noqa: ANN001, ANN201
    from heldout.curation import artifact_paths, curate
    from heldout.evaluation.tasks import list_task_cards, load_task_card
    from heldout.orthologs import apply_to_curated, build_map
    from heldout.project import Project
    from heldout.splits import split_dataset

    copy_declarations(root)
    for name, data in (cards or {}).items():
        (root / "registry" / "datasets" / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    for name, data in (tasks or {}).items():
        (root / "registry" / "tasks" / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    proj = Project(root)
    names = list(tasks) if tasks else list_task_cards(proj.registry)
    for task in names:
        for dataset in load_task_card(task, proj.registry).dataset_names:
            if not artifact_paths(proj, dataset).h5ad.exists():
                curate(dataset, project=proj, mirror_root=mirror, progress=False)
                split_dataset(dataset, project=proj)
                if dataset == "baron-pancreas-mouse":
                    build_map(project=proj)
                    apply_to_curated(dataset, project=proj)
    return proj, names


def baron_100k(replicates: int = 46, seeds: list[int] | None = None):  # noqa: ANN201 - (Project, task names)
    """The project of the 100k run: N SYNTHETIC copies of Baron human, with annotation, clustering and integration."""
    from heldout.mirror.build import build_mirror

    big_mirror = WORK / f"mirror-baron2016-pancreas-human-x{replicates}"
    if not (big_mirror / "release.json").exists():
        build_mirror(big_mirror, replicate=replicates, write_h5ads=False, sources=["baron2016-pancreas-human"])
    card = yaml.safe_load((REPO / "registry" / "datasets" / "baron-pancreas-human.yaml").read_text())
    card["name"] = "baron-100k"
    card["split"]["stratify_by"] = None
    base = {"schema_version": 1, "description": "benchmark", "dataset": "baron-100k", "label": "cell_type",
            **({"seeds": seeds} if seeds else {})}
    tasks_100k = {"baron-100k-annotation": {**base, "name": "baron-100k-annotation", "kind": "annotation"},
                  "baron-100k-clustering": {**base, "name": "baron-100k-clustering", "kind": "clustering",
                                            "test_splits": ["all"]},
                  "baron-100k-integration": {**base, "name": "baron-100k-integration", "kind": "integration",
                                             "batch": "donor_id", "test_splits": ["all"]}}
    return project(WORK / f"project-evaluate-{'100k' if replicates == 46 else f'x{replicates}'}", big_mirror,
                   {"baron-100k": card}, tasks_100k)


def main() -> None:
    from heldout.mirror.build import build_mirror

    parser = argparse.ArgumentParser()
    parser.add_argument("--replicates", type=int, default=46)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--only", nargs="+", metavar="TASK", help="run only these tasks (bundled or 100k)")
    args = parser.parse_args()
    wanted = (lambda task: task in args.only) if args.only else (lambda task: True)
    mirror = WORK / "mirror"
    if not (mirror / "release.json").exists():
        shutil.rmtree(mirror, ignore_errors=True)
        build_mirror(mirror, write_h5ads=False)
    proj, tasks = project(WORK / "project-evaluate", mirror)
    for task in filter(wanted, tasks):
        print(json.dumps(run_step(STEP.format(root=str(proj.root), task=task))), flush=True)
    if args.skip_large:
        return
    big, names = baron_100k(args.replicates)
    for task in filter(wanted, names):
        print(json.dumps(run_step(STEP.format(root=str(big.root), task=task))), flush=True)


if __name__ == "__main__":
    main()
