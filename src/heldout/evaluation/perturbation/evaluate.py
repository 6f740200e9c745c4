"""Evaluate a model's predicted cells on a perturbation task, beside baselines and the replicate ceiling.

The order is the transcriptomics tasks' order: the tier first (from the registry's card, on exactly
the cells the task scores; RED is refused before the predictions are opened), then the predictions
are checked against the task, then every entry (the model, ``control``, ``mean``, ``additive``,
``linear``, and ``technical_replicate`` over the task's seeds) is scored by cell-eval2, each cell line
and entry as its own job, in parallel. The result records raw metrics and the vcc2026 score per test
subgroup, and flags a model below the mean baseline.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

import heldout
from heldout._files import sha256_file
from heldout.errors import UsageError
from heldout.evaluation.gate import gate_task
from heldout.evaluation.inputs import load_task_datasets
from heldout.evaluation.perturbation import baselines
from heldout.evaluation.perturbation.baselines import Entry
from heldout.evaluation.perturbation.data import PerturbationData, perturbation_data
from heldout.evaluation.perturbation.engine import ALL, SCORE, Engine, Scaled, aggregate, per_perturbation, \
    replicate_scale
from heldout.evaluation.perturbation.predictions import read_predictions
from heldout.evaluation.progress import Progress
from heldout.evaluation.tasks import TaskCard, TaskKind, load_task_card
from heldout.project import Project, find_project

MEAN, REPLICATE = "mean", "technical_replicate"


def _score_job(pred, real, engine: Engine, line: str, multi: bool) -> tuple[pd.DataFrame, float]:  # noqa: ANN001
    start = time.perf_counter()
    rows = per_perturbation(pred, real, engine)
    if multi:
        rows["perturbation"] = line + "/" + rows["perturbation"].astype(str)
    return rows, time.perf_counter() - start


def score_entries(entries: list[Entry], data: PerturbationData, engine: Engine, *, workers: int | None = None,
                  progress: bool = False, timings: dict[str, dict[str, float]] | None = None
                  ) -> dict[tuple[str, int | None], pd.DataFrame]:
    """Per-perturbation rows of every (entry, seed), each cell line and entry a job of its own, in parallel.

    ``timings`` receives each entry's cell-eval2 seconds (summed over its lines and seeds).
    """
    timings = {} if timings is None else timings
    jobs = [(e, line) for e in entries for line in data.lines]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    multi = len(data.lines) > 1

    def args(e: Entry, line: str) -> tuple:
        return (e.preds[line], (e.reals or data.real)[line], engine, line, multi)

    parts: dict[tuple[str, int | None], list[pd.DataFrame]] = {}
    with Progress(len(jobs), progress, "scoring entries with cell-eval2") as bar:

        def record(e: Entry, result: tuple[pd.DataFrame, float]) -> None:
            rows, seconds = result
            parts.setdefault((e.name, e.seed), []).append(rows)
            _add(timings, e.name, seconds)
            bar.advance(e.name)

        if workers == 1:
            for e, line in jobs:
                record(e, _score_job(*args(e, line)))
        else:
            # spawned, not forked: a fork taken while polars', numba's or BLAS's threads hold a lock deadlocks
            with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = [(e, pool.submit(_score_job, *args(e, line))) for e, line in jobs]
                for e, future in futures:
                    record(e, future.result())
    return {key: pd.concat(frames, ignore_index=True) for key, frames in parts.items()}


def _add(timings: dict[str, dict[str, float]], entry: str, seconds: float) -> None:
    steps = timings.setdefault(entry, {})
    steps["cell-eval2"] = round(steps.get("cell-eval2", 0.0) + seconds, 3)


def entries_for(data: PerturbationData, model: str, model_preds: dict, task: TaskCard) -> tuple[list[Entry], list[str]]:
    """The model's entry, then heldout's baselines and the replicate ceiling; notes on what was not applicable."""
    fit = baselines.training(data)
    entries = [Entry(model, "model", model_preds), baselines.control_entry(data, fit),
               baselines.mean_entry(data, fit), baselines.additive_entry(data, fit)]
    linear = baselines.linear_entry(data, fit, data.symbols)
    notes = []
    if isinstance(linear, str):  # not applicable, and why
        notes.append(linear)
    else:
        entries.append(linear)
    entries += baselines.replicate_entries(data, list(task.seeds))
    return entries, notes + [n for e in entries for n in e.notes]


def model_predictions(path: Path, values: str, data: PerturbationData) -> tuple[dict, int]:
    """The model's predicted cells per cell line, with the held-out real controls added where it gave none."""
    import anndata as ad

    preds = read_predictions(path, values=values, genes=data.genes, expected=data.expected, lines=data.lines)
    keys = preds.adata.obs["key"].astype(str).to_numpy()
    out = {}
    for line, real in data.real.items():
        prefix = "" if len(data.lines) == 1 else f"{line}/"
        if prefix:
            mine = np.char.startswith(keys.astype(str), prefix)
            part = preds.adata[mine].copy()
            part.obs["perturbation"] = [k.removeprefix(prefix) for k in keys[mine]]
        else:  # one line: the predictions are its own, no copy
            part = preds.adata
            part.obs["perturbation"] = keys
        part.obs["cell_line"] = line
        part.obs = part.obs[["perturbation", "cell_line"]]
        if not (part.obs["perturbation"] == "control").any():
            controls = real[real.obs["perturbation"] == "control"]
            part = ad.concat([part, controls], index_unique=None)
            part.obs_names_make_unique()
        out[line] = part
    return out, preds.n_cells


