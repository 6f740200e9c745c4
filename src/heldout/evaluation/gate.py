"""The leakage gate: which model card decides a tier, and refusing RED.

A tier is only as trustworthy as the card it comes from, so the rules are strict:

* a model the registry knows (``registry/models/<name>.yaml``) is audited with
  the registry's card and nothing else; a card file passed for it is refused;
* a card file is accepted only for a model the registry does not know, only if
  its ``name`` is the model's name, and the result is marked user-supplied;
* a model with no card at all is GRAY;
* the tier is always computed here, from the card and the eval data; no tier
  written in a card, a results file or anywhere else is ever read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from heldout.cards.model import ModelCard, list_model_cards, load_model_card
from heldout.errors import LeakageRefused, UsageError
from heldout.leakage.evidence import EvalData
from heldout.leakage.tiers import Tier, TierResult, tier_of_cells

CardSource = Literal["registry", "user", "none"]


@dataclass(frozen=True, kw_only=True)
class ModelIdentity:
    """A model name and the card its tier is computed from."""

    name: str
    source: CardSource
    card: ModelCard | None
    card_sha256: str | None

    @property
    def user_supplied(self) -> bool:
        return self.source == "user"


def card_digest(card: ModelCard) -> str:
    """sha256 of a card's canonical JSON: what a result records of the card it was gated by."""
    return hashlib.sha256(json.dumps(card.to_dict(), sort_keys=True).encode()).hexdigest()


def registry_cards(registry: Path) -> dict[str, ModelCard]:
    """Every model card of a local registry, by name."""
    return {name: load_model_card(name, registry) for name in list_model_cards(registry)}


def resolve_model(model: str, *, model_card: Path | None, known: dict[str, ModelCard],
                  where: str = "the registry") -> ModelIdentity:
    """The card that decides ``model``'s tier; refuse any card that would override the registry's.

    ``known`` are the registry's cards: those of the release being evaluated, or
    of the local registry for curated data.
    """
    if model in known:
        if model_card is not None:
            msg = (f"Model {model!r} has a card in {where}; its leakage tier comes from that card only, so "
                   f"--model-card {model_card} is refused.")
            raise UsageError(msg, hint=f"To evaluate a variant trained on other data, give it a name of its own "
                                       f"(e.g. --model {model}-variant) with its own card.")
        card = known[model]
        return ModelIdentity(name=model, source="registry", card=card, card_sha256=card_digest(card))
    if model_card is None:
        return ModelIdentity(name=model, source="none", card=None, card_sha256=None)
    card = load_model_card(model_card, Path("."))
    if card.name != model:
        msg = f"The card {model_card} describes model {card.name!r}, not {model!r}."
        raise UsageError(msg, hint=f"Pass --model {card.name}, or the card of {model!r}.")
    if card.name in known:  # the file is named differently but claims a registry model's name
        msg = f"The card {model_card} claims the name {card.name!r}, which belongs to a registry model."
        raise UsageError(msg, hint="A user-supplied card needs a name the registry does not use.")
    return ModelIdentity(name=model, source="user", card=card, card_sha256=card_digest(card))


def no_card_tier(identity: ModelIdentity, dataset: str, version: str | None) -> TierResult:
    return TierResult(model=identity.name, dataset=dataset, version=version, tier=Tier.GRAY,
                      reason=f"no model card for {identity.name!r}: its training data is undocumented", evidence=())


def refuse_red(identity: ModelIdentity, tier: TierResult, what: str) -> None:
    """Raise :class:`LeakageRefused` for a RED pairing; nothing is computed or written for it."""
    if tier.tier is Tier.RED:
        whose = " (user-supplied card)" if identity.user_supplied else ""
        msg = (f"{identity.name}{whose} x {what} is RED: {tier.reason}. Evaluating it would measure "
               "memorisation, not generalisation.")
        raise LeakageRefused(msg, hint="Pick data the model was not task-trained on (see `heldout audit`).")


