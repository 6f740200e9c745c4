"""The simple baseline: scanpy's standard workflow, number for number, streamed over blocks of cells.

scanpy's ``filter_genes(min_cells=1)``, ``normalize_total(target_sum=1e4)``, ``log1p``,
``highly_variable_genes(flavor="seurat", subset=True)`` and ``pca(svd_solver="arpack")``
(``tests/test_simple_baseline.py`` checks the embedding equal, bit for bit). scanpy holds the whole
counts matrix and copies it several times (5.1 GiB at 100k cells; a single copy of a 1M-cell set's
counts is 12.4 GB). Here only the cells of one block (``BLOCK_ROWS``) are in memory at a time, and
then the highly variable genes' values, which PCA needs:

1. the expressed genes (a stored value above 0), over every block;
2. each block filtered to them, normalised, log1p'd; the genes' sums of ``expm1`` and of its square
   accumulated as scanpy's own kernel does (``sparse_mean_var_minor_axis``: rows dealt to numba's
   threads in turn, one accumulator per thread), so the seurat dispersions are scanpy's;
3. each block again, kept to the chosen genes, stacked, and PCA'd by scanpy.

Every step but the gene statistics works on each cell alone, so blocks of rows give the values the
whole matrix gives; the statistics keep scanpy's summation order across blocks.
"""

from __future__ import annotations

from collections.abc import Iterator

import anndata as ad
import numba
import numpy as np
import pandas as pd
import scipy.sparse as sp

SIMPLE_COMPONENTS = 50
BLOCK_ROWS = 16_384  # cells per block (Baron: 1,540 stored values per cell, so about 200 MB of counts)
CHUNK = 1 << 24  # stored values per step of scanpy's normalize_total within a block


def simple_embedding(adata: ad.AnnData, *, seed: int = 0, n_top_genes: int = 2000) -> np.ndarray:
    """log-normalised HVGs -> PCA, deterministic for a given seed. ``adata`` may be backed (``backed="r"``)."""
    import scanpy as sc

    expressed = np.zeros(adata.n_vars, dtype=bool)
    for _, block in _blocks(adata.X, adata.n_obs):
        expressed[block.indices[block.data > 0]] = True
    n_expressed = int(expressed.sum())
    threads = numba.get_num_threads()
    sums, squares = np.zeros((threads, n_expressed)), np.zeros((threads, n_expressed))
    for start, block in _normalised(adata.X, adata.n_obs, expressed):
        _accumulate(np.expm1(block.data), block.indices, block.indptr, start, sums, squares)
    mean, var = _mean_var(sums, squares, adata.n_obs)
    chosen = _seurat_hvg(mean, var, n_top_genes=min(n_top_genes, n_expressed))
    x = _stack([block[:, chosen] for _, block in _normalised(adata.X, adata.n_obs, expressed)],
               n_genes=int(chosen.sum()))
    work = ad.AnnData(X=x, obs=pd.DataFrame(index=adata.obs_names.copy()),
                      var=pd.DataFrame(index=adata.var_names[expressed][chosen].copy()))
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


def _blocks(x, n_obs: int) -> Iterator[tuple[int, sp.csr_matrix]]:  # noqa: ANN001 - any AnnData X, backed too
    """(first row, the rows' counts as a float32 CSR copy), ``BLOCK_ROWS`` cells at a time."""
    for start in range(0, n_obs, BLOCK_ROWS):
        rows = x[start:min(start + BLOCK_ROWS, n_obs)]
        yield start, sp.csr_matrix(rows, dtype=np.float32, copy=True)  # the caller's counts stay as they are


