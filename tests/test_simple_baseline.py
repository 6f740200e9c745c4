"""The simple baseline (and the unintegrated control) is scanpy's standard workflow, number for number, streamed."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import scanpy as sc
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from heldout.evaluation import simple_baseline
from heldout.project import Project


def _scanpy(adata: ad.AnnData, seed: int = 0, n_top_genes: int = 2000) -> np.ndarray:
    """What simple_embedding computed before it kept one copy: scanpy's calls, as written in its docs."""
    work = ad.AnnData(X=sp.csr_matrix(adata.X, dtype=np.float32), obs=adata.obs[[]].copy(), var=adata.var[[]].copy())
    sc.pp.filter_genes(work, min_cells=1)
    sc.pp.normalize_total(work, target_sum=1e4)
    sc.pp.log1p(work)
    sc.pp.highly_variable_genes(work, n_top_genes=min(n_top_genes, work.n_vars), flavor="seurat", subset=True)
    sc.pp.pca(work, n_comps=min(50, work.n_obs - 1, work.n_vars - 1), svd_solver="arpack", random_state=seed)
    return np.asarray(work.obsm["X_pca"], dtype=np.float64)


@pytest.mark.parametrize("name", ["baron-pancreas-human", "norman-2019"])
def test_equal_to_scanpy_on_real_cells_in_memory_and_backed(name: str, curated: Project,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = curated.root / "data" / "curated" / f"{name}.h5ad"
    adata = ad.read_h5ad(path)
    before = adata.X.copy()
    expected = _scanpy(adata)
    assert np.array_equal(simple_baseline.simple_embedding(adata), expected)
    assert (adata.X != before).nnz == 0  # the caller's counts are left alone
    monkeypatch.setattr(simple_baseline, "BLOCK_ROWS", 997)  # many blocks of cells (a prime: blocks start at
    monkeypatch.setattr(simple_baseline, "CHUNK", 9_999)    # every thread's turn) and of stored values
    backed = ad.read_h5ad(path, backed="r")
    assert np.array_equal(simple_baseline.simple_embedding(backed), expected)
    backed.file.close()


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cells=st.integers(30, 120), genes=st.integers(60, 200),
       chunk=st.integers(1, 500), block=st.integers(1, 130), explicit_zeros=st.booleans(), top=st.integers(10, 80))
def test_equal_to_scanpy_on_random_counts(seed: int, cells: int, genes: int, chunk: int, block: int,
                                          explicit_zeros: bool, top: int) -> None:
    rng = np.random.default_rng(seed)
    counts = rng.negative_binomial(1, rng.uniform(0.2, 0.95, genes), size=(cells, genes)).astype(np.float32)
    counts[:, rng.random(genes) < 0.2] = 0  # unexpressed genes
    counts[rng.integers(0, cells)] = 0 if seed % 3 == 0 else counts[rng.integers(0, cells)]  # sometimes an empty cell
    x = sp.csr_matrix(counts)
    if explicit_zeros:  # stored zeros, some of them in unexpressed genes
        dense_rows, dense_cols = rng.integers(0, cells, 40), rng.integers(0, genes, 40)
        x = sp.csr_matrix((np.concatenate([x.data, np.zeros(40, np.float32)]),
                           (np.concatenate([x.nonzero()[0], dense_rows]), np.concatenate([x.nonzero()[1], dense_cols]))),
                          shape=x.shape)
        x.sum_duplicates()
        x.data[rng.random(x.nnz) < 0.05] = 0
    adata = ad.AnnData(X=x)
    adata.obs_names, adata.var_names = [f"c{i}" for i in range(cells)], [f"g{i}" for i in range(genes)]
    expected = _scanpy(adata, n_top_genes=top)
    old = simple_baseline.CHUNK, simple_baseline.BLOCK_ROWS
    simple_baseline.CHUNK, simple_baseline.BLOCK_ROWS = chunk, block
    try:
        ours = simple_baseline.simple_embedding(adata, n_top_genes=top)
    finally:
        simple_baseline.CHUNK, simple_baseline.BLOCK_ROWS = old
    assert np.array_equal(ours, expected)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cells=st.integers(1, 90), genes=st.integers(1, 40), block=st.integers(1, 100))
def test_gene_moments_summed_over_blocks_are_scanpys_bit_for_bit(seed: int, cells: int, genes: int, block: int) -> None:
    """The seurat dispersions read scanpy's per-thread sums; over blocks of rows they keep its order."""
    import numba
    from scanpy.preprocessing._utils import _get_mean_var

    rng = np.random.default_rng(seed)
    x = sp.random(cells, genes, density=0.4, format="csr", dtype=np.float32, random_state=rng)
    x.data = np.expm1(rng.uniform(0, 5, x.nnz).astype(np.float32))
    threads = numba.get_num_threads()
    sums, squares = np.zeros((threads, genes)), np.zeros((threads, genes))
    for start in range(0, cells, block):
        part = x[start:start + block]
        simple_baseline._accumulate(part.data, part.indices, part.indptr, start, sums, squares)
    mean, var = simple_baseline._mean_var(sums, squares, cells)
    expected_mean, expected_var = _get_mean_var(x)
    assert np.array_equal(mean, expected_mean) and np.array_equal(var, expected_var, equal_nan=True)