@dataclass(frozen=True, kw_only=True)
class CardScope:
    """Where registry model cards come from for one evaluation, and where their recorded corpora live."""

    cards: dict[str, ModelCard]
    corpora_root: Path
    where: str


def card_scope(version: str, *, registry: str | Path | None, project_root: Path, project_registry: Path) -> CardScope:
    """A release's own model cards and corpora for released data; the local registry's for curated data."""
    if version == "curated":
        return CardScope(cards=registry_cards(project_registry), corpora_root=project_root, where="the registry")
    from heldout.pull import materialize_corpora, release_models

    return CardScope(cards={card.name: card for card in release_models(version, registry)},
                     corpora_root=materialize_corpora(version, registry), where=f"release {version}")


def scored_cells(test_splits: list[str], split: np.ndarray | None, n: int) -> np.ndarray:
    """The eval cells a task scores: its test splits, or every cell for ``all``."""
    if "all" in test_splits or split is None:
        return np.ones(n, dtype=bool)
    return np.isin(split, test_splits)


def task_tier(identity: ModelIdentity, data: EvalData, test_splits: list[str], *, scope: CardScope,
              project_root: Path, mirror_root: str | Path | None, rescan: bool = False,
              perturbed_only: bool = False) -> tuple[TierResult, TierResult]:
    """(tier of the whole dataset, tier of the cells the task scores), from the model's card only.

    A registry card's recorded corpora are read where its registry keeps them; a
    user card's relative to the user's own project. A perturbation task scores the perturbed
    held-out cells (``perturbed_only``): controls are the basal state every model is given.
    """
    from heldout.leakage.audit import audit

    if identity.card is None:
        gray = no_card_tier(identity, data.name, data.version)
        return gray, gray
    root = scope.corpora_root if identity.source == "registry" else project_root
    whole = audit([identity.card], [data], mirror_root=mirror_root, project_root=root, rescan=rescan,
                  user_supplied=identity.user_supplied)[0]
    mask, what = scored_cells(test_splits, data.split, data.n), "cells the task scores"
    if perturbed_only and data.condition_of_cell is not None:
        mask &= ~np.char.endswith(data.condition_of_cell.astype(str), "|control")
        what = "perturbed cells the task scores"
    return whole, tier_of_cells(whole, mask, what)


TIER_ORDER = (Tier.RED, Tier.GRAY, Tier.YELLOW, Tier.GREEN)  # the worst dataset decides a multi-dataset task


def combine(tiers: list[TierResult]) -> TierResult:
    return min(tiers, key=lambda t: TIER_ORDER.index(t.tier))


@dataclass(frozen=True, kw_only=True)
class Gate:
    """The tier of one evaluation: the card that decided it, and each dataset's (whole, scored cells) tiers."""

    identity: ModelIdentity
    tier: TierResult
    pairs: list[tuple[TierResult, TierResult]]


def gate_task(task: str, test_splits: list[str], datasets: list, *, model: str, model_card: Path | None,  # noqa: ANN001
              registry: str | Path | None, project_root: Path, project_registry: Path,
              mirror_root: str | Path | None, rescan: bool, perturbed_only: bool = False) -> Gate:
    """Compute the tier of ``model`` on the cells ``task`` scores in ``datasets`` (EvalDatasets); refuse RED.

    Runs before any model output is read, so a RED pairing costs nothing and writes nothing.
    """
    versions = sorted({d.version for d in datasets})
    scope = card_scope(datasets[0].version, registry=registry, project_root=project_root,
                       project_registry=project_registry)
    identity = resolve_model(model, model_card=model_card, known=scope.cards, where=scope.where)
    pairs = [task_tier(identity, d.audit_data, test_splits, scope=scope, project_root=project_root,
                       mirror_root=mirror_root, rescan=rescan, perturbed_only=perturbed_only) for d in datasets]
    tier = combine([scored for _, scored in pairs])
    refuse_red(identity, tier, f"the cells {task} scores in {', '.join(versions)}")
    return Gate(identity=identity, tier=tier, pairs=pairs)
