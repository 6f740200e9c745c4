"""Controls and baselines heldout computes itself, on exactly the cells the model is scored on.

Every score is shown between controls, as Open Problems does:

* negative ``random``: Gaussian noise of a fixed width (``RANDOM_WIDTH``), whatever the model's width,
  so "random" is the same for every model of a task;
* negative ``shuffled``: a one-hot embedding of the labels, randomly permuted (within each dataset):
  perfect structure that carries no information about the labels;
* negative ``unintegrated`` (integration tasks): the simple baseline below, which does no batch correction;
* positive ``oracle``: a one-hot embedding of the true labels (for predictions: the true labels);
* baseline ``simple``: scanpy's standard workflow on raw counts (normalise to 10^4, log1p, 2,000
  highly variable genes, 50-component PCA), streamed over blocks of cells
  (:mod:`heldout.evaluation.simple_baseline`).

For predicted labels (``--predictions``) the controls are predictors: ``majority`` (every cell gets the
most frequent training label) and ``shuffled`` (the true labels permuted) as negatives, ``oracle``
(the true labels) as positive.

Controls are drawn once per task, from its first seed, like the model's own embedding: across seeds
only what the issue says should vary does (classifier and clustering seeds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

RANDOM_WIDTH = 50
Role = Literal["model", "negative", "positive", "baseline"]


@dataclass(frozen=True, eq=False)
class Entry:
    """One row of a leaderboard: the model, a control or a baseline, as an embedding or as labels."""

    name: str
    role: Role
    embedding: np.ndarray | None = None
    labels: np.ndarray | None = None  # predicted labels


def one_hot(labels: np.ndarray) -> np.ndarray:
    values, codes = np.unique(labels.astype(str), return_inverse=True)
    out = np.zeros((len(labels), len(values)))
    out[np.arange(len(labels)), codes] = 1.0
    return out


def random_embedding(n_cells: int, seed: int) -> np.ndarray:
    return np.random.default_rng([seed, 7]).standard_normal((n_cells, RANDOM_WIDTH))


def shuffled_labels(labels: np.ndarray, groups: np.ndarray, seed: int) -> np.ndarray:
    """Labels permuted within each group (dataset): label frequencies kept, information destroyed."""
    rng = np.random.default_rng([seed, 11])
    out = labels.astype(object).copy()
    for group in np.unique(groups):
        idx = np.flatnonzero(groups == group)
        out[idx] = out[rng.permutation(idx)]
    return out


def embedding_controls(labels: np.ndarray, groups: np.ndarray, simple: np.ndarray, *, seed: int,
                       integration: bool) -> list[Entry]:
    entries = [
        Entry(name="random", role="negative", embedding=random_embedding(len(labels), seed)),
        Entry(name="shuffled", role="negative", embedding=one_hot(shuffled_labels(labels, groups, seed))),
        Entry(name="oracle", role="positive", embedding=one_hot(labels)),
    ]
    entries.append(Entry(name="unintegrated" if integration else "simple", role="negative" if integration
                         else "baseline", embedding=simple))
    return entries


def prediction_controls(labels: np.ndarray, groups: np.ndarray, train_labels: np.ndarray, *,
                        seed: int) -> list[Entry]:
    values, counts = np.unique(train_labels.astype(str), return_counts=True)
    majority = values[np.argmax(counts)]
    return [Entry(name="majority", role="negative", labels=np.full(len(labels), majority, dtype=object)),
            Entry(name="shuffled", role="negative", labels=shuffled_labels(labels, groups, seed)),
            Entry(name="oracle", role="positive", labels=labels.astype(object))]
