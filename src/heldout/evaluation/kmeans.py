"""scib-metrics' k-means NMI/ARI (its jax ``KMeans``: k-means++, ``n_init=1``), stopped at its fixed point.

scib-metrics 0.5.10's Lloyd loop continues while ``|inertia change| > tol`` **or** ``n_iter < 300``,
so every run takes at least 300 iterations, and more if the inertia still moves then (a random
embedding of 100k cells takes 380-650). Once an iteration assigns every cell to the cluster it
had, the next centroids are the same means of the same cells (the same jitted step on the same
input), so every later iteration repeats that state exactly and only the iteration count grows.

:func:`run` executes scib-metrics' own steps (its k-means++ initialisation, distance and argmin,
and centroid update, the same jax operations) and leaves the loop at the first iteration that moves no
cell, when scib-metrics' loop would also have stopped there, or at scib-metrics' own condition,
whichever comes first. The centroids are bitwise the ones of the full run, and the labels ``KMeans.fit``'s
(``tests/test_kmeans.py``, on real cells and hypothesis embeddings); on the 100k benchmark
embeddings a model's PCA stops after 17-48 iterations instead of 300, 6-9x faster (benchmarks/README.md).

``KMeans.fit`` also recompiles on every call (about 2 s: its jitted step takes the instance as a
static argument and ``fit`` maps a fresh lambda), so one instance serves every seed of an embedding.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def seeded_scores(x: np.ndarray, labels: np.ndarray, seeds: list[int]) -> list[dict[str, float]]:
    """``kmeans_nmi`` and ``kmeans_ari`` for each seed, as ``scib_metrics.nmi_ari_cluster_labels_kmeans``."""
    return [{"kmeans_nmi": float(normalized_mutual_info_score(labels, predicted, average_method="arithmetic")),
             "kmeans_ari": float(adjusted_rand_score(labels, predicted))}
            for predicted in clusters(x, len(np.unique(labels)), seeds)]


def clusters(x: np.ndarray, k: int, seeds: list[int]) -> list[np.ndarray]:
    """Each cell's cluster, per seed, as ``scib_metrics.utils.KMeans(k, seed=seed).fit(x).labels_``."""
    from scib_metrics.utils import KMeans as JaxKMeans
    from scib_metrics.utils._kmeans import _get_dist_labels, _tolerance

    kmeans = JaxKMeans(k)
    centred = np.ascontiguousarray(x, dtype=np.float32)
    kmeans.tol = _tolerance(centred, kmeans.tol_scale)
    centred = centred - centred.mean(axis=0)
    return [np.asarray(_get_dist_labels(centred, run(kmeans, centred, seed)[0])[1]) for seed in seeds]


def run(kmeans, centred: np.ndarray, seed: int) -> tuple[np.ndarray, int]:  # noqa: ANN001 - scib_metrics' KMeans
    """The centroids of ``kmeans``' first run (of ``n_init``) on ``centred`` cells with ``seed``, and its iterations."""
    import jax
    from scib_metrics.utils._utils import validate_seed

    key = jax.random.split(validate_seed(seed), kmeans.n_init)[0]
    centroids, iterations = _compiled()(kmeans, centred, key)
    return np.asarray(centroids), int(iterations[0])


@cache
def _compiled():  # noqa: ANN202 - jitted on first use (importing jax costs seconds)
    import jax

    return jax.jit(_lloyd, static_argnums=(0,))


def _lloyd(self, x, key):  # noqa: ANN001, ANN202
    """``KMeans._kmeans_full_run``'s loop, also carrying the labels, ended when no cell moves."""
    import jax
    import jax.numpy as jnp
    from scib_metrics.utils._kmeans import _get_dist_labels

    clusters = jnp.arange(self.n_clusters)

    def step(state):  # scib-metrics' _kmeans_step, verbatim but for the labels it also returns
        centroids, old_inertia, _, n_iter, old_labels, _ = state
        dist, new_labels = _get_dist_labels(x, centroids)
        counts = (new_labels[jnp.newaxis, :] == clusters[:, jnp.newaxis]).sum(axis=1, keepdims=True)
        counts = jnp.clip(counts, min=1, max=None)
        new_centroids = jnp.sum(jnp.where(new_labels[:, jnp.newaxis, jnp.newaxis] == clusters[jnp.newaxis, :, jnp.newaxis],
                                          x[:, jnp.newaxis, :], 0.0), axis=0) / counts
        new_inertia = jnp.sum(jnp.min(dist, axis=1))
        return new_centroids, new_inertia, old_inertia, n_iter + 1, new_labels, jnp.any(new_labels != old_labels)

    def going_on(state):
        _, new_inertia, old_inertia, n_iter, _, moved = state
        scib_metrics_goes_on = jnp.logical_or(jnp.abs(old_inertia - new_inertia) > self.tol, n_iter < self.max_iter)[0]
        return jnp.logical_and(scib_metrics_goes_on, moved)

    centroids = self._initialize(x, self.n_clusters, key)
    unassigned = jnp.full(x.shape[0], -1, dtype=jax.dtypes.canonicalize_dtype(jnp.int64))  # argmin's dtype
    state = (centroids, jnp.inf, jnp.inf, jnp.array([0.0]), unassigned, jnp.array(True))
    state = jax.lax.while_loop(going_on, step, state)
    return state[0], state[3]
