"""Evaluation on Dask: every entry a task, on a distributed.LocalCluster, with the in-process results exactly."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

from heldout.errors import UsageError
from heldout.evaluation import controls, simple_baseline
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
    simple = simple_baseline.simple_embedding(adata)
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


def test_leiden_and_kbet_become_tasks_of_the_cluster_an_entry_runs_on(glioma: tuple,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside an entry scored on a cluster, Leiden's resolutions x seeds and kBET's labels are further tasks there."""
    from distributed import LocalCluster

    from heldout.evaluation import distributed, kbet, leiden

    monkeypatch.setattr(leiden, "PARALLEL_MIN", 0)
    monkeypatch.setattr(kbet, "PARALLEL_MIN", 0)
    data, entries = glioma
    entries = entries[:2]  # the model and the random control
    seen = []
    original = distributed._cluster_of_this_worker
    monkeypatch.setattr(distributed, "_cluster_of_this_worker", lambda: seen.append(original()) or seen[-1])
    for kind in ("clustering", "integration"):
        task = _task(kind)
        here = score_task(task, data, [*entries, *([] if kind == "clustering" else _unintegrated(glioma))])
        seen.clear()
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
            there = score_task(task, data, [*entries, *([] if kind == "clustering" else _unintegrated(glioma))],
                               scheduler=cluster.scheduler_address)
        assert seen and all(worker is not None for worker in seen)  # every map ran on the cluster
        assert here.values == there.values


def _unintegrated(glioma: tuple) -> list[controls.Entry]:
    return [e for e in glioma[1] if e.name == "unintegrated"]


class _Recorder:
    def __init__(self, total: int, show: bool, description: str = "") -> None:
        self.total, self.done = total, 0.0
        _Recorder.last = self

    def advance(self, what: str, units: float = 1) -> None:
        self.done += units

    def __enter__(self) -> _Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@pytest.mark.parametrize("kind", ["annotation", "clustering", "integration"])
@pytest.mark.parametrize("scheduler", [None, "synchronous"])
def test_the_progress_bar_ends_full(glioma: tuple, kind: str, scheduler: str | None,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The bar's length is entries x seeds x metrics, and scoring advances it by exactly that much."""
    from heldout.evaluation import scoring

    monkeypatch.setattr(scoring, "Progress", _Recorder)
    data, entries = glioma
    task = _task(kind)
    score_task(task, data, entries, scheduler=scheduler, progress=True)
    bar = _Recorder.last
    assert bar.total == len(entries) * len(task.seeds) * {"annotation": 2, "clustering": 3, "integration": 11}[kind]
    assert bar.done == pytest.approx(bar.total)
