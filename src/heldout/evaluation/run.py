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
from heldout.evaluation.gate import ModelIdentity, no_card_tier, refuse_red, resolve_model
from heldout.evaluation.inputs import CURATED as CURATED_VERSION
from heldout.evaluation.inputs import EvalDataset, align, load_eval_dataset, read_embeddings
from heldout.evaluation.tasks import TaskCard, TaskKind, load_task_card
from heldout.leakage.audit import audit
from heldout.leakage.tiers import Tier, TierResult
from heldout.project import Project, find_project

RESULTS_TABLE = "results.jsonl"


@dataclass(frozen=True)
class EvalResult:
    dataset: str
    dataset_version: str
    task: str
    kind: str
    model: str
    tier: str
    tier_reason: str
    gray_flag: bool
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


def leakage_tier(identity: ModelIdentity, data: EvalDataset, *, mirror_root: str | Path | None) -> TierResult:
    """The tier of ``identity`` on ``data``, computed from its card (never read from anywhere)."""
    if identity.card is None:
        return no_card_tier(identity, data.name, data.version)
    return audit([identity.card], [data.audit_data], mirror_root=mirror_root)[0]


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
             project: Project | None = None) -> EvalResult:
    """Evaluate ``model``'s embeddings on ``dataset`` (NAME@VERSION) for ``task``; write the result."""
    project = project or find_project()
    task_card = load_task_card(task, project.registry)
    data = load_eval_dataset(dataset, registry=registry, project=project)
    if data.name != task_card.dataset:
        msg = f"Task {task!r} is defined on dataset {task_card.dataset!r}, not {data.name!r}."
        raise EvaluationError(msg, hint=f"Use --dataset {task_card.dataset}@VERSION.")
    identity = resolve_model(model, model_card=model_card, registry=project.registry)
    tier = leakage_tier(identity, data, mirror_root=mirror_root)
    refuse_red(identity, tier, f"{data.name}@{data.version}")
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
        model_card_source=identity.source, model_card_sha256=identity.card_sha256,
        model_card=identity.card.to_dict() if identity.user_supplied and identity.card else None,
        n_train=int(train.sum()) if task_card.kind is TaskKind.annotation else 0, n_test=int(test.sum()),
        seed=task_card.seed, embeddings_sha256=sha256_file(embeddings), scores=scores,
        evidence=[dataclasses.asdict(e) for e in tier.evidence], heldout_version=heldout.__version__)
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


def _identity_of_record(record: dict, project: Project) -> ModelIdentity:
    """The card a stored result must be re-audited with: the registry's for registry models, always."""
    from heldout.cards._base import parse_card
    from heldout.cards.model import ModelCard, list_model_cards, load_model_card
    from heldout.evaluation.gate import card_digest

    name = record["model"]
    if name in list_model_cards(project.registry):  # whatever the file says about its card
        card = load_model_card(name, project.registry)
        return ModelIdentity(name=name, source="registry", card=card, card_sha256=card_digest(card))
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
                  mirror_root: str | Path | None = None) -> dict[tuple[str, str, str], Recheck]:
    """Recompute the tier of every (model, dataset, version) in ``records`` from cards and eval data.

    Nothing a results file says about a tier is used: a result edited to say
    GREEN shows the tier the registry's card gives.
    """
    from heldout.leakage.audit import eval_from_curated, eval_from_release

    project = project or find_project()
    tiers: dict[tuple[str, str, str], Recheck] = {}
    for record in records:
        key = (record["model"], record["dataset"], record["dataset_version"])
        if key in tiers:
            continue
        identity = _identity_of_record(record, project)
        name, version = record["dataset"], record["dataset_version"]
        if identity.card is None:
            tiers[key] = Recheck(no_card_tier(identity, name, version).tier.value, identity.source)
            continue
        data = (eval_from_curated(project, name) if version == CURATED_VERSION
                else eval_from_release(version, registry=registry, datasets=[name])[0])
        tiers[key] = Recheck(audit([identity.card], [data], mirror_root=mirror_root)[0].tier.value, identity.source)
    return tiers
