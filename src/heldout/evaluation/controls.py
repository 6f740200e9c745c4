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
    """log-normalised HVGs -> PCA; deterministic for a given seed."""
    import scanpy as sc

    work = ad.AnnData(X=sp.csr_matrix(adata.X, dtype=np.float32), obs=adata.obs[[]].copy(),
                      var=adata.var[[]].copy())
    sc.pp.filter_genes(work, min_cells=1)
    sc.pp.normalize_total(work, target_sum=1e4)
    sc.pp.log1p(work)
    sc.pp.highly_variable_genes(work, n_top_genes=min(n_top_genes, work.n_vars), flavor="seurat", subset=True)
    n_comps = min(SIMPLE_COMPONENTS, work.n_obs - 1, work.n_vars - 1)
    sc.pp.pca(work, n_comps=n_comps, svd_solver="arpack", random_state=seed)
    return np.asarray(work.obsm["X_pca"], dtype=np.float64)


def joint_simple_embedding(parts: list[ad.AnnData], *, seed: int = 0) -> np.ndarray:
    """The simple baseline over several datasets in one gene space (their shared genes), rows in order."""
    genes = parts[0].var_names
    for part in parts[1:]:
        genes = genes.intersection(part.var_names)
    joined = ad.concat([ad.AnnData(X=sp.csr_matrix(p[:, genes].X), var=p[:, genes].var[[]]) for p in parts],
                       join="inner", index_unique="-")
    return simple_embedding(joined, seed=seed)
