"""Score a model's embeddings on a released dataset, beside the random and simple baselines.

Every result carries the dataset version, task, model and the leakage tier
with its evidence. RED pairings are refused before anything is computed;
GRAY results are flagged. Results are written as JSON and appended to
``results/results.jsonl``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import heldout
from heldout._files import sha256_file, write_json_atomic, write_text_atomic
from heldout.errors import EvaluationError
from heldout.evaluation import baselines, metrics
from heldout.evaluation.gate import ModelIdentity, card_scope, refuse_red, resolve_model, task_tier
from heldout.evaluation.inputs import CURATED as CURATED_VERSION
from heldout.evaluation.inputs import EvalDataset, align, load_eval_dataset, read_embeddings
from heldout.evaluation.tasks import TaskCard, TaskKind, load_task_card
from heldout.leakage.tiers import Tier
from heldout.project import Project, find_project

RESULTS_TABLE = "results.jsonl"


@dataclass(frozen=True)
class EvalResult:
    dataset: str
    dataset_version: str
    task: str
    kind: str
    model: str
    tier: str  # of the cells the task scores
    tier_reason: str
    gray_flag: bool
    dataset_tier: str  # of the whole dataset (a task on the test split can be cleaner than its dataset)
    model_card_source: str  # registry | user | none: which card decided the tier
    model_card_sha256: str | None
    model_card: dict | None  # the user-supplied card itself, so a report can re-audit it
    n_train: int
    n_test: int
    seed: int
    embeddings_sha256: str
    scores: dict[str, dict[str, float]]  # {"model"|"random"|"simple": {metric: value}}
    evidence: list[dict]
    heldout_version: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _cells(task: TaskCard, data: EvalDataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    obs = data.adata.obs
    if task.label not in obs:
        msg = f"Task {task.name!r}: label column {task.label!r} is not in {data.name}'s obs."
        raise EvaluationError(msg)
    labels = obs[task.label].astype(str).to_numpy()
    keep = ~np.isin(labels, task.exclude_labels)
    test = keep & (np.isin(data.split, task.test_splits) | ("all" in task.test_splits))
    train = keep & np.isin(data.split, task.train_splits)
    if not test.any():
        msg = f"Task {task.name!r} on {data.name}@{data.version}: no labelled cells in splits {task.test_splits}."
        raise EvaluationError(msg)
    return labels, train, test


def score(task: TaskCard, data: EvalDataset, x: np.ndarray) -> dict[str, float]:
    labels, train, test = _cells(task, data)
    if task.kind is TaskKind.annotation:
        if len(np.unique(labels[train])) < 2:
            msg = f"Task {task.name!r}: the train split has fewer than two labels; cannot train a classifier."
            raise EvaluationError(msg)
        values = metrics.annotation(x[train], labels[train], x[test], labels[test], seed=task.seed)
    elif task.kind is TaskKind.clustering:
        values = metrics.clustering(x[test], labels[test], seed=task.seed)
    else:
        batches = data.adata.obs[task.batch].astype(str).to_numpy()
        values = metrics.integration(x[test], labels[test], batches[test])
    return {m: values[m] for m in task.metrics}


def evaluate(*, dataset: str, task: str, model: str, embeddings: str | Path, ids: Path | None = None,
             obsm_key: str | None = None, model_card: Path | None = None, registry: str | Path | None = None,
             mirror_root: str | Path | None = None, results_dir: Path | None = None,
             project: Project | None = None, rescan: bool = False) -> EvalResult:
    """Evaluate ``model``'s embeddings on ``dataset`` (NAME@VERSION) for ``task``; write the result."""
    project = project or find_project()
    task_card = load_task_card(task, project.registry)
    data = load_eval_dataset(dataset, registry=registry, project=project)
    if data.name != task_card.dataset:
        msg = f"Task {task!r} is defined on dataset {task_card.dataset!r}, not {data.name!r}."
        raise EvaluationError(msg, hint=f"Use --dataset {task_card.dataset}@VERSION.")
    scope = card_scope(data.version, registry=registry, project_root=project.root,
                       project_registry=project.registry)
    identity = resolve_model(model, model_card=model_card, known=scope.cards, where=scope.where)
    whole, tier = task_tier(identity, data.audit_data, task_card.test_splits, scope=scope, project_root=project.root,
                            mirror_root=mirror_root, rescan=rescan)
    refuse_red(identity, tier, f"the cells {task_card.name} scores in {data.name}@{data.version}")
    cell_ids, matrix = read_embeddings(embeddings, ids_path=ids, obsm_key=obsm_key)
    x_model = align(cell_ids, matrix, data.adata.obs_names, what=f"embeddings {Path(embeddings).name}")
    embeddings_by_name = {
        "model": x_model,
        "random": baselines.random_embedding(data.adata.n_obs, seed=task_card.seed, dims=x_model.shape[1]),
        "simple": baselines.simple_embedding(data.adata, seed=task_card.seed),
    }
    scores = {name: score(task_card, data, x) for name, x in embeddings_by_name.items()}
    _, train, test = _cells(task_card, data)
    result = EvalResult(
        dataset=data.name, dataset_version=data.version, task=task_card.name, kind=task_card.kind.value,
        model=model, tier=tier.tier.value, tier_reason=tier.reason, gray_flag=tier.tier is Tier.GRAY,
        dataset_tier=whole.tier.value,
        model_card_source=identity.source, model_card_sha256=identity.card_sha256,
        model_card=identity.card.to_dict() if identity.user_supplied and identity.card else None,
        n_train=int(train.sum()) if task_card.kind is TaskKind.annotation else 0, n_test=int(test.sum()),
        seed=task_card.seed, embeddings_sha256=sha256_file(embeddings), scores=scores,
        evidence=[e.to_dict() for e in tier.evidence], heldout_version=heldout.__version__)
    write_result(result, results_dir or project.root / "results")
    return result


def write_result(result: EvalResult, folder: Path) -> Path:
    """One JSON per (dataset@version, task, model), plus a line in the results table."""
    path = folder / f"{result.dataset}@{result.dataset_version}" / result.task / f"{result.model}.json"
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
    from heldout.evaluation.gate import card_digest

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


def recheck_tiers(records: list[dict], *, project: Project | None = None, registry: str | Path | None = None,
                  mirror_root: str | Path | None = None, rescan: bool = False,
                  ) -> dict[tuple[str, str, str, str], Recheck]:
    """Recompute the tier of every (model, dataset, version, task) in ``records`` from cards and eval data.

    Nothing a results file says about a tier is used: a result edited to say
    GREEN shows the tier the registry's card gives.
    """
    from heldout.leakage.audit import eval_from_curated, eval_from_release

    project = project or find_project()
    tiers: dict[tuple[str, str, str, str], Recheck] = {}
    for record in records:
        name, version = record["dataset"], record["dataset_version"]
        key = (record["model"], name, version, record["task"])
        if key in tiers:
            continue
        scope = card_scope(version, registry=registry, project_root=project.root, project_registry=project.registry)
        identity = _identity_of_record(record, scope.cards)
        task_card = load_task_card(record["task"], project.registry)
        data = (eval_from_curated(project, name) if version == CURATED_VERSION
                else eval_from_release(version, registry=registry, datasets=[name])[0])
        _, tier = task_tier(identity, data, task_card.test_splits, scope=scope, project_root=project.root,
                            mirror_root=mirror_root, rescan=rescan)
        tiers[key] = Recheck(tier.tier.value, identity.source)
    return tiers
