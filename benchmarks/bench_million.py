"""A 1M-cell annotation evaluation on a dask.distributed LocalCluster: its time and memory (issue 27).

    .venv/bin/python benchmarks/bench_million.py [--copies 10] [--seeds S S S S S] [--workers 2]
                                                 [--steps data prepare evaluate]

The eval set is SYNTHETIC: 10 copies of bench_evaluate's curated 100,674-cell set (itself 46 thinned
copies of Baron human), 1,006,740 cells, each copy with new cell ids and its own donors (1,880 in
all). It is assembled from the 100k set's curated artifacts rather than curated afresh: the mirror
builder holds every copy in memory (17 GiB at 460 copies, and it writes one SOMA dataset per copy,
over 40 minutes), and an h5ad source card is staged through memory too (11.3 GiB at 100k cells).
Curation at 1M cells is measured by bench_curation. The annotation task trains on the donor-disjoint
train split (half the cells) and scores the test split (a quarter). Steps, each in a fresh process,
results in ``benchmarks/work/million-x<copies>/``:

1. ``data``: the curated artifacts, copied block by block (``replicate_curated``), then ``heldout
   split`` on them (donor-disjoint, by the card's fractions), each timed.
2. ``prepare``: the model's embedding: the simple baseline's PCA of the task's cells (heldout's
   own code, as every bench_evaluate run), saved as ``model.parquet``.
3. ``evaluate``: ``heldout.evaluation.run.evaluate(..., scheduler=ADDRESS)`` against a
   ``distributed.LocalCluster`` of ``--workers`` single-threaded worker processes started in the
   same step: 5 entries (the model and four controls) x the seeds. Reported: wall time, the
   per-step seconds of the result record, the peak RSS of the main process and of each worker
   (their VmHWM, read on the workers at the end).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import yaml
from _measure import run_step
from bench_curation import REPO, WORK
from bench_evaluate import baron_100k, copy_declarations

NAME = "baron-1m"
BLOCK = 1 << 26  # values copied at a time (256 MiB of float32)

DATA = """
import pathlib, sys, time
sys.path.insert(0, {bench!r})
from bench_million import replicate_curated
from heldout.project import Project
from heldout.splits import split_dataset
project = Project(pathlib.Path({root!r}))
t = time.perf_counter()
replicate_curated(Project(pathlib.Path({source_root!r})), "baron-100k", project, {name!r}, {copies})
assembled = time.perf_counter() - t
t = time.perf_counter()
split_dataset({name!r}, project=project)
RESULT = {{"assemble_seconds": round(assembled, 1), "split_seconds": round(time.perf_counter() - t, 1)}}
"""

PREPARE = """
import pathlib, time, numpy as np, pandas as pd
from heldout.evaluation.inputs import load_task_datasets
from heldout.evaluation.run import _simple
from heldout.evaluation.tasks import load_task_card
from heldout.project import Project
project = Project(pathlib.Path({root!r}))
card = load_task_card({task!r}, project.registry)
t = time.perf_counter()
loaded = load_task_datasets(card, [{dataset!r}], registry=None, project=project, backed=True)
simple = _simple(card, loaded)
ids = np.concatenate([d.adata.obs_names.to_numpy(dtype=str) for d in loaded])
out = pathlib.Path({out!r})
out.mkdir(parents=True, exist_ok=True)
pd.DataFrame(simple, index=pd.Index(ids, name="observation_joinid")).rename(columns=str).to_parquet(out / "model.parquet")
RESULT = {{"seconds": round(time.perf_counter() - t, 1), "cells": len(ids), "dimensions": simple.shape[1]}}
"""

EVALUATE = """
import pathlib, re, time
from distributed import Client, LocalCluster
from heldout.evaluation.run import evaluate
from heldout.project import Project

def vm_hwm_mib():
    return round(int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) / 1024, 1)

