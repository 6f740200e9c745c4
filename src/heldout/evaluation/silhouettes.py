"""scib-metrics' silhouette metrics, computed exactly, blockwise with BLAS, each distance block used once.

scib-metrics 0.5.10 computes ``silhouette_label``, ``isolated_labels`` and ``bras`` with
``silhouette_samples``: jitted pairwise distances in chunks of 256 rows, one full pass over all
pairs for each metric. The three need only, for every cell, the sum of its distances to each cluster:

* ``silhouette_label`` and ``isolated_labels``: Euclidean distances of every cell to every cell,
  summed per cell-type label. One pass gives both (scib-metrics makes two);
* ``bras``: cosine distances *within* each label, summed per batch (``mean_other`` between-cluster
  distance). Only same-label pairs are computed.

A block of rows is a matrix product (``|a|^2 + |b|^2 - 2ab`` for Euclidean, ``1 - a.b`` on unit rows
for cosine), in float64, and its per-cluster sums are a second product with the one-hot cluster
matrix. The block height is chosen so a block stays under ``BLOCK_BYTES``: memory is
``O(block x n)``, never ``n x n``. From the sums, the per-cell silhouette follows scib-metrics'
arithmetic exactly (``a = intra / (|C| - 1)``, ``b`` per rule, ``(b - a) / max(a, b)``,
``nan_to_num``), so the values are the same numbers, computed in float64 where scib-metrics uses
float32 (``tests/test_silhouettes.py`` checks the metrics against scib-metrics' own functions).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

BLOCK_BYTES = 128 * 2**20  # one distance block: 128 MiB (e.g. 167 rows x 100k cells of float64)
Between = Literal["nearest", "mean_other", "furthest"]


def _codes(labels: np.ndarray) -> tuple[np.ndarray, int]:
    cat = pd.Categorical(labels)
    return np.asarray(cat.codes, dtype=np.int64), len(cat.categories)


def cluster_sums(x: np.ndarray, codes: np.ndarray, n_clusters: int, *,
                 metric: Literal["euclidean", "cosine"] = "euclidean", block_bytes: int = BLOCK_BYTES) -> np.ndarray:
    """(n, n_clusters): for every cell, the sum of its distances to the cells of each cluster."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    squares = np.einsum("ij,ij->i", x, x)
    onehot = np.zeros((n, n_clusters))
    onehot[np.arange(n), codes] = 1.0
    sums = np.empty((n, n_clusters))
    rows = max(1, min(n, block_bytes // (8 * max(n, 1))))
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        d = x[start:stop] @ x.T  # the block's Gram matrix, turned into distances in place (no temporaries)
        if metric == "cosine":
            np.subtract(1.0, d, out=d)
            np.clip(d, 0.0, 2.0, out=d)
        else:
            d *= -2.0
            d += squares[None, :]
            d += squares[start:stop, None]
            np.maximum(d, 0.0, out=d)
            np.sqrt(d, out=d)
        d[np.arange(stop - start), np.arange(start, stop)] = 0.0  # a cell's distance to itself
        sums[start:stop] = d @ onehot
    return sums


def silhouette_from_sums(sums: np.ndarray, codes: np.ndarray, between: Between = "nearest") -> np.ndarray:
    """Per-cell silhouette from :func:`cluster_sums`, with scib-metrics' ``silhouette_samples`` arithmetic."""
    freqs = np.bincount(codes, minlength=sums.shape[1]).astype(np.float64)
    rows = np.arange(len(codes))
    intra = sums[rows, codes]
    with np.errstate(divide="ignore", invalid="ignore"):
        if between == "nearest":
            other = sums / freqs
            other[rows, codes] = np.inf
            inter = other.min(axis=1)
        elif between == "furthest":
            other = sums / freqs
            other[rows, codes] = -np.inf
            inter = other.max(axis=1)
        else:  # mean_other: the mean distance to every cell of the other clusters
            inter = (sums.sum(axis=1) - intra) / (freqs.sum() - freqs[codes])
        intra = intra / (freqs - 1)[codes]
        s = (inter - intra) / np.maximum(intra, inter)
    return np.nan_to_num(s)


def label_silhouettes(x: np.ndarray, labels: np.ndarray, *, block_bytes: int = BLOCK_BYTES) -> np.ndarray:
    """Per-cell Euclidean silhouette of the labels (what silhouette_label and isolated_labels average)."""
    codes, k = _codes(labels)
    return silhouette_from_sums(cluster_sums(x, codes, k, block_bytes=block_bytes), codes)


def silhouette_label(per_cell: np.ndarray) -> float:
    """scib_metrics.silhouette_label (rescaled) from :func:`label_silhouettes`."""
    return float((np.mean(per_cell) + 1) / 2)


def isolated_labels(per_cell: np.ndarray, labels: np.ndarray, batches: np.ndarray) -> float:
    """scib_metrics.isolated_labels (rescaled ASW) from :func:`label_silhouettes`."""
    rescaled = (per_cell + 1) / 2
    scores = pd.Series({label: float(np.mean(rescaled[labels == label]))
                        for label in isolated(labels, batches)}, dtype=float)
    return float(scores.mean())


def isolated(labels: np.ndarray, batches: np.ndarray) -> list:
    """Labels present in the fewest batches (scib-metrics' ``_get_isolated_labels`` with no threshold)."""
    pairs = pd.DataFrame({"label": labels, "batch": batches}).drop_duplicates()
    per_label = pairs.groupby("label")["batch"].count()
    return per_label[per_label <= per_label.min()].index.tolist()


def bras(x: np.ndarray, labels: np.ndarray, batches: np.ndarray, *, block_bytes: int = BLOCK_BYTES) -> float:
    """scib_metrics.bras (cosine, mean_other): batch silhouettes within each label, 1 - |s|, mean of label means."""
    means = []
    for label in np.unique(labels):
        mask = labels == label
        codes, k = _codes(batches[mask])
        if k == 1 or k == int(mask.sum()):
            continue
        s = silhouette_from_sums(cluster_sums(x[mask], codes, k, metric="cosine", block_bytes=block_bytes), codes,
                                 "mean_other")
        means.append(float(np.mean(1 - np.abs(s))))
    return float(np.mean(means)) if means else float("nan")
