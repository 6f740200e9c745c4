"""scib-metrics' Leiden NMI/ARI, each (resolution, seed) an independent task.

``scib_metrics.nmi_ari_cluster_labels_leiden(optimize_resolution=True, seed=s)`` clusters the 15-NN
connectivity graph with igraph's modularity Leiden at 10 resolutions (0.2 .. 2.0), seeding igraph's
RNG with ``random.Random(s)`` before each, and keeps the resolution of highest NMI. Here the
same steps run as ``resolutions x seeds`` independent tasks (:func:`heldout.evaluation.distributed.map_tasks`:
worker processes on this machine, or tasks on the Dask cluster the evaluation runs on). Every task
gets the graph as its three CSR arrays (memory-mapped or scattered once, never an igraph object:
pickling one takes seconds at 100k cells), and each process builds the igraph graph once and keeps it
for the tasks that follow. The best resolution per seed is then picked as scib-metrics picks it
(the first highest NMI), so the numbers are scib-metrics' own (``tests/test_evaluation.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

RESOLUTIONS = tuple(2 * x / 10 for x in range(1, 11))  # scib-metrics' optimize_resolution grid
PARALLEL_MIN = 20_000  # below this many cells a worker process costs more than it saves

_built: dict[str, object] = {}  # this process's graph: token -> igraph.Graph (the latest one only)


def scores(connectivities: sp.csr_matrix, labels: np.ndarray, seeds: list[int], *,
           on_task: Callable[[], None] | None = None) -> list[dict[str, float]]:
    """NMI and ARI of the NMI-best resolution, per seed (in ``seeds``' order)."""
    from heldout.evaluation.distributed import map_tasks

    graph = sp.csr_matrix(connectivities)
    _, codes = np.unique(labels, return_inverse=True)  # integer labels: the scores' own unique() is much faster
    shared = (uuid.uuid4().hex, graph.indptr, graph.indices, graph.data, graph.shape[0], codes)
    jobs = [(resolution, seed) for seed in seeds for resolution in RESOLUTIONS]
    runs = map_tasks(cluster, shared, jobs, parallel=graph.shape[0] >= PARALLEL_MIN, on_done=on_task)
    out = []
    for i in range(len(seeds)):
        per_resolution = runs[i * len(RESOLUTIONS):(i + 1) * len(RESOLUTIONS)]
        nmi, ari = per_resolution[int(np.argmax([nmi for nmi, _ in per_resolution]))]
        out.append({"nmi": float(nmi), "ari": float(ari)})
    return out


def cluster(token: str, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n: int, codes: np.ndarray,
            resolution: float, seed: int) -> tuple[float, float]:
    """(NMI, ARI) of one Leiden clustering: scib-metrics' ``_compute_nmi_ari_cluster_labels``."""
    import random

    import igraph

    network = _network(token, indptr, indices, data, n)
    igraph.set_random_number_generator(random.Random(seed))
    predicted = np.asarray(network.community_leiden(objective_function="modularity", weights="weight",
                                                    resolution=resolution).membership)
    return (float(normalized_mutual_info_score(codes, predicted, average_method="arithmetic")),
            float(adjusted_rand_score(codes, predicted)))


def _network(token: str, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n: int):  # noqa: ANN202
    """scib-metrics' graph (igraph ``Weighted_Adjacency(mode="directed")``, then ``to_undirected("each")``)."""
    import igraph

    if token not in _built:
        matrix = sp.csr_matrix((np.asarray(data), np.asarray(indices), np.asarray(indptr)), shape=(n, n))
        network = igraph.Graph.Weighted_Adjacency(matrix, mode="directed")
        network.to_undirected(mode="each")  # as scib-metrics (and scanpy) do
        _built.clear()
        _built[token] = network
    return _built[token]