project = Project(pathlib.Path({root!r}))
out = pathlib.Path({out!r})
with LocalCluster(n_workers={workers}, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \\
        Client(cluster) as client:
    t = time.perf_counter()
    r = evaluate(task={task!r}, datasets=[{dataset!r}], model="pca", embeddings=out / "model.parquet",
                 results_dir=out / "results", project=project, scheduler=cluster.scheduler_address)
    seconds = time.perf_counter() - t
    workers_peak = sorted(client.run(vm_hwm_mib).values())
RESULT = {{"seconds": round(seconds, 1), "cells": int(sum(d["n_cells"] for d in r.datasets)), "scored": r.n_scored,
          "entries": len(r.roles), "seeds": r.seeds, "workers_peak_rss_mib": workers_peak, "timings": r.timings,
          "values": {{e: {{m: s["values"] for m, s in ms.items()}} for e, ms in r.scores.items()}}}}
"""


def replicate_h5ad(source: Path, out: Path, copies: int) -> None:
    """``copies`` copies of a CSR h5ad, block by block: cell ids and donors get a ``-c<i>`` suffix per copy."""
    import h5py
    import pandas as pd
    from anndata.io import read_elem, write_elem

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with h5py.File(source, "r") as f, h5py.File(partial, "w") as o:
        n, genes = f["X"].attrs["shape"]
        nnz = f["X"]["data"].shape[0]
        x = o.create_group("X")
        x.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": np.array([n * copies, genes])})
        data = x.create_dataset("data", (nnz * copies,), dtype="f4", chunks=(262144,))
        indices = x.create_dataset("indices", (nnz * copies,), dtype="i4", chunks=(262144,))
        indptr = f["X"]["indptr"][:]
        x.create_dataset("indptr", data=np.concatenate([indptr[:-1] + c * nnz for c in range(copies)] + [[nnz * copies]]))
        for start in range(0, nnz, BLOCK):
            stop = min(start + BLOCK, nnz)
            block_data, block_indices = f["X"]["data"][start:stop], f["X"]["indices"][start:stop]
            for c in range(copies):
                data[c * nnz + start:c * nnz + stop] = block_data
                indices[c * nnz + start:c * nnz + stop] = block_indices
        obs = read_elem(f["obs"])
        copy = np.repeat(np.arange(copies), n).astype(str)
        big = pd.concat([obs] * copies)
        big.index = pd.Index(big.index.to_numpy(dtype=str) + "-c" + copy)
        big["observation_joinid"] = big.index.to_numpy()
        big["soma_joinid"] = np.arange(len(big))
        big["donor_id"] = (big["donor_id"].astype(str) + "-c" + copy).astype("category")
        write_elem(o, "obs", big)
        write_elem(o, "var", read_elem(f["var"]))
        for group in ("layers", "obsm", "obsp", "uns", "varm", "varp"):
            write_elem(o, group, {})
        o.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
    partial.replace(out)


def replicate_curated(source, name: str, project, new_name: str, copies: int) -> None:  # noqa: ANN001 - Projects
    """``copies`` copies of a curated dataset's artifacts (h5ad, fingerprints, lock, genes) under ``new_name``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from heldout.curation import artifact_paths

    src, dst = artifact_paths(source, name), artifact_paths(project, new_name)
    replicate_h5ad(src.h5ad, dst.h5ad, copies)
    table = pq.read_table(src.fingerprints)
    parts = []
    for c in range(copies):
        part = table
        for column in ("observation_joinid", "donor_id"):
            suffixed = pa.compute.binary_join_element_wise(part[column].cast(pa.string()), f"c{c}", "-")
            part = part.set_column(part.schema.get_field_index(column), column, suffixed)
        parts.append(part)
    pq.write_table(pa.concat_tables(parts), dst.fingerprints)
    lock = yaml.safe_load(src.lock.read_text())
    lock["name"] = new_name
    dst.lock.write_text(yaml.safe_dump(lock, sort_keys=False))
    if src.genes.exists():
        shutil.copyfile(src.genes, dst.genes)


def million_project(copies: int, seeds: list[int] | None) -> Path:
    """The project folder: this repo's registry, schemas and curation maps, the dataset card and its task."""
    root = WORK / f"project-million-x{copies}"
    copy_declarations(root)
    card = yaml.safe_load((REPO / "registry" / "datasets" / "baron-pancreas-human.yaml").read_text())
    card.pop("identifiers", None)
    card["name"] = NAME
    card["description"] = f"benchmark: {copies} SYNTHETIC copies of bench_evaluate's curated 100k Baron set"
    card["split"]["stratify_by"] = None
    (root / "registry" / "datasets" / f"{NAME}.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    task = {"schema_version": 1, "name": f"{NAME}-annotation", "description": "benchmark", "dataset": NAME,
            "label": "cell_type", "kind": "annotation", **({"seeds": seeds} if seeds else {})}
    (root / "registry" / "tasks" / f"{NAME}-annotation.yaml").write_text(yaml.safe_dump(task, sort_keys=False))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="(default: the task cards' 5 seeds)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", nargs="+", default=["data", "prepare", "evaluate"],
                        choices=["data", "prepare", "evaluate"])
    args = parser.parse_args()
    out = WORK / f"million-x{args.copies}"
    out.mkdir(parents=True, exist_ok=True)
    task, dataset = f"{NAME}-annotation", f"{NAME}@curated"
    root = million_project(args.copies, args.seeds)
    if "data" in args.steps:
        source, _ = baron_100k()  # the 100k set, curated (built once)
        result = run_step(DATA.format(bench=str(WORK.parent), root=str(root), copies=args.copies, name=NAME,
                                      source_root=str(source.root)))
        (out / "data.json").write_text(json.dumps(result, indent=1))
        print("data", json.dumps(result), flush=True)
    for step, code in (("prepare", PREPARE), ("evaluate", EVALUATE)):
        if step in args.steps:
            result = run_step(code.format(root=str(root), out=str(out), task=task, dataset=dataset,
                                          workers=args.workers))
            (out / f"{step}.json").write_text(json.dumps(result, indent=1))
            print(step, json.dumps({k: v for k, v in result.items() if k not in ("values", "timings")}), flush=True)


if __name__ == "__main__":
    main()
