"""heldout's blockwise silhouettes equal scib-metrics 0.5.10's own functions, on real cells and on random ones."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scib_metrics
from hypothesis import given, settings
from hypothesis import strategies as st

from heldout.evaluation import silhouettes
from heldout.evaluation.simple_baseline import simple_embedding
from heldout.project import Project


def _scib(x: np.ndarray, labels: np.ndarray, batches: np.ndarray) -> tuple[float, float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (float(scib_metrics.silhouette_label(x, labels)), float(scib_metrics.isolated_labels(x, labels, batches)),
                float(scib_metrics.bras(x, labels, batches)))


def _ours(x: np.ndarray, labels: np.ndarray, batches: np.ndarray,
          tile: tuple[int, int]) -> tuple[float, float, float]:
    per_cell = silhouettes.label_silhouettes(x, labels, tile=tile)
    return (silhouettes.silhouette_label(per_cell), silhouettes.isolated_labels(per_cell, labels, batches),
            silhouettes.bras(x, labels, batches, tile=tile))


@pytest.mark.parametrize("name", ["baron-pancreas-human", "glioma-tirosh2016"])
def test_equal_to_scib_metrics_on_real_cells(name: str, curated: Project) -> None:
    import anndata as ad

    adata = ad.read_h5ad(curated.root / "data" / "curated" / f"{name}.h5ad")
    if adata.n_obs > 3000:  # scib-metrics' own pass is the slow side of this test
        adata = adata[np.sort(np.random.default_rng(0).choice(adata.n_obs, 3000, replace=False))].copy()
    x = simple_embedding(adata).astype(np.float32)
    labels = adata.obs["cell_type"].astype(str).to_numpy()
    batches = adata.obs["donor_id"].astype(str).to_numpy()
    theirs = _scib(x, labels, batches)
    ours = _ours(x, labels, batches, tile=(256, 700))  # several row blocks and column tiles
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(8, 300), n_labels=st.integers(2, 6), n_batches=st.integers(1, 4),
       dims=st.integers(2, 12), rows=st.integers(1, 64), columns=st.integers(1, 64), one_hot=st.booleans())
def test_equal_to_scib_metrics_on_random_embeddings(seed: int, n: int, n_labels: int, n_batches: int, dims: int,
                                                    rows: int, columns: int, one_hot: bool) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dims)).astype(np.float32)
    labels = rng.integers(0, n_labels, n).astype(str)
    batches = rng.integers(0, n_batches, n).astype(str)
    x[labels == "0"] += rng.normal(size=dims).astype(np.float32)  # some structure
    if one_hot:  # the oracle and shuffled controls: every cell of a label at one point, distances exactly 0
        x = np.eye(n_labels, dtype=np.float32)[rng.permutation(labels.astype(int)) if seed % 2 else labels.astype(int)]
    ours = _ours(x, labels, batches, tile=(rows, columns))
    try:
        theirs = _scib(x, labels, batches)
    except ValueError:  # scib-metrics' bras has no label with two or more batches to concatenate
        assert np.isnan(ours[2])
        theirs = _scib_without_bras(x, labels, batches)
        ours = ours[:2]
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


def _scib_without_bras(x: np.ndarray, labels: np.ndarray, batches: np.ndarray) -> tuple[float, float]:
    return (float(scib_metrics.silhouette_label(x, labels)), float(scib_metrics.isolated_labels(x, labels, batches)))
