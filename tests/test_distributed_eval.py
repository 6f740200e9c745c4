"""Evaluation on Dask: every entry a task, on a distributed.LocalCluster, with the in-process results exactly."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

from heldout.errors import UsageError
from heldout.evaluation import controls
from heldout.evaluation.distributed import check_scheduler
from heldout.evaluation.scoring import TaskData, score_task
from heldout.evaluation.tasks import TaskCard
from heldout.project import Project

N_CELLS = 600


@pytest.fixture(scope="module")
def glioma(curated: Project) -> tuple[TaskData, list[controls.Entry]]:
    """Real glioma cells (at most 600, every donor), a model embedding and the controls of an integration task."""
    adata = ad.read_h5ad(curated.root / "data" / "curated" / "glioma-tirosh2016.h5ad")
    rng = np.random.default_rng(0)
    adata = adata[np.sort(rng.choice(adata.n_obs, min(N_CELLS, adata.n_obs), replace=False))].copy()
    n = adata.n_obs
    labels = adata.obs["cell_type"].astype(str).to_numpy()
    donors = adata.obs["donor_id"].astype(str).to_numpy()
    split = np.where(np.isin(donors, np.unique(donors)[:2]), "test", "train")
    simple = controls.simple_embedding(adata)
    data = TaskData(labels=labels, split=split, group=np.full(n, "glioma"), batch=donors, scored=np.ones(n, dtype=bool))
    model = controls.Entry(name="model", role="model", embedding=simple[:, :20] + rng.normal(0, 0.5, (n, 20)))
    return data, [model, *controls.embedding_controls(labels, data.group, simple, seed=0, integration=True)]


def _task(kind: str) -> TaskCard:
    return TaskCard(schema_version=1, name=f"glioma-{kind}", description="test", kind=kind,
                    dataset="glioma-tirosh2016", label="cell_type", batch="donor_id", test_splits=["test", "train"]
                    if kind == "integration" else ["test"], classifiers=["logreg", "knn"])


def test_a_local_cluster_gives_the_in_process_results(glioma: tuple) -> None:
    from distributed import LocalCluster

    data, entries = glioma
    task = _task("annotation")
    here = score_task(task, data, entries)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        there = score_task(task, data, entries, scheduler=cluster.scheduler_address)
    assert list(here.values) == [e.name for e in entries]
    assert here.values == there.values and here.per_class == there.per_class  # identical, not close
    assert set(there.timings) == {e.name for e in entries} and {"logreg", "knn"} <= set(there.timings["model"])


def test_integration_entries_scored_apart_need_only_their_context(glioma: tuple) -> None:
    """Each integration entry is a job of its own; the unintegrated embedding goes along as context."""
    data, entries = glioma
    task = _task("integration")
    here = score_task(task, data, entries)
    apart = score_task(task, data, entries, scheduler="synchronous")
    assert here.values == apart.values and list(apart.values) == [e.name for e in entries]
    assert {"neighbours", "label_silhouettes", "bras", "kbet", "ilisi", "kmeans"} <= set(apart.timings["model"])


def test_threads_give_the_in_process_results(glioma: tuple) -> None:
    data, entries = glioma
    task = _task("annotation")
    assert score_task(task, data, entries, scheduler="threads").values == score_task(task, data, entries).values


def test_bad_schedulers_are_named() -> None:
    with pytest.raises(UsageError, match="neither a local scheduler nor a scheduler address"):
        check_scheduler("fast")
    with pytest.raises(UsageError, match="Could not reach the Dask scheduler"):
        from heldout.evaluation.distributed import run_jobs

        run_jobs(max, (1,), [(2,)], scheduler="tcp://127.0.0.1:9", connect_timeout="1s")
