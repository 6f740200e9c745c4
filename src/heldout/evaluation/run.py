"""Evaluate a model's embeddings (or predicted labels) on a task, beside controls, over every seed.

The tier is computed first, from the registry's card only, on exactly the cells
the task scores; RED is refused before anything else is read. Then the model and
the controls are scored on the same cells over the task's seeds, and one result
records everything a reader needs to trust it: dataset versions (and whether
they are retracted), the sha256 of each split and of the task card, the model,
its tier with evidence, raw and scaled scores, flags, and the heldout version.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import heldout
from heldout._files import sha256_file, write_json_atomic, write_text_atomic
from heldout.errors import EvaluationError, UsageError
from heldout.evaluation import controls, simple_baseline
from heldout.evaluation.gate import ModelIdentity, card_digest, card_scope, combine, gate_task, no_card_tier, task_tier
from heldout.evaluation.inputs import (CURATED, EvalDataset, align, load_task_datasets, read_embeddings,
                                       read_predictions)
from heldout.evaluation.scoring import SPECIES, TaskData, score_task, summarise
from heldout.evaluation.tasks import TaskCard, TaskKind, load_task_card
from heldout.leakage.tiers import Tier
from heldout.project import Project, find_project

RESULTS_TABLE = "results.jsonl"
RESULT_SCHEMA_VERSION = 2


@dataclass(frozen=True)
class EvalResult:
    schema_version: int
    task: str
    kind: str
    task_card_sha256: str
    datasets: list[dict]  # name, version, retracted, retraction, split_sha256, n_cells
    model: str
    model_card_source: str  # registry | user | none: which card decided the tier
    model_card_sha256: str | None
    model_card: dict | None  # the user-supplied card itself, so a report can re-audit it
    tier: str  # of the cells the task scores
    tier_reason: str
    dataset_tiers: dict[str, str]  # of each whole dataset (a task on a test split can be cleaner)
    evidence: list[dict]
    output: str  # embeddings | predictions
    output_sha256: str
    seeds: list[int]
    n_scored: int
    roles: dict[str, str]  # entry -> model | negative | positive | baseline
    scores: dict[str, dict[str, dict]]  # entry -> metric -> {mean, std, values}
    scaled: dict[str, dict[str, float | None]]  # entry -> metric -> scaled between the controls
    per_class: dict[str, dict[str, dict[str, float]]]  # entry -> classifier -> label -> F1
    flags: list[str]  # where the model falls below a negative control
    heldout_version: str
    created: str
    notes: list[str] = dataclasses.field(default_factory=list)  # what a reader should know (a baseline not applicable)
    timings: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)  # entry -> step -> seconds

    @property
    def gray_flag(self) -> bool:
        return self.tier == Tier.GRAY.value

    @property
    def retracted(self) -> bool:
        return any(d["retracted"] for d in self.datasets)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _task_data(task: TaskCard, data: list[EvalDataset]) -> TaskData:
    labels, split, group, batch = [], [], [], []
    for d in data:
        obs = d.adata.obs
        for column in (task.label, task.batch):
            if column and column not in obs:
                msg = f"Task {task.name!r}: column {column!r} is not in {d.name}'s obs."
                raise EvaluationError(msg, hint=f"Columns: {', '.join(obs.columns)}.")
        labels.append(obs[task.label].astype(str).to_numpy())
        split.append(d.split.astype(str))
        group.append(np.full(d.adata.n_obs, SPECIES.get(d.organism, d.name) if len(data) > 1 else d.name))
        if task.batch:
            batch.append(obs[task.batch].astype(str).to_numpy())
    labels_all = np.concatenate(labels)
    return TaskData(labels=labels_all, split=np.concatenate(split), group=np.concatenate(group),
                    batch=np.concatenate(batch) if batch else None,
                    scored=~np.isin(labels_all, task.exclude_labels))


def _simple(task: TaskCard, data: list[EvalDataset]) -> np.ndarray:
    if len(data) == 1:
        return simple_baseline.simple_embedding(data[0].adata)
    import anndata as ad

    target = data[0].organism  # other species enter through the ortholog map into the first one's genes
    parts = []
    for d in data:
        if d.organism == target:
            parts.append(d.adata.to_memory() if d.adata.isbacked else d.adata)
        elif target in d.orthologs:
            parts.append(ad.read_h5ad(d.orthologs[target]))
        else:
            msg = f"Task {task.name!r}: {d.name} ({d.organism}) has no ortholog map into {target} genes."
            raise EvaluationError(msg, hint=f"Add `orthologs: {{target_organism: {target}}}` to its card.")
    return simple_baseline.joint_simple_embedding(parts)


def evaluate(*, task: str, datasets: list[str], model: str, embeddings: str | Path | None = None,
             predictions: str | Path | None = None, ids: Path | None = None, obsm_key: str | None = None,
             model_card: Path | None = None, registry: str | Path | None = None,
             mirror_root: str | Path | None = None, results_dir: Path | None = None,
             project: Project | None = None, rescan: bool = False, values: str | None = None,
             workers: int | None = None, progress: bool = False, scheduler: str | None = None) -> EvalResult:
    """Evaluate ``model`` on ``task`` over ``datasets`` (NAME@VERSION each); write and return the result.

    ``scheduler`` scores each entry as a Dask task (:mod:`heldout.evaluation.distributed`); without
    it, entries are scored in this process. ``workers`` and ``progress`` are accepted for a uniform
    call (see :mod:`heldout.evaluation.kinds`).
    """
    project = project or find_project(fallback=True)
    task_card = load_task_card(task, project.registry)
    if values is not None:
        raise UsageError(f"--values declares the scale of predicted expression; task {task!r} is a "
                         f"{task_card.kind.value} task and takes embeddings or labels.", hint="Drop --values.")
    if (embeddings is None) == (predictions is None):
        raise UsageError("Give exactly one of --embeddings or --predictions.")
    if predictions is not None and task_card.kind is not TaskKind.annotation:
        raise UsageError(f"Predicted labels can only be scored by annotation tasks; {task!r} is {task_card.kind.value}.",
                         hint="Pass --embeddings for this task.")
    loaded = load_task_datasets(task_card, datasets, registry=registry, project=project, backed=True)
    gate = gate_task(task_card.name, task_card.test_splits, loaded, model=model, model_card=model_card,
                     registry=registry, project_root=project.root, project_registry=project.registry,
                     mirror_root=mirror_root, rescan=rescan)
    identity, tier, pairs = gate.identity, gate.tier, gate.pairs

    cell_ids = np.concatenate([d.adata.obs_names.to_numpy(dtype=str) for d in loaded])
    data = _task_data(task_card, loaded)
    output_path = Path(embeddings or predictions)  # type: ignore[arg-type]
    if embeddings is not None:
        out_ids, matrix = read_embeddings(embeddings, ids_path=ids, obsm_key=obsm_key)
        model_entry = controls.Entry(name=model, role="model", embedding=align(out_ids, matrix, _index(cell_ids),
                                                                                 what=f"embeddings {output_path.name}"))
        entries = [model_entry, *controls.embedding_controls(data.labels, data.group, _simple(task_card, loaded),
                                                             seed=task_card.seeds[0],
                                                             integration=task_card.kind is TaskKind.integration)]
    else:
        out_ids, labels = read_predictions(predictions)  # type: ignore[arg-type]
        predicted = align(out_ids, labels[:, None], _index(cell_ids), what=f"predictions {output_path.name}")[:, 0]
        train = data.scored & np.isin(data.split, task_card.train_splits)
        entries = [controls.Entry(name=model, role="model", labels=predicted),
                   *controls.prediction_controls(data.labels, data.group, data.labels[train], seed=task_card.seeds[0])]
    scores = score_task(task_card, data, entries, scheduler=scheduler, progress=progress)
    roles = {e.name: e.role for e in entries}
    summary, scaled, flags = summarise(scores, roles)
    result = EvalResult(
        schema_version=RESULT_SCHEMA_VERSION, task=task_card.name, kind=task_card.kind.value,
        task_card_sha256=sha256_file(project.registry / "tasks" / f"{task_card.name}.yaml"),
        datasets=[{"name": d.name, "version": d.version, "retracted": d.retracted, "retraction": d.retraction,
                   "split_sha256": d.split_sha256, "n_cells": int(d.adata.n_obs)} for d in loaded],
        model=model, model_card_source=identity.source, model_card_sha256=identity.card_sha256,
        model_card=identity.card.to_dict() if identity.user_supplied and identity.card else None,
        tier=tier.tier.value, tier_reason=tier.reason,
        dataset_tiers={d.name: whole.tier.value for d, (whole, _) in zip(loaded, pairs, strict=True)},
        evidence=[e.to_dict() for e in tier.evidence], output="embeddings" if embeddings else "predictions",
        output_sha256=sha256_file(output_path), seeds=list(task_card.seeds), n_scored=int(data.scored.sum()),
        roles=roles, scores=summary, scaled=scaled, per_class=scores.per_class, flags=flags,
        heldout_version=heldout.__version__, created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        timings={e: {k: round(v, 3) for k, v in steps.items()} for e, steps in scores.timings.items()})
    write_result(result, results_dir or project.root / "results")
    return result


def _index(cell_ids: np.ndarray):  # noqa: ANN202 - pandas Index
    import pandas as pd

    return pd.Index(cell_ids)


def write_result(result: EvalResult, folder: Path) -> Path:
    """One JSON per (task, datasets@versions, model), plus a line in the results table."""
    versions = "+".join(f"{d['name']}@{d['version']}" for d in result.datasets)
    path = folder / result.task / versions / f"{result.model}.json"
    write_json_atomic(path, result.to_dict())
    table = folder / RESULTS_TABLE
    lines = table.read_text().splitlines() if table.exists() else []
    lines.append(json.dumps(result.to_dict(), sort_keys=True, default=str))
    write_text_atomic(table, "\n".join(lines) + "\n")
    return path


def _identity_of_record(record: dict, known: dict) -> ModelIdentity:
    """The card a stored result must be re-audited with: the registry's for registry models, always."""
    from heldout.cards._base import parse_card
    from heldout.cards.model import ModelCard

    name = record["model"]
    if name in known:  # whatever the file says about its card
        return ModelIdentity(name=name, source="registry", card=known[name], card_sha256=card_digest(known[name]))
    if record.get("model_card_source") == "user" and isinstance(record.get("model_card"), dict):
        card = parse_card(record["model_card"], ModelCard, source=f"the user-supplied card stored with {name!r}")
        if card.name == name:
            return ModelIdentity(name=name, source="user", card=card, card_sha256=card_digest(card))
    return ModelIdentity(name=name, source="none", card=None, card_sha256=None)


