"""The two baselines every result is shown beside, computed by heldout on the same cells.

* ``random``: Gaussian embeddings (seeded), the chance level of each metric.
* ``simple``: the standard scanpy workflow on raw counts: normalise to 10^4,
  log1p, 2,000 highly variable genes, PCA (ARPACK, seeded).
"""

from __future__ import annotations

import anndata as ad
import numpy as np

SIMPLE_COMPONENTS = 50
RANDOM_DIMS = 50


def random_embedding(n_cells: int, *, seed: int, dims: int = RANDOM_DIMS) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n_cells, dims))


def simple_embedding(adata: ad.AnnData, *, seed: int = 0, n_top_genes: int = 2000) -> np.ndarray:
    """log-normalised HVGs -> PCA; deterministic for a given seed."""
    import scanpy as sc

    work = ad.AnnData(X=adata.X.copy(), obs=adata.obs[[]].copy(), var=adata.var[[]].copy())
    sc.pp.filter_genes(work, min_cells=1)
    sc.pp.normalize_total(work, target_sum=1e4)
    sc.pp.log1p(work)
    sc.pp.highly_variable_genes(work, n_top_genes=min(n_top_genes, work.n_vars), flavor="seurat", subset=True)
    n_comps = min(SIMPLE_COMPONENTS, work.n_obs - 1, work.n_vars - 1)
    sc.pp.pca(work, n_comps=n_comps, svd_solver="arpack", random_state=seed)
    return np.asarray(work.obsm["X_pca"], dtype=np.float64)
