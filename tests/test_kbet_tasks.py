"""kBET per label as independent tasks gives scib-metrics' own kbet_per_label, label for label, on real cells."""

from __future__ import annotations

import warnings

import anndata as ad
import pytest
import scib_metrics

from heldout.evaluation import kbet, metrics
from heldout.evaluation.simple_baseline import simple_embedding
from heldout.project import Project


@pytest.mark.parametrize("name", ["baron-pancreas-human", "glioma-tirosh2016"])
def test_equal_to_scib_metrics_kbet_per_label(name: str, curated: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    adata = ad.read_h5ad(curated.root / "data" / "curated" / f"{name}.h5ad")
    x = simple_embedding(adata)
    labels = adata.obs["cell_type"].astype(str).to_numpy()
    batches = adata.obs["donor_id"].astype(str).to_numpy()
    neighbours = metrics.exact_neighbors(x, 50)
    with warnings.catch_warnings(), metrics._exact_kbet_neighbours():  # the same diffusion step on both sides
        warnings.simplefilter("ignore")
        theirs = float(scib_metrics.kbet_per_label(neighbours, batches, labels))
        ours = kbet.kbet_per_label(neighbours.knn_graph_connectivities, batches, labels)
        monkeypatch.setattr(kbet, "PARALLEL_MIN", 0)  # every label in a worker process
        in_workers = kbet.kbet_per_label(neighbours.knn_graph_connectivities, batches, labels)
    assert 0 < theirs < 1
    assert ours == pytest.approx(theirs, abs=1e-12) and in_workers == ours


def _transitions(connectivities):  # noqa: ANN001, ANN202
    from scib_metrics.utils._diffusion_nn import _compute_transitions

    return _compute_transitions(connectivities).astype(float)


def test_shift_invert_finds_the_same_spectrum_as_arpack(curated: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """Near 1, shift-invert gives plain ARPACK's eigenvalues and an orthonormal basis of eigenvectors."""
    import numpy as np

    adata = ad.read_h5ad(curated.root / "data" / "curated" / "baron-pancreas-human.h5ad")
    matrix = _transitions(metrics.exact_neighbors(simple_embedding(adata), 15).knn_graph_connectivities)
    start = np.full(matrix.shape[0], 1 / np.sqrt(matrix.shape[0]))
    found = metrics._near_one(matrix, 30, start)
    assert found is not None
    plain, _ = metrics.top_eigen(matrix, 30)  # below SHIFT_INVERT_MIN: plain ARPACK
    monkeypatch.setattr(metrics, "SHIFT_INVERT_MIN", 0)
    shifted, vectors = metrics.top_eigen(matrix, 30)
    np.testing.assert_allclose(shifted, plain, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.sort(found[0])[::-1], shifted, rtol=0, atol=1e-6)
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(30), atol=1e-5)


def test_shift_invert_steps_aside_when_a_negative_eigenvalue_is_among_the_largest() -> None:
    """An even ring's transition matrix has -1 in its spectrum: the largest magnitudes are not all near 1."""
    import numpy as np
    import scipy.sparse as sp

    n = 200
    ring = sp.csr_matrix((np.ones(2 * n), (np.r_[np.arange(n), np.arange(n)], np.r_[np.arange(1, n + 1) % n,
                                                                                 np.arange(-1, n - 1) % n])))
    matrix = _transitions(ring)
    assert metrics._near_one(matrix, 10, np.full(n, 1 / np.sqrt(n))) is None
    evals, _ = metrics.top_eigen(matrix, 10)
    assert evals.min() == pytest.approx(-1, abs=1e-5)  # the fallback keeps ARPACK's largest-magnitude set
