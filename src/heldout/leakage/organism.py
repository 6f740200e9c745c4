"""Organism evidence: a corpus of other organisms cannot hold these cells.

A corpus's organisms are its Census query's organism when it has one, else the
organisms its model card declares (a model that reads only human genes was not
pretrained on mouse cells). Mouse cells mapped to human genes are still mouse
cells: the rule compares the organism the cells came from.
"""

from __future__ import annotations

import numpy as np

from heldout.cards.model import Corpus, ModelCard
from heldout.leakage.evidence import CorpusEvidence, EvalData, from_seen


def corpus_organisms(corpus: Corpus, card: ModelCard) -> frozenset[str]:
    if corpus.census is not None:
        return frozenset({corpus.census.organism.value})
    return frozenset(o.value for o in card.organisms)


def organism_evidence(corpus: Corpus, card: ModelCard, data: EvalData) -> CorpusEvidence | None:
    """Clean when the corpus's organisms exclude the eval cells' organism; None when they do not."""
    organisms = corpus_organisms(corpus, card)
    if data.organism in organisms:
        return None
    where = "its Census query" if corpus.census is not None else f"the {card.name} card's `organisms`"
    return from_seen(corpus, np.zeros(data.n, dtype=bool),
                     f"organism: the corpus holds {', '.join(sorted(organisms))} cells only ({where}); these are "
                     f"{data.organism} cells", levels={"organism": "checked: other organism"})
