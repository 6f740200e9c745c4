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

from heldout.cards.model import ModelCard, list_model_cards, load_model_card, models_dir
from heldout.errors import LeakageRefused, UsageError
from heldout.leakage.tiers import Tier, TierResult

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


def resolve_model(model: str, *, model_card: Path | None, registry: Path) -> ModelIdentity:
    """The card that decides ``model``'s tier; refuse any card that would override the registry's."""
    known = list_model_cards(registry)
    if model in known:
        if model_card is not None:
            msg = (f"Model {model!r} has a card in the registry ({models_dir(registry) / f'{model}.yaml'}); its "
                   f"leakage tier comes from that card only, so --model-card {model_card} is refused.")
            raise UsageError(msg, hint=f"To evaluate a variant trained on other data, give it a name of its own "
                                       f"(e.g. --model {model}-variant) with its own card.")
        card = load_model_card(model, registry)
        return ModelIdentity(name=model, source="registry", card=card, card_sha256=card_digest(card))
    if model_card is None:
        return ModelIdentity(name=model, source="none", card=None, card_sha256=None)
    card = load_model_card(model_card, registry)
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