def _normalised(x, n_obs: int, expressed: np.ndarray) -> Iterator[tuple[int, sp.csr_matrix]]:  # noqa: ANN001
    """Each block with the unexpressed genes' columns dropped (``filter_genes``), normalised, log1p'd."""
    import scanpy as sc

    column = (np.cumsum(expressed) - 1).astype(np.int32)
    n_expressed = int(expressed.sum())
    for start, block in _blocks(x, n_obs):
        keep = expressed[block.indices]
        if not keep.all():  # explicit zeros of unexpressed genes
            row = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
            indptr = np.concatenate(([0], np.cumsum(np.bincount(row[keep], minlength=block.shape[0]))))
            block = sp.csr_matrix((block.data[keep], block.indices[keep], indptr), shape=block.shape)
        block = sp.csr_matrix((block.data, column[block.indices], block.indptr),
                              shape=(block.shape[0], n_expressed))
        _normalize_total(block, target_sum=1e4)
        yield start, sc.pp.log1p(block)


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


@numba.njit(parallel=True, cache=True)
def _accumulate(values, indices, indptr, first_row, sums, squares):  # noqa: ANN001, ANN202 - numba kernel
    """scanpy's ``sparse_mean_var_minor_axis`` loop for rows ``first_row...``: row r goes to thread r mod threads."""
    threads = sums.shape[0]
    rows = len(indptr) - 1
    for i in numba.prange(threads):
        for r in range((i + threads - first_row % threads) % threads, rows, threads):
            for j in range(indptr[r], indptr[r + 1]):
                value = values[j]
                sums[i, indices[j]] += value
                squares[i, indices[j]] += value * value


@numba.njit(parallel=True, cache=True)
def _column_moments(sums, squares, rows):  # noqa: ANN001, ANN202 - numba kernel
    """The end of scanpy's ``sparse_mean_var_minor_axis``: the threads' sums added, as it adds them."""
    n = sums.shape[1]
    means, variances = np.zeros(n), np.zeros(n)
    for c in numba.prange(n):
        sum_minor = sums[:, c].sum()
        means[c] = sum_minor / rows
        variances[c] = squares[:, c].sum() / rows - (sum_minor / rows) ** 2
    return means, variances


def _mean_var(sums: np.ndarray, squares: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """scanpy's ``_get_mean_var`` of the expm1 values: the moments, and the unbiased variance."""
    mean, var = _column_moments(sums, squares, rows)
    if rows != 1:
        var *= rows / (rows - 1)
    return mean, var


def _seurat_hvg(mean: np.ndarray, var: np.ndarray, *, n_top_genes: int) -> np.ndarray:
    """scanpy 1.11.5's ``highly_variable_genes(flavor="seurat")`` mask, from the genes' expm1 moments."""
    from scanpy.preprocessing._highly_variable_genes import _get_disp_stats, _get_mean_bins, _subset_genes

    mean[mean == 0] = 1e-12
    dispersion = var / mean
    dispersion[dispersion == 0] = np.nan
    dispersion = np.log(dispersion)
    mean = np.log1p(mean)
    frame = pd.DataFrame({"means": mean, "dispersions": dispersion})
    frame["mean_bin"] = _get_mean_bins(frame["means"], "seurat", 20)
    stats = _get_disp_stats(frame, "seurat")
    norm = ((frame["dispersions"] - stats["avg"]) / stats["dev"]).to_numpy()
    genes = ad.AnnData(var=pd.DataFrame(index=pd.RangeIndex(len(mean)).astype(str)))  # _subset_genes reads n_vars
    return np.asarray(_subset_genes(genes, mean=mean, dispersion_norm=norm, cutoff=n_top_genes), dtype=bool)


def _stack(blocks: list[sp.csr_matrix], *, n_genes: int) -> sp.csr_matrix:
    """The blocks' rows as one CSR matrix, freeing each block as it is copied."""
    nnz = sum(b.nnz for b in blocks)
    index = np.int64 if nnz > np.iinfo(np.int32).max else np.int32
    data, indices = np.empty(nnz, dtype=np.float32), np.empty(nnz, dtype=index)
    indptr, rows, at = [np.zeros(1, dtype=index)], 0, 0
    while blocks:
        block = blocks.pop(0)
        data[at:at + block.nnz], indices[at:at + block.nnz] = block.data, block.indices
        indptr.append(block.indptr[1:].astype(index) + at)
        at, rows = at + block.nnz, rows + block.shape[0]
    return sp.csr_matrix((data, indices, np.concatenate(indptr)), shape=(rows, n_genes))
