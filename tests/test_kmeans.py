"""scib-metrics' k-means stopped at its fixed point: bitwise the centroids of its full 300+ iterations, and its labels.

``KMeans.fit`` runs ``_kmeans_full_run`` inside ``jax.lax.map``, compiled apart, whose centroids can
differ from a direct call's in the last bit; the labels, which the metric scores, are checked against ``fit``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scib_metrics.utils import KMeans
from scib_metrics.utils._kmeans import _tolerance
from sklearn.metrics import adjusted_rand_score

from heldout.evaluation import kmeans
from heldout.evaluation.simple_baseline import simple_embedding
from heldout.project import Project


def _full_and_fixed_point(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Centroids of scib-metrics' full run and of the run stopped at its fixed point, and the iterations taken."""
    import jax
    from scib_metrics.utils._utils import validate_seed

    instance = KMeans(k)
    instance.tol = _tolerance(x, instance.tol_scale)
    centred = x - x.mean(axis=0)
    full, _ = instance._kmeans_full_run(centred, jax.random.split(validate_seed(seed), 1)[0])
    ours, iterations = kmeans.run(instance, centred, seed)
    return np.asarray(full), ours, iterations


def _check(x: np.ndarray, k: int, seeds: list[int]) -> list[int]:
    taken = []
    for seed, ours in zip(seeds, kmeans.clusters(x, k, seeds), strict=True):
        np.testing.assert_array_equal(ours, np.asarray(KMeans(k, seed=seed).fit(x.copy()).labels_))
        full, fixed, iterations = _full_and_fixed_point(x, k, seed)
        np.testing.assert_array_equal(fixed, full)
        taken.append(iterations)
    return taken


@pytest.mark.parametrize("embedding", ["pca", "random"])
def test_equal_to_scib_metrics_on_real_cells(embedding: str, curated: Project) -> None:
    import anndata as ad

    adata = ad.read_h5ad(curated.root / "data" / "curated" / "baron-pancreas-human.h5ad")
    x = simple_embedding(adata).astype(np.float32)
    if embedding == "random":  # no structure: the slowest to converge
        x = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    taken = _check(x, adata.obs["cell_type"].nunique(), [0, 42])
    if embedding == "pca":
        assert max(taken) < 300  # it did stop early: scib-metrics' loop always takes 300 or more


def test_seeded_scores_are_scib_metrics_scores_per_seed() -> None:
    """One compiled run for every seed gives what scib-metrics' ``KMeans.fit`` gives for each seed."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 5)).astype(np.float32)
    x[:150] += 1.2
    labels = np.repeat(["a", "b"], 150)
    ours = kmeans.seeded_scores(x, labels, [0, 1, 2])
    for seed, values in zip([0, 1, 2], ours, strict=True):
        reference = KMeans(2, seed=seed).fit(x.copy())
        assert values["kmeans_ari"] == adjusted_rand_score(labels, np.asarray(reference.labels_))
    assert len({v["kmeans_ari"] for v in ours}) > 1  # the seed matters on overlapping clusters


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(20, 400), k=st.integers(2, 8), dims=st.integers(1, 10),
       duplicates=st.booleans())
def test_equal_to_scib_metrics_on_random_embeddings(seed: int, n: int, k: int, dims: int, duplicates: bool) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dims)).astype(np.float32)
    if duplicates:  # many identical cells: ties in every distance
        x = x[rng.integers(0, max(2, n // 10), n)]
    _check(x, k, [seed])