def summarise(rows: dict[tuple[str, int | None], pd.DataFrame], roles: dict[str, str], data: PerturbationData,
              engine: Engine) -> tuple[dict, dict, list[str]]:
    """(scores: entry -> metric -> {mean, std, values}, scaled: entry -> metric -> value, flags)."""
    per_seed: dict[str, list[dict[str, dict[str, float]]]] = {}
    for (name, _seed), frame in rows.items():
        per_seed.setdefault(name, []).append(aggregate(frame, data.subgroups, engine))
    with warnings.catch_warnings():  # a metric undefined on every seed stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        means = {name: {g: {m: float(np.nanmean([r[g].get(m, np.nan) for r in runs])) for m in runs[0][g]}
                        for g in runs[0]} for name, runs in per_seed.items()}
    scores: dict[str, dict[str, dict]] = {}
    scaled: dict[str, dict[str, float | None]] = {}
    flags: list[str] = []
    for name, runs in per_seed.items():
        for group in runs[0]:
            prefix = "" if group == ALL else f"{group}/"
            for metric in runs[0][group]:
                values = [r[group].get(metric, np.nan) for r in runs]
                scores.setdefault(name, {})[prefix + metric] = _stat(values)
            s = replicate_scale(means[name][group], means[MEAN][group], means[REPLICATE][group])
            scores[name][prefix + SCORE] = _stat([s.score if s.score is not None else np.nan])
            scaled.setdefault(name, {})[prefix + SCORE] = s.score
            scaled[name] |= {f"{prefix}{SCORE}/{m}": v for m, v in s.members.items()}
            if roles[name] == "model":
                flags += _flags(group, s)
    return scores, scaled, flags


def _stat(values: list[float]) -> dict:
    clean = [float(v) for v in values]
    finite = [v for v in clean if np.isfinite(v)]
    return {"mean": float(np.mean(finite)) if finite else None, "std": float(np.std(finite)) if finite else None,
            "values": [v if np.isfinite(v) else None for v in clean]}


def _flags(group: str, s: Scaled) -> list[str]:
    if s.score is not None and s.score < 0:
        return [f"{group}: {SCORE} {s.score:.3f} is below the mean baseline (0)"]
    return []


