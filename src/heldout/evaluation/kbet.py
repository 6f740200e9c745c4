"""scib-metrics' ``kbet_per_label``, each label an independent task.

scib-metrics 0.5.10 loops over the labels: for each it takes the label's cells in the 50-NN
connectivity graph, embeds them by diffusion (the 100 leading eigenpairs of the label's transition
matrix), finds ``k0`` neighbours there and runs kBET's chi-square test per cell. The eigenpairs are
most of the time (at 100k cells, 4 minutes for the largest label of one embedding), and the labels
do not depend on each other: here each label is a task (:func:`heldout.evaluation.distributed.map_tasks`:
worker processes on this machine, largest label first, or tasks on the Dask cluster the evaluation
runs on). Each task does exactly what scib-metrics' loop body does, with heldout's documented
diffusion step (:func:`heldout.evaluation.metrics.exact_diffusion_nn`: a deterministic start and an
exact kNN), and the per-label scores are averaged as scib-metrics averages them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

PARALLEL_MIN = 20_000  # cells: below this a worker process costs more than it saves
SIZE_MAX = 2**31 - 1


def kbet_per_label(connectivities: sp.csr_matrix, batches: np.ndarray, labels: np.ndarray, *, alpha: float = 0.05,
                   diffusion_n_comps: int = 100) -> float:
    """scib_metrics.kbet_per_label on the neighbours' connectivity graph (``knn_graph_connectivities``).

    The cheap part of scib-metrics' loop (subsetting, components, ``k0``) runs here, in its order,
    because it carries state from label to label: scib-metrics lowers ``diffusion_n_comps`` to a
    label's cell count - 1 and keeps the lowered value for every later label (a small label early
    in the alphabet caps the diffusion components of all that follow). The diffusion and the test
    are the tasks.
    """
    from heldout.evaluation.distributed import map_tasks

    batches = np.asarray(pd.Categorical(batches).codes)
    labels = np.asarray(labels)
    graph = sp.csr_matrix(connectivities)
    clusters = np.unique(labels)
    scores = np.full(len(clusters), np.nan)
    jobs, where = [], []
    for i, cluster in enumerate(clusters):
        mask = labels == cluster
        sub = graph[mask, :][:, mask]
        sub.sort_indices()
        prepared = _prepare(sub, batches[mask], diffusion_n_comps)
        if isinstance(prepared, float):
            scores[i] = prepared
            continue
        sub, batches_sub, k0, diffusion_n_comps = prepared
        jobs.append((sub.indptr, sub.indices, sub.data, sub.shape[0], batches_sub, k0, diffusion_n_comps))
        where.append(i)
    order = np.argsort([-job[3] for job in jobs], kind="stable")  # largest first: the longest tasks start first
    results = map_tasks(diffusion_kbet, (alpha,), [jobs[j] for j in order], parallel=len(labels) >= PARALLEL_MIN)
    for j, score in zip(order, results, strict=True):
        scores[where[j]] = score
    return float(np.nanmean(scores))


def _prepare(sub: sp.csr_matrix, batches_sub: np.ndarray, diffusion_n_comps: int):  # noqa: ANN202
    """scib-metrics' loop body up to the diffusion: a final score, or (graph, batches, k0, n_comps)."""
    import scipy.sparse.csgraph

    n_obs = sub.shape[0]
    if n_obs < 10 or len(np.unique(batches_sub)) == 1:
        return np.nan
    quarter_mean = np.floor(np.mean(pd.Series(batches_sub).value_counts()) / 4).astype("int")
    k0 = np.min([70, np.max([10, quarter_mean])])
    if k0 * n_obs >= SIZE_MAX:
        k0 = np.floor(SIZE_MAX / n_obs).astype("int")
    n_comp, labs = scipy.sparse.csgraph.connected_components(sub, connection="strong")
    if n_comp > 1:
        comp_size = pd.Series(labs).value_counts()
        idx_nonan = np.flatnonzero(np.isin(labs, comp_size[comp_size >= 3 * k0].index))
        if len(idx_nonan) / len(labs) < 0.75:
            return 0.0  # too many small components: 100% rejection
        sub = sub[idx_nonan, :][:, idx_nonan]
        sub.sort_indices()
        batches_sub = batches_sub[idx_nonan]
    return sub, batches_sub, k0, int(np.min([diffusion_n_comps, sub.shape[0] - 1]))


def diffusion_kbet(alpha: float, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_obs: int,
                   batches_sub: np.ndarray, k0: int, n_comps: int) -> float:
    """kBET of one label's cells on their diffusion neighbours (0 when the diffusion fails, as scib-metrics)."""
    from scib_metrics.metrics._kbet import kbet

    from heldout.evaluation.metrics import exact_diffusion_nn

    graph = sp.csr_matrix((data, indices, indptr), shape=(n_obs, n_obs))
    try:
        score, _, _ = kbet(exact_diffusion_nn(graph, k=k0, n_comps=n_comps), batches=batches_sub, alpha=alpha)
    except ValueError:  # the diffusion distance failed: 100% rejection
        return 0.0
    return float(score)
