"""Task cards: which datasets, which split, which label, which metrics, over which seeds.

``registry/tasks/<name>.yaml``. Every task is donor-disjoint: training cells
(where a task trains anything) come from the ``train_splits`` of a dataset's
donor-disjoint split and scores from its ``test_splits``. A task is scored for
the model and for controls heldout computes itself on the same cells (see
:mod:`heldout.evaluation.controls`), over at least five seeds: the split stays
fixed, classifier and clustering seeds vary.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Literal

import pydantic

from heldout.cards._base import FrozenRecord, load_card
from heldout.cards.dataset import NAME_PATTERN, SplitName
from heldout.errors import CardError, unknown_choice

MIN_SEEDS = 5


class TaskKind(enum.StrEnum):
    annotation = "annotation"  # classifiers trained on train-split embeddings, scored on the test split
    label_transfer = "label_transfer"  # train on one species, test on another (shared labels)
    clustering = "clustering"  # k-means and Leiden clusters of the embeddings vs labels
    integration = "integration"  # the scIB metric set: bio conservation and batch correction
    perturbation = "perturbation"  # predicted expression of held-out perturbations, scored by cell-eval2


Classifier = Literal["logreg", "knn", "random_forest"]
CLASSIFIERS: tuple[Classifier, ...] = ("logreg", "knn", "random_forest")
BIO = ("isolated_labels", "kmeans_nmi", "kmeans_ari", "silhouette_label", "clisi")
BATCH = ("bras", "ilisi", "kbet", "graph_connectivity", "pcr_comparison")
METRICS: dict[TaskKind, tuple[str, ...]] = {
    TaskKind.annotation: ("macro_f1", "accuracy"),
    TaskKind.label_transfer: ("macro_f1", "accuracy"),
    TaskKind.clustering: ("ari_kmeans", "nmi_kmeans", "ari_leiden", "nmi_leiden"),
    TaskKind.integration: (*BIO, *BATCH, "bio_conservation", "batch_correction", "total"),
    # The headline columns of a perturbation leaderboard; every metric of the engine is recorded.
    TaskKind.perturbation: ("vcc2026_score", "discrimination_score_l1", "pearson_delta", "mse", "mae",
                            "de_direction_match", "de_spearman_lfc_sig", "overlap_at_N", "de_sig_genes_recall"),
}
EMBEDDING_KINDS = (TaskKind.annotation, TaskKind.label_transfer, TaskKind.clustering, TaskKind.integration)


class TaskCard(FrozenRecord):
    schema_version: Literal[1]
    name: Annotated[str, pydantic.Field(pattern=NAME_PATTERN)]
    description: str
    kind: TaskKind
    dataset: str | None = None  # one dataset ...
    datasets: list[str] = pydantic.Field(default_factory=list)  # ... or several (label transfer: [human, mouse])
    label: str | None = None  # every kind but perturbation (whose conditions come from the dataset's design)
    batch: str | None = None
    train_splits: list[SplitName] = pydantic.Field(default_factory=lambda: ["train", "validation"])
    test_splits: list[SplitName | Literal["all"]] = pydantic.Field(default_factory=lambda: ["test"])
    exclude_labels: list[str] = pydantic.Field(default_factory=lambda: ["unknown", "unannotated"])
    metrics: list[str] = pydantic.Field(default_factory=list)  # default: every metric of the kind
    classifiers: list[Classifier] = pydantic.Field(default_factory=lambda: list(CLASSIFIERS))
    seeds: list[int] = pydantic.Field(default_factory=lambda: list(range(MIN_SEEDS)))

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> TaskCard:
        allowed = METRICS[self.kind]
        bad = [m for m in self.metrics if m not in allowed]
        if bad:
            msg = f"metrics {bad} are not defined for kind {self.kind.value!r}; allowed: {list(allowed)}"
            raise ValueError(msg)
        if self.kind is not TaskKind.perturbation and not self.label:
            msg = f"{self.kind.value} tasks need `label:` (the obs column they score, e.g. cell_type)"
            raise ValueError(msg)
        if self.kind is TaskKind.integration and not self.batch:
            msg = "integration tasks need `batch:` (e.g. donor_id)"
            raise ValueError(msg)
        if (self.dataset is None) == (not self.datasets):
            msg = "name exactly one of `dataset:` (a dataset card) or `datasets:` (several)"
            raise ValueError(msg)
        if self.kind is TaskKind.label_transfer and len(self.datasets) != 2:
            msg = "label_transfer tasks name two `datasets:` (e.g. the human and the mouse dataset)"
            raise ValueError(msg)
        if len(set(self.seeds)) < MIN_SEEDS:
            msg = f"a task runs over at least {MIN_SEEDS} distinct seeds, got {self.seeds}"
            raise ValueError(msg)
        return self

    @property
    def dataset_names(self) -> list[str]:
        return [self.dataset] if self.dataset else list(self.datasets)

    @property
    def perturbed_only(self) -> bool:
        """Whether the tier is of the perturbed held-out cells only (controls are every model's input)."""
        return self.kind is TaskKind.perturbation

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(self.metrics) or METRICS[self.kind]


def list_task_cards(registry: Path) -> list[str]:
    folder = registry / "tasks"
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.exists() else []


def load_task_card(name: str, registry: Path) -> TaskCard:
    path = registry / "tasks" / f"{name}.yaml"
    if not path.exists():
        raise unknown_choice("task", name, list_task_cards(registry), hint=f"Task cards live in {path.parent}.")
    card = load_card(path, TaskCard, inside=registry)
    if card.name != path.stem:
        msg = f"{path}: name {card.name!r} must match the file name {path.stem!r}."
        raise CardError(msg)
    return card
