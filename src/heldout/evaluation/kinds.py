"""Which evaluator scores a task: one entry per task kind, so adding a kind adds a module, not a branch.

Embedding and label tasks (annotation, label transfer, clustering, integration) are scored by
:func:`heldout.evaluation.run.evaluate`; perturbation tasks by
:func:`heldout.evaluation.perturbation.evaluate.evaluate`. Both gate on the tier first and write the
same result record.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from heldout.evaluation.tasks import EMBEDDING_KINDS, TaskKind, load_task_card
from heldout.project import Project, find_project

EVALUATORS: dict[TaskKind, str] = {
    **{kind: "heldout.evaluation.run:evaluate" for kind in EMBEDDING_KINDS},
    TaskKind.perturbation: "heldout.evaluation.perturbation.evaluate:evaluate",
}


def evaluate(*, task: str, project: Project | None = None, **options: object):  # noqa: ANN201 - EvalResult
    """Evaluate with the evaluator of ``task``'s kind (see :data:`EVALUATORS`); options go to it unchanged."""
    project = project or find_project(fallback=True)
    kind = load_task_card(task, project.registry).kind
    module, name = EVALUATORS[kind].split(":")
    return getattr(importlib.import_module(module), name)(task=task, project=project, **options)


def dataset_refs(task: str, release: str, registry: Path) -> list[str]:
    """``NAME@release`` for every dataset ``task`` names."""
    return [f"{name}@{release}" for name in load_task_card(task, registry).dataset_names]
