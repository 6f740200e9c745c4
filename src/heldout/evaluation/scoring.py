"""Score every entry (model, controls, baseline) of a task on the same cells, over every seed.

The split and every embedding are fixed; what varies with the seed is the
classifier or clustering seed. Work that does not depend on it (logistic
regression, kNN, every scIB metric but k-means) is computed once per entry and
repeated across seeds, so raw values, means and standard deviations are honest
about where the variance comes from.

Each metric is also reported scaled between the controls, as Open Problems
does: 0 is the best negative control, 1 the positive control. A model whose
mean falls below the best negative control is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from heldout.errors import EvaluationError
from heldout.evaluation import kmeans, metrics
from heldout.evaluation.controls import Entry
from heldout.evaluation.progress import SILENT, Progress
from heldout.evaluation.tasks import TaskCard, TaskKind

SPECIES = {"homo_sapiens": "human", "mus_musculus": "mouse"}


@dataclass(frozen=True, eq=False)
class TaskData:
    """The cells of a task (all its datasets, concatenated), with what each task kind needs."""

    labels: np.ndarray
    split: np.ndarray
    group: np.ndarray  # the dataset each cell comes from (its short name)
    batch: np.ndarray | None
    scored: np.ndarray  # bool: cells with a usable label


@dataclass
class Scores:
    seeds: list[int]
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # entry -> metric -> per seed
    per_class: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # entry -> classifier -> label
    only: str | None = None  # score this entry alone (the others are context: integration's unintegrated)
    timings: dict[str, dict[str, float]] = field(default_factory=dict)  # entry -> step -> seconds (all seeds)
    progress: Progress = field(default=SILENT, repr=False, compare=False)

    def add(self, entry: str, metric: str, value: float) -> None:
        self.values.setdefault(entry, {}).setdefault(metric, []).append(float(value))

    def scoring(self, entries: list[Entry]) -> list[Entry]:
        """The entries this run scores."""
        return [e for e in entries if self.only in (None, e.name)]

    def merge(self, other: Scores) -> None:
        self.values.update(other.values)
        self.per_class.update(other.per_class)
        self.timings.update(other.timings)

    def clock(self, entry: str, *, per_step: int = 0) -> metrics.Clock:
        """Times ``entry``'s steps; with ``per_step``, each step's end advances the progress bar that much."""
        on_step = (lambda step: self.advance(entry, step, per_step)) if per_step else None
        return metrics.Clock(self.timings.setdefault(entry, {}), on_step)

    def advance(self, entry: str, step: str, units: float = 1) -> None:
        self.progress.advance(f"{entry}: {step}", units)


def units(task: TaskCard, data: TaskData, entries: list[Entry]) -> float:
    """The progress bar's length: entries x seeds x metrics (a seed-independent metric counts once per seed)."""
    seeds = len(task.seeds)
    if task.kind is TaskKind.clustering:
        return len(entries) * seeds * 3  # neighbours, Leiden, k-means
    if task.kind is TaskKind.integration:
        return len(entries) * seeds * (len(metrics.INTEGRATION_STEPS) + 1)  # and k-means
    pairs = len(set(data.group.tolist())) ** 2 if task.kind is TaskKind.label_transfer else 1
    return pairs * seeds * sum(1 if e.labels is not None else len(task.classifiers) for e in entries)


def _split_masks(task: TaskCard, data: TaskData) -> tuple[np.ndarray, np.ndarray]:
    train = data.scored & np.isin(data.split, task.train_splits)
    test = data.scored & (np.isin(data.split, task.test_splits) | ("all" in task.test_splits))
    return train, test


def _annotation(task: TaskCard, data: TaskData, entries: list[Entry], scores: Scores) -> None:
    train, test = _split_masks(task, data)
    if len(np.unique(data.labels[train])) < 2 or not test.any():
        msg = (f"Task {task.name!r}: needs at least two labels among the training cells and some test cells "
               f"(found {len(np.unique(data.labels[train]))} labels, {int(test.sum())} test cells).")
        raise EvaluationError(msg)
    _classify(task, data.labels, train, test, entries, scores, prefix="")


def _classify(task: TaskCard, labels: np.ndarray, train: np.ndarray, test: np.ndarray, entries: list[Entry],
              scores: Scores, *, prefix: str) -> None:
    for entry in scores.scoring(entries):
        cache: dict[str, tuple[dict, dict]] = {}
        runs: dict[str, list[dict]] = {}
        for seed in scores.seeds:
            if entry.labels is not None:  # predicted labels: scored as they are
                values, per_class = metrics.label_scores(labels[test], np.asarray(entry.labels)[test])
                for m, v in values.items():
                    scores.add(entry.name, f"{prefix}predicted_{m}", v)
                runs.setdefault("predicted", []).append(per_class)
                scores.advance(entry.name, f"{prefix}predicted")
                continue
            x = entry.embedding
            for clf in task.classifiers:
                key = clf if clf != "random_forest" else f"{clf}/{seed}"  # only the forest has a seed
                if key not in cache:
                    with scores.clock(entry.name)(f"{prefix}{clf}"):
                        predicted = metrics.classify(x[train], labels[train], x[test], clf, seed)
                        cache[key] = metrics.label_scores(labels[test], predicted)
                values, per_class = cache[key]
                for m, v in values.items():
                    scores.add(entry.name, f"{prefix}{clf}_{m}", v)
                runs.setdefault(f"{prefix}{clf}", []).append(per_class)
                scores.advance(entry.name, f"{prefix}{clf}")
        scores.per_class.setdefault(entry.name, {}).update(
            {clf: metrics.per_class_mean(r) for clf, r in runs.items()})


