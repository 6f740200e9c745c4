"""Task cards: which dataset, which split, which label, which metrics.

``registry/tasks/<name>.yaml``. A task is scored for a model and for the two
baselines heldout computes itself on the same cells and splits.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Literal

import pydantic

from heldout.cards._base import FrozenRecord, load_card
from heldout.cards.dataset import NAME_PATTERN, SplitName
from heldout.errors import CardError, unknown_choice


class TaskKind(enum.StrEnum):
    annotation = "annotation"  # classifier on train-split embeddings, scored on the test split
    clustering = "clustering"  # k-means and Leiden on the embeddings vs labels
    integration = "integration"  # silhouette-based label conservation and batch mixing


METRICS: dict[TaskKind, tuple[str, ...]] = {
    TaskKind.annotation: ("macro_f1", "accuracy"),
    TaskKind.clustering: ("ari_kmeans", "nmi_kmeans", "ari_leiden", "nmi_leiden"),
    TaskKind.integration: ("asw_label", "asw_batch"),
}


class TaskCard(FrozenRecord):
    schema_version: Literal[1]
    name: Annotated[str, pydantic.Field(pattern=NAME_PATTERN)]
    description: str
    kind: TaskKind
    dataset: str
    label: str
    batch: str | None = None
    train_splits: list[SplitName] = pydantic.Field(default_factory=lambda: ["train", "validation"])
    test_splits: list[SplitName | Literal["all"]] = pydantic.Field(default_factory=lambda: ["test"])
    exclude_labels: list[str] = pydantic.Field(default_factory=lambda: ["unknown", "unannotated"])
    metrics: list[str]
    seed: int = 0

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> TaskCard:
        allowed = METRICS[self.kind]
        bad = [m for m in self.metrics if m not in allowed]
        if bad:
            msg = f"metrics {bad} are not defined for kind {self.kind.value!r}; allowed: {list(allowed)}"
            raise ValueError(msg)
        if self.kind is TaskKind.integration and not self.batch:
            msg = "integration tasks need `batch:` (e.g. donor_id)"
            raise ValueError(msg)
        return self


def list_task_cards(registry: Path) -> list[str]:
    folder = registry / "tasks"
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.exists() else []


def load_task_card(name: str, registry: Path) -> TaskCard:
    path = registry / "tasks" / f"{name}.yaml"
    if not path.exists():
        raise unknown_choice("task", name, list_task_cards(registry), hint=f"Task cards live in {path.parent}.")
    card = load_card(path, TaskCard)
    if card.name != path.stem:
        msg = f"{path}: name {card.name!r} must match the file name {path.stem!r}."
        raise CardError(msg)
    return card