def evaluate(*, task: str, datasets: list[str], model: str, predictions: str | Path | None = None,
             values: str | None = None, embeddings: str | Path | None = None, model_card: Path | None = None,
             registry: str | Path | None = None, mirror_root: str | Path | None = None,
             results_dir: Path | None = None, project: Project | None = None, rescan: bool = False,
             workers: int | None = None, progress: bool = False, scheduler: str | None = None,
             **_: object):  # noqa: ANN201 - EvalResult
    """Evaluate ``model``'s predicted cells on the perturbation ``task``; write and return the result."""
    from heldout.evaluation.run import RESULT_SCHEMA_VERSION, EvalResult, write_result

    project = project or find_project(fallback=True)
    task_card = load_task_card(task, project.registry)
    if task_card.kind is not TaskKind.perturbation:
        raise UsageError(f"Task {task!r} is a {task_card.kind.value} task, not a perturbation task.")
    if embeddings is not None or predictions is None:
        raise UsageError(f"Task {task!r} scores predicted cells: give --predictions FILE.h5ad (cell-eval's AnnData "
                         f"shape) and --values counts|log1p, not embeddings.")
    if scheduler is not None:
        raise UsageError("Perturbation tasks score their entries in local worker processes: use --workers N, "
                         "not --scheduler.")
    if values is None:
        raise UsageError("Declare the scale of the predicted values: --values counts or --values log1p.",
                         hint="counts: raw (integer) counts; log1p: log1p of counts per 10,000.")
    loaded = load_task_datasets(task_card, datasets, registry=registry, project=project)
    gate = gate_task(task_card.name, task_card.test_splits, loaded, model=model, model_card=model_card,
                     registry=registry, project_root=project.root, project_registry=project.registry,
                     mirror_root=mirror_root, rescan=rescan, perturbed_only=task_card.perturbed_only)
    [dataset] = loaded
    data = perturbation_data(dataset, train_splits=task_card.train_splits, test_splits=task_card.test_splits)
    model_preds, n_predicted = model_predictions(Path(predictions), values, data)
    entries, notes = entries_for(data, model, model_preds, task_card)
    engine = Engine(target_gene_map=data.target_gene_map)
    timings: dict[str, dict[str, float]] = {}
    rows = score_entries(entries, data, engine, workers=workers, progress=progress, timings=timings)
    roles = {e.name: e.role for e in entries}
    scores, scaled, flags = summarise(rows, roles, data, engine)
    whole, _ = gate.pairs[0]
    result = EvalResult(
        schema_version=RESULT_SCHEMA_VERSION, task=task_card.name, kind=task_card.kind.value,
        task_card_sha256=sha256_file(project.registry / "tasks" / f"{task_card.name}.yaml"),
        datasets=[{"name": dataset.name, "version": dataset.version, "retracted": dataset.retracted,
                   "retraction": dataset.retraction, "split_sha256": dataset.split_sha256,
                   "n_cells": int(dataset.adata.n_obs)}],
        model=model, model_card_source=gate.identity.source, model_card_sha256=gate.identity.card_sha256,
        model_card=gate.identity.card.to_dict() if gate.identity.user_supplied and gate.identity.card else None,
        tier=gate.tier.tier.value, tier_reason=gate.tier.reason, dataset_tiers={dataset.name: whole.tier.value},
        evidence=[e.to_dict() for e in gate.tier.evidence], output="predictions",
        output_sha256=sha256_file(predictions), seeds=list(task_card.seeds), n_scored=len(data.expected),
        roles=roles, scores=scores, scaled=scaled, per_class={}, flags=flags,
        heldout_version=heldout.__version__, created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        notes=[f"predictions: {n_predicted} cells, declared {values}; scored as log1p(CP10k) by cell-eval2 "
               f"{_version('cell-eval2')}", *notes], timings=timings)
    write_result(result, results_dir or project.root / "results")
    return result


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