@dataclass(frozen=True)
class Recheck:
    """A tier recomputed for a stored result, and which card it was computed from."""

    tier: str
    card_source: str  # registry | user | none


def record_key(record: dict) -> tuple[str, str, str]:
    versions = "+".join(f"{d['name']}@{d['version']}" for d in record["datasets"])
    return record["model"], versions, record["task"]


def recheck_tiers(records: list[dict], *, project: Project | None = None, registry: str | Path | None = None,
                  mirror_root: str | Path | None = None, rescan: bool = False) -> dict[tuple[str, str, str], Recheck]:
    """Recompute the tier of every (model, datasets, task) in ``records`` from cards and eval data.

    Nothing a results file says about a tier is used: a result edited to say
    GREEN shows the tier the registry's card gives.
    """
    from heldout.leakage.audit import eval_from_curated, eval_from_release

    project = project or find_project(fallback=True)
    tiers: dict[tuple[str, str, str], Recheck] = {}
    for record in records:
        key = record_key(record)
        if key in tiers:
            continue
        task_card = load_task_card(record["task"], project.registry)
        datasets = record["datasets"]
        scope = card_scope(datasets[0]["version"], registry=registry, project_root=project.root,
                           project_registry=project.registry)
        identity = _identity_of_record(record, scope.cards)
        scored = []
        for d in datasets:
            data = (eval_from_curated(project, d["name"]) if d["version"] == CURATED
                    else eval_from_release(d["version"], registry=registry, datasets=[d["name"]])[0])
            if identity.card is None:
                scored.append(no_card_tier(identity, d["name"], d["version"]))
                continue
            scored.append(task_tier(identity, data, task_card.test_splits, scope=scope, project_root=project.root,
                                    mirror_root=mirror_root, rescan=rescan, perturbed_only=task_card.perturbed_only)[1])
        tiers[key] = Recheck(combine(scored).tier.value, identity.source)
    return tiers
