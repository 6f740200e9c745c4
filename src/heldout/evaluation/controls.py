"""Controls and baselines heldout computes itself, on exactly the cells the model is scored on.

Every score is shown between controls, as Open Problems does:

* negative ``random``: Gaussian noise of a fixed width (``RANDOM_WIDTH``), whatever the model's width,
  so "random" is the same for every model of a task;
* negative ``shuffled``: a one-hot embedding of the labels, randomly permuted (within each dataset):
  perfect structure that carries no information about the labels;
* negative ``unintegrated`` (integration tasks): the simple baseline below, which does no batch correction;
* positive ``oracle``: a one-hot embedding of the true labels (for predictions: the true labels);
* baseline ``simple``: scanpy's standard workflow on raw counts (normalise to 10^4, log1p, 2,000
  highly variable genes, 50-component PCA).

For predicted labels (``--predictions``) the controls are predictors: ``majority`` (every cell gets the
most frequent training label) and ``shuffled`` (the true labels permuted) as negatives, ``oracle``
(the true labels) as positive.

Controls are drawn once per task, from its first seed, like the model's own embedding: across seeds
only what the issue says should vary does (classifier and clustering seeds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

RANDOM_WIDTH = 50
SIMPLE_COMPONENTS = 50
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


def simple_embedding(adata: ad.AnnData, *, seed: int = 0, n_top_genes: int = 2000) -> np.ndarray:
    """log-normalised HVGs -> PCA; deterministic for a given seed.

    The same numbers as scanpy's ``filter_genes(min_cells=1)``, ``normalize_total(target_sum=1e4)``,
    ``log1p``, ``highly_variable_genes(flavor="seurat", subset=True)`` and ``pca(svd_solver="arpack")``
    (``tests/test_evaluation.py`` checks them equal), with one copy of the counts. scanpy's gene
    filter, its normalisation and its seurat HVG each copy the matrix (the HVG twice): at 100k cells
    the peak went from 1.5 to 5.1 GiB. Here unexpressed genes are dropped by renumbering the columns,
    cells are normalised a block of rows at a time, and the HVG statistics read ``expm1`` of the
    values beside the matrix's own indices. ``adata`` may be backed (``backed="r"``): its counts are
    then read once and worked on in place.
    """
    import scanpy as sc

    backed = hasattr(adata.X, "to_memory")
    counts = sp.csr_matrix(adata.X.to_memory() if backed else adata.X, dtype=np.float32)
    x, expressed = _expressed(counts, own=backed)  # a backed matrix was read for this call alone
    del counts
    work = ad.AnnData(X=x, obs=pd.DataFrame(index=adata.obs_names.copy()),
                      var=pd.DataFrame(index=adata.var_names[expressed].copy()))
    _normalize_total(x, target_sum=1e4)
    sc.pp.log1p(work)
    chosen = _seurat_hvg(work, n_top_genes=min(n_top_genes, work.n_vars))
    work = ad.AnnData(X=work.X[:, chosen], obs=work.obs, var=work.var[chosen])
    n_comps = min(SIMPLE_COMPONENTS, work.n_obs - 1, work.n_vars - 1)
    sc.pp.pca(work, n_comps=n_comps, svd_solver="arpack", random_state=seed)
    return np.asarray(work.obsm["X_pca"], dtype=np.float64)


CHUNK = 1 << 24  # stored values per step of the gene filter's passes


def _expressed(x: sp.csr_matrix, *, own: bool) -> tuple[sp.csr_matrix, np.ndarray]:
    """scanpy's ``filter_genes(min_cells=1)``: (the matrix of expressed genes, the kept-gene mask).

    An unexpressed gene has no stored value above 0, so dropping it renumbers the columns and drops
    its explicit zeros, if any. The passes go ``CHUNK`` values at a time; with ``own`` the matrix's
    own arrays are reused (renumbered in place), otherwise its values are copied once.
    """
    expressed = np.zeros(x.shape[1], dtype=bool)
    for start in range(0, x.nnz, CHUNK):
        values, genes = x.data[start:start + CHUNK], x.indices[start:start + CHUNK]
        expressed[genes[values > 0]] = True
    column = (np.cumsum(expressed) - 1).astype(x.indices.dtype)
    dropped = np.concatenate([np.flatnonzero(~expressed[x.indices[start:start + CHUNK]]) + start
                              for start in range(0, x.nnz, CHUNK)] or [np.zeros(0, dtype=np.int64)])
    shape = (x.shape[0], int(expressed.sum()))
    if len(dropped):  # explicit zeros of unexpressed genes: rare, so done in one go
        keep = np.ones(x.nnz, dtype=bool)
        keep[dropped] = False
        per_row = np.diff(x.indptr) - np.bincount(np.searchsorted(x.indptr, dropped, side="right") - 1,
                                                  minlength=x.shape[0])
        indptr = np.concatenate(([0], np.cumsum(per_row))).astype(x.indptr.dtype)
        return sp.csr_matrix((x.data[keep], column[x.indices[keep]], indptr), shape=shape), expressed
    indices = x.indices if own else np.empty_like(x.indices)
    for start in range(0, x.nnz, CHUNK):
        indices[start:start + CHUNK] = column[x.indices[start:start + CHUNK]]
    data, indptr = (x.data, x.indptr) if own else (x.data.copy(), x.indptr.copy())
    return sp.csr_matrix((data, indices, indptr), shape=shape), expressed


def _normalize_total(x: sp.csr_matrix, *, target_sum: float) -> None:
    """scanpy's ``normalize_total``, in place, ``CHUNK`` values of rows at a time.

    Each cell is scaled by its own total alone, so scanpy's function on a block of rows gives
    the same numbers as on the whole matrix; on the whole matrix it holds two more copies of the
    values (the repeated scale factors and the quotients).
    """
    import scanpy as sc

    start = 0
    while start < x.shape[0]:
        stop = max(start + 1, int(np.searchsorted(x.indptr, x.indptr[start] + CHUNK, side="right")) - 1)
        stop = min(stop, x.shape[0])
        first, last = x.indptr[start], x.indptr[stop]
        block = ad.AnnData(X=sp.csr_matrix((x.data[first:last], x.indices[first:last], x.indptr[start:stop + 1] - first),
                                           shape=(stop - start, x.shape[1])))
        sc.pp.normalize_total(block, target_sum=target_sum)
        x.data[first:last] = block.X.data
        start = stop


def _seurat_hvg(work: ad.AnnData, *, n_top_genes: int) -> np.ndarray:
    """scanpy 1.11.5's ``highly_variable_genes(flavor="seurat")`` mask, its own helpers on ``expm1`` of the values.

    scanpy copies the log-normalised matrix, then ``np.expm1`` copies it again; the values it
    reads are ``expm1`` of the stored values at the same positions, which is what this passes
    (one array, beside the matrix's indices).
    """
    from scanpy.preprocessing._highly_variable_genes import _get_disp_stats, _get_mean_bins, _subset_genes
    from scanpy.preprocessing._utils import _get_mean_var

    x = work.X
    expm1 = sp.csr_matrix((np.expm1(x.data), x.indices, x.indptr), shape=x.shape)
    mean, var = _get_mean_var(expm1)
    del expm1
    mean[mean == 0] = 1e-12
    dispersion = var / mean
    dispersion[dispersion == 0] = np.nan
    dispersion = np.log(dispersion)
    mean = np.log1p(mean)
    frame = pd.DataFrame({"means": mean, "dispersions": dispersion})
    frame["mean_bin"] = _get_mean_bins(frame["means"], "seurat", 20)
    stats = _get_disp_stats(frame, "seurat")
    norm = ((frame["dispersions"] - stats["avg"]) / stats["dev"]).to_numpy()
    return np.asarray(_subset_genes(work, mean=mean, dispersion_norm=norm, cutoff=n_top_genes), dtype=bool)


def joint_simple_embedding(parts: list[ad.AnnData], *, seed: int = 0) -> np.ndarray:
    """The simple baseline over several datasets in one gene space (their shared genes), rows in order."""
    genes = parts[0].var_names
    for part in parts[1:]:
        genes = genes.intersection(part.var_names)
    joined = ad.concat([ad.AnnData(X=sp.csr_matrix(p[:, genes].X), var=p[:, genes].var[[]]) for p in parts],
                       join="inner", index_unique="-")
    return simple_embedding(joined, seed=seed)
