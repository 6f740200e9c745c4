"""Leakage tiers from corpus evidence.

* RED: a task-training corpus overlaps the eval data (refused by evaluate).
* GRAY: some corpus cannot be resolved, so no overlap can be ruled out
  (a task-training corpus first: it could be RED).
* YELLOW: a pretraining corpus overlaps; every task-training corpus is clean.
* GREEN: every corpus is resolved and clean.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field

import numpy as np

from heldout.leakage.evidence import CorpusEvidence


class Tier(enum.StrEnum):
    GREEN = "GREEN"
    YELLOW = "YELLOW"
    RED = "RED"
    GRAY = "GRAY"


@dataclass(frozen=True)
class TierResult:
    model: str
    dataset: str
    version: str | None
    tier: Tier
    reason: str
    evidence: tuple[CorpusEvidence, ...]
    user_supplied: bool = False  # the card came from the user, not the registry
    splits: dict[str, str] = field(default_factory=dict)  # the tier of each split's cells


def tier_of_cells(result: TierResult, mask: np.ndarray, what: str) -> TierResult:
    """The tier of a subset of the eval cells (a split, the cells a task scores), from the same evidence."""
    evidence = [e.restrict(mask, what) for e in result.evidence]
    sub = assign_tier(result.model, result.dataset, result.version, evidence)
    return dataclasses.replace(sub, user_supplied=result.user_supplied)


def assign_tier(model: str, dataset: str, version: str | None, evidence: list[CorpusEvidence]) -> TierResult:
    task = [e for e in evidence if e.role == "task_training"]
    pre = [e for e in evidence if e.role == "pretraining"]

    def result(tier: Tier, reason: str) -> TierResult:
        return TierResult(model=model, dataset=dataset, version=version, tier=tier, reason=reason,
                          evidence=tuple(evidence))

    if hits := [e for e in task if e.status == "overlap"]:
        return result(Tier.RED, f"task-training corpus {hits[0].corpus!r} overlaps: {hits[0].reason}")
    if unknown := [e for e in task if e.status == "unresolved"]:
        return result(Tier.GRAY, f"task-training corpus {unknown[0].corpus!r} unresolved: {unknown[0].reason}")
    if hits := [e for e in pre if e.status == "overlap"]:
        return result(Tier.YELLOW, f"pretraining corpus {hits[0].corpus!r} overlaps: {hits[0].reason}")
    if unknown := [e for e in pre if e.status == "unresolved"]:
        return result(Tier.GRAY, f"pretraining corpus {unknown[0].corpus!r} unresolved: {unknown[0].reason}")
    return result(Tier.GREEN, "every corpus is documented precisely enough and none overlaps the eval data")
