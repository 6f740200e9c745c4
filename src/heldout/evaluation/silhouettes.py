"""scib-metrics' silhouette metrics, computed exactly: one fused distance pass, no n x n matrix.

scib-metrics 0.5.10 computes ``silhouette_label``, ``isolated_labels`` and ``bras`` with
``silhouette_samples``: jitted pairwise distances in chunks of 256 rows, one full pass over all
pairs for each metric. The three need only, for every cell, the sum of its distances to each cluster:

* ``silhouette_label`` and ``isolated_labels``: Euclidean distances of every cell to every cell,
  summed per cell-type label. One pass gives both (scib-metrics makes two). The pass is tiled:
  a tile's Gram block (``TILE_ROWS x TILE_COLUMNS``, 4 MiB, in cache) comes from BLAS, and a numba
  kernel turns it into distances (``sqrt(|a|^2 + |b|^2 - 2ab)``) and adds them to the row's label
  sums while the tile is still in cache. Columns are ordered by label, so each label is a
  contiguous run the kernel sums with SIMD. Row blocks run on every core, one BLAS thread each.
  Memory is one tile per thread; no distance is ever stored.
* ``bras``: cosine distances *within* each label, summed per batch (``mean_other`` between-cluster
  distance): the same tiled pass on each label's unit rows, so only same-label pairs are visited.
  Each distance is clipped to [0, 2] as scib-metrics clips it. (Summing ``1 - a.b`` per batch
  in closed form would be linear, but identical cells then sum to rounding residue instead of 0,
  and a batch of identical cells turned BRAS into -inf on real data.)

From the sums, the per-cell silhouette follows scib-metrics' arithmetic exactly (``a = intra / (|C| -
1)``, ``b`` per rule, ``(b - a) / max(a, b)``, ``nan_to_num``), so the values are the same numbers,
computed in float64 where scib-metrics uses float32 (``tests/test_silhouettes.py`` checks the
metrics against scib-metrics' own functions).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numba
import numpy as np
import pandas as pd

TILE_ROWS, TILE_COLUMNS = 512, 1024  # one Gram tile: 4 MiB of float64 (measured best of 256-1024 each way)
Between = Literal["nearest", "mean_other", "furthest"]


def _codes(labels: np.ndarray) -> tuple[np.ndarray, int]:
    cat = pd.Categorical(labels)
    return np.asarray(cat.codes, dtype=np.int64), len(cat.categories)


def cluster_sums(x: np.ndarray, codes: np.ndarray, n_clusters: int, *,
                 metric: Literal["euclidean", "cosine"] = "euclidean", tile: tuple[int, int] | None = None,
                 threads: int | None = None) -> np.ndarray:
    """(n, n_clusters): for every cell, the sum of its distances to the other cells of each cluster."""
    x = np.asarray(x, dtype=np.float64)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)  # a zero row: distance 1 to every cell
    return _pass(x, codes, n_clusters, tile or (TILE_ROWS, TILE_COLUMNS), threads or _cores(),
                 cosine=metric == "cosine")


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@numba.njit(cache=True, nogil=True, fastmath=True)
def _euclidean_tile(gram, sq_rows, sq_cols, run_start, run_stop, run_code, self_col, sums):  # noqa: ANN001, ANN202
    """Add the tile's Euclidean distances to ``sums`` (rows x clusters), one contiguous label run at a time."""
    for i in range(gram.shape[0]):
        si = sq_rows[i]
        for r in range(len(run_start)):
            acc = 0.0
            for j in range(run_start[r], run_stop[r]):
                acc += np.sqrt(max(si + sq_cols[j] - 2.0 * gram[i, j], 0.0))
            sums[i, run_code[r]] += acc
        j = self_col[i]
        if j >= 0:  # the cell itself is in this tile: its distance to itself is 0, not rounding residue
            r = np.searchsorted(run_stop, j, side="right")
            sums[i, run_code[r]] -= np.sqrt(max(si + sq_cols[j] - 2.0 * gram[i, j], 0.0))


@numba.njit(cache=True, nogil=True, fastmath=True)
def _cosine_tile(gram, sq_rows, sq_cols, run_start, run_stop, run_code, self_col, sums):  # noqa: ANN001, ANN202
    """The same for cosine distances of unit rows, ``1 - a.b`` clipped to [0, 2] as scib-metrics clips them."""
    for i in range(gram.shape[0]):
        for r in range(len(run_start)):
            acc = 0.0
            for j in range(run_start[r], run_stop[r]):
                acc += min(max(1.0 - gram[i, j], 0.0), 2.0)
            sums[i, run_code[r]] += acc
        j = self_col[i]
        if j >= 0:
            r = np.searchsorted(run_stop, j, side="right")
            sums[i, run_code[r]] -= min(max(1.0 - gram[i, j], 0.0), 2.0)


def _pass(x: np.ndarray, codes: np.ndarray, n_clusters: int, tile: tuple[int, int], threads: int, *,
          cosine: bool) -> np.ndarray:
    from threadpoolctl import threadpool_limits

    n = len(x)
    rows, columns = max(1, tile[0]), max(1, tile[1])
    order = np.argsort(codes, kind="stable")
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    by_label, squares = np.ascontiguousarray(x[order]), np.einsum("ij,ij->i", x, x)
    sorted_codes, sorted_squares = codes[order], squares[order]
    tiles = []
    for first in range(0, n, columns):
        last = min(first + columns, n)
        block = sorted_codes[first:last]
        cuts = np.flatnonzero(np.diff(block)) + 1
        starts = np.concatenate(([0], cuts)).astype(np.int64)
        stops = np.concatenate((cuts, [last - first])).astype(np.int64)
        tiles.append((first, last, starts, stops, block[starts].astype(np.int64)))
    sums = np.zeros((n, n_clusters))
    kernel = _cosine_tile if cosine else _euclidean_tile

    def row_block(start: int) -> None:
        stop = min(start + rows, n)
        here, where = x[start:stop], position[start:stop]
        for first, last, starts, stops, run_codes in tiles:
            gram = here @ by_label[first:last].T
            self_col = np.where((where >= first) & (where < last), where - first, -1)
            kernel(gram, squares[start:stop], sorted_squares[first:last], starts, stops, run_codes, self_col,
                   sums[start:stop])

    with threadpool_limits(1), ThreadPoolExecutor(max(1, threads)) as pool:
        list(pool.map(row_block, range(0, n, rows)))
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


def label_silhouettes(x: np.ndarray, labels: np.ndarray, *, tile: tuple[int, int] | None = None) -> np.ndarray:
    """Per-cell Euclidean silhouette of the labels (what silhouette_label and isolated_labels average)."""
    codes, k = _codes(labels)
    return silhouette_from_sums(cluster_sums(x, codes, k, tile=tile), codes)


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


def bras(x: np.ndarray, labels: np.ndarray, batches: np.ndarray, *, tile: tuple[int, int] | None = None) -> float:
    """scib_metrics.bras (cosine, mean_other): batch silhouettes within each label, 1 - |s|, mean of label means."""
    means = []
    for label in np.unique(labels):
        mask = labels == label
        codes, k = _codes(batches[mask])
        if k == 1 or k == int(mask.sum()):
            continue
        s = silhouette_from_sums(cluster_sums(x[mask], codes, k, metric="cosine", tile=tile), codes,
                                 "mean_other")
        means.append(float(np.mean(1 - np.abs(s))))
    return float(np.mean(means)) if means else float("nan")