def _label_transfer(task: TaskCard, data: TaskData, entries: list[Entry], scores: Scores) -> None:
    groups = list(dict.fromkeys(data.group.tolist()))
    shared = set.intersection(*(set(data.labels[(data.group == g) & data.scored]) for g in groups))
    if len(shared) < 2:
        msg = f"Task {task.name!r}: its datasets share {len(shared)} label(s); transfer needs at least two."
        raise EvaluationError(msg)
    on_shared = data.scored & np.isin(data.labels, list(shared))
    for source in groups:
        for target in groups:
            train = on_shared & (data.group == source) & np.isin(data.split, task.train_splits)
            test = on_shared & (data.group == target) & np.isin(data.split, task.test_splits)
            _classify(task, data.labels, train, test, entries, scores, prefix=f"{source}_to_{target}/")


def _clustering(task: TaskCard, data: TaskData, entries: list[Entry], scores: Scores) -> None:
    _, test = _split_masks(task, data)
    labels = data.labels[test]
    for entry in scores.scoring(entries):
        runs = metrics.clustering(entry.embedding[test], labels, seeds=scores.seeds, clock=scores.clock(entry.name),
                                  advance=lambda step, units, name=entry.name: scores.advance(name, step, units))
        for values in runs:
            for m, v in values.items():
                scores.add(entry.name, m, v)


def _integration(task: TaskCard, data: TaskData, entries: list[Entry], scores: Scores) -> None:
    _, test = _split_masks(task, data)
    labels, batches = data.labels[test], data.batch[test]  # type: ignore[index]
    if len(np.unique(batches)) < 2:
        msg = f"Task {task.name!r}: the scored cells come from one {task.batch!r}; integration needs two or more."
        raise EvaluationError(msg)
    pre = next(e for e in entries if e.name == "unintegrated").embedding[test]
    for entry in scores.scoring(entries):
        x = entry.embedding[test]
        clock = scores.clock(entry.name, per_step=len(scores.seeds))
        fixed = metrics.integration_deterministic(x, pre, labels, batches, timings=clock.into, on_step=clock.on_step)
        with clock("kmeans"):
            seeded_runs = kmeans.seeded_scores(x, labels, scores.seeds)
        for seeded in seeded_runs:
            values = {**fixed, **seeded}
            values.update(metrics.aggregates(values))
            for m, v in values.items():
                scores.add(entry.name, m, v)


RUNNERS = {TaskKind.annotation: _annotation, TaskKind.label_transfer: _label_transfer,
           TaskKind.clustering: _clustering, TaskKind.integration: _integration}


def score_entry(task: TaskCard, data: TaskData, entries: list[Entry], name: str) -> Scores:
    """Every metric of entry ``name`` over every seed (the other entries are context only)."""
    scores = Scores(seeds=list(task.seeds), only=name)
    RUNNERS[task.kind](task, data, entries, scores)
    return scores


def score_task(task: TaskCard, data: TaskData, entries: list[Entry], *, scheduler: str | None = None,
               progress: bool = False) -> Scores:
    """Score every entry in this process, or each entry as a Dask task on ``scheduler``.

    ``scheduler``: ``synchronous``, ``threads``, ``processes`` or a ``dask.distributed`` scheduler
    address (see :mod:`heldout.evaluation.distributed`); results are identical either way.
    ``progress`` shows a bar over entries x seeds x metrics (on Dask, advanced as entries finish).
    """
    total = units(task, data, entries)
    with Progress(int(round(total)), progress, f"scoring {task.name}") as bar:
        scores = Scores(seeds=list(task.seeds), progress=bar)
        if scheduler is None:
            RUNNERS[task.kind](task, data, entries, scores)
            return scores
        from heldout.evaluation.distributed import run_jobs

        per_entry = total / len(entries)
        for part in run_jobs(score_entry, (task, data, entries), [(e.name,) for e in entries], scheduler=scheduler,
                             on_done=lambda i: bar.advance(f"{entries[i].name}: scored", per_entry)):
            scores.merge(part)
        return scores


def summarise(scores: Scores, roles: dict[str, str]) -> tuple[dict, dict, list[str]]:
    """(mean/std/values per entry and metric, scaled means, flags of the model)."""
    summary = {e: {m: {"mean": float(np.mean(v)), "std": float(np.std(v)), "values": v} for m, v in ms.items()}
               for e, ms in scores.values.items()}
    negatives = [e for e, r in roles.items() if r == "negative" and e in summary]
    positives = [e for e, r in roles.items() if r == "positive" and e in summary]
    scaled: dict[str, dict[str, float | None]] = {}
    flags = []
    for entry, ms in summary.items():
        for metric, stat in ms.items():
            low = max((summary[n][metric]["mean"] for n in negatives if metric in summary[n]), default=None)
            high = np.mean([summary[p][metric]["mean"] for p in positives if metric in summary[p]]) if positives \
                else None
            value = None
            if low is not None and high is not None and high - low > 1e-9:
                value = float((stat["mean"] - low) / (high - low))
            scaled.setdefault(entry, {})[metric] = value
            if roles.get(entry) == "model" and low is not None and stat["mean"] < low - 1e-12:
                worst = max(negatives, key=lambda n: summary[n][metric]["mean"] if metric in summary[n] else -np.inf)
                flags.append(f"{metric}: {stat['mean']:.3f} is below the {worst} control ({low:.3f})")
    return summary, scaled, flags
