"""Metrics: scikit-learn classifiers and clusterings, and the scIB set from scib-metrics 0.5.10.

Label prediction trains class-balanced classifiers on the train cells' embeddings
(logistic regression and random forest with ``class_weight="balanced"``; a
distance-weighted 15-NN) and scores macro-F1, accuracy and per-class F1 on the
test cells.

Integration is scored exactly as ``scib_metrics.benchmark.Benchmarker`` does
(same metrics, same neighbourhood sizes 15/50/90, raw values, aggregates
bio = mean of bio metrics, batch = mean of batch metrics, total = 0.6 bio +
0.4 batch), with two documented differences: neighbours are exact
(scikit-learn) instead of pynndescent's approximate ones, and so is the kNN on
kBET's diffusion embedding (pynndescent's numba compilation costs about 100 s per
process on this machine; benchmarks/README.md compares both), and the diffusion
spectrum is solved deterministically (``top_eigen``). k-means takes the run's
seed (scib-metrics fixes it) and leaves Lloyd's loop at its fixed point (:mod:`heldout.evaluation.kmeans`). The three silhouette metrics (label silhouette, isolated labels,
BRAS) are scib-metrics' definitions computed blockwise in float64 by
:mod:`heldout.evaluation.silhouettes`, one distance pass shared by the two label silhouettes
(equal to scib-metrics' functions to 1e-6: ``tests/test_silhouettes.py``). kBET's labels
(:mod:`heldout.evaluation.kbet`) and Leiden's resolutions x seeds (:mod:`heldout.evaluation.leiden`)
run as independent tasks, with scib-metrics' numbers.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, adjusted_rand_score, f1_score, normalized_mutual_info_score
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from heldout.errors import EvaluationError
from heldout.evaluation.tasks import BATCH, BIO

NEIGHBOURS = (15, 50, 90)  # as scib-metrics' Benchmarker
FOREST_TREES = 200
FOREST_BOOTSTRAP_MAX = 10_000  # cells drawn per tree: a forest's cost stops growing with the training set


def classify(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, classifier: str, seed: int) -> np.ndarray:
    """Predicted labels of the test cells from a classifier trained on the train cells.

    The embedding's geometry is what is scored, so it is not standardised per
    dimension (that gives a PCA's noise components the weight of its first ones:
    on the glioma task it cost logistic regression and kNN every macrophage).
    It is centred and divided by one scalar (the train cells' RMS coordinate), so
    logistic regression's penalty does not depend on the embedding's units.

    Each tree of the random forest grows on a bootstrap sample of the training
    cells, as usual, but of at most ``FOREST_BOOTSTRAP_MAX`` cells: up to that many
    training cells this is scikit-learn's standard forest; beyond it the cost of a
    tree stays flat (on 50k training cells of a 100k replicate: 51 s per forest
    with full bootstraps on one core, 12 s capped on two, accuracy 0.9999 vs 0.998).
    """
    centre = train_x.mean(axis=0)
    scale = float(np.sqrt(np.mean((train_x - centre) ** 2))) or 1.0
    train_x, test_x = (train_x - centre) / scale, (test_x - centre) / scale
    if classifier == "logreg":
        model = LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed)
    elif classifier == "knn":
        # brute force, as exact_neighbors: scikit-learn's default picks a k-d tree below 16 dimensions,
        # which scans every identical cell of a label per query (the oracle control at 1M cells: quadratic)
        model = KNeighborsClassifier(n_neighbors=min(15, len(train_x)), weights="distance", algorithm="brute")
    else:
        bootstrap = FOREST_BOOTSTRAP_MAX if len(train_x) > FOREST_BOOTSTRAP_MAX else None
        model = RandomForestClassifier(n_estimators=FOREST_TREES, class_weight="balanced", random_state=seed,
                                       max_samples=bootstrap, n_jobs=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notices on tiny or random inputs
        model.fit(train_x, train_y)
    return model.predict(test_x)


def label_scores(true: np.ndarray, predicted: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
    """(macro-F1 and accuracy, F1 of each true label)."""
    labels = np.unique(true)
    per_class = f1_score(true, predicted, labels=labels, average=None, zero_division=0)
    return ({"macro_f1": float(f1_score(true, predicted, labels=labels, average="macro", zero_division=0)),
             "accuracy": float(accuracy_score(true, predicted))},
            {str(label): float(v) for label, v in zip(labels, per_class, strict=True)})


def exact_neighbors(x: np.ndarray, k: int):  # noqa: ANN201 - scib_metrics NeighborsResults
    """Exact k nearest neighbours (self included), as scib-metrics expects them."""
    from scib_metrics.nearest_neighbors import NeighborsResults

    k = min(k, len(x))
    # brute force: a k-d tree (scikit-learn's choice below 16 dimensions) degrades to quadratic
    # work per query on embeddings with many identical points (one-hot labels)
    distances, indices = NearestNeighbors(n_neighbors=k, algorithm="brute", n_jobs=-1).fit(x).kneighbors(x)
    return NeighborsResults(indices=indices, distances=distances)


def _kmeans(x: np.ndarray, labels: np.ndarray, seed: int) -> dict[str, float]:
    k = len(np.unique(labels))
    predicted = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
    return {"nmi": float(normalized_mutual_info_score(labels, predicted, average_method="arithmetic")),
            "ari": float(adjusted_rand_score(labels, predicted))}


def clustering(x: np.ndarray, labels: np.ndarray, *, seeds: list[int], clock: Clock | None = None,
               advance: Callable[[str, float], None] | None = None) -> list[dict[str, float]]:
    """k-means (k = number of labels) and Leiden (scib-metrics, resolution optimised over 10 values), per seed.

    Leiden's resolutions x seeds are independent tasks (:mod:`heldout.evaluation.leiden`).

    Leiden runs on a 15-NN graph with UMAP connectivities (scanpy's and
    scib-metrics' graph), which stays connected when many cells have identical
    embeddings: a one-hot label embedding scores 1, not 0. The graph does not
    depend on the seed, so it is built once for all seeds.
    """
    from heldout.evaluation import leiden as leiden_module

    clock, advance = clock or Clock(None), advance or (lambda step, units: None)
    with clock("neighbours"):
        graph = exact_neighbors(x, 15).knn_graph_connectivities
    advance("neighbours", len(seeds))
    with clock("leiden"):
        leiden = leiden_module.scores(graph, labels, seeds,
                                      on_task=lambda: advance("leiden", 1 / len(leiden_module.RESOLUTIONS)))
    out = []
    for seed, ld in zip(seeds, leiden, strict=True):
        with clock("kmeans"):
            km = _kmeans(x, labels, seed)
        advance("kmeans", 1)
        out.append({"ari_kmeans": km["ari"], "nmi_kmeans": km["nmi"], "ari_leiden": ld["ari"], "nmi_leiden": ld["nmi"]})
    return out


DENSE_EIGEN_SMALL = 1000  # up to this many rows the spectrum is solved densely (milliseconds, exact)
DENSE_EIGEN_MAX = 4000  # ARPACK's last resort: a dense solve, for matrices up to this many rows
SHIFT_INVERT_MIN = 10_000  # from this many rows the spectrum near 1 is found by shift-invert first
SHIFT = 1.001  # just above a transition matrix's largest eigenvalue (1)


def top_eigen(matrix, n_comps: int) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """The n_comps largest-magnitude eigenpairs of a symmetric matrix, in decreasing order.

    scib-metrics calls ARPACK from a random start vector: on a graph of identical
    points (a one-hot embedding) the spectrum is massively degenerate and ARPACK
    then fails to converge at random (about one run in three here). This starts
    from a fixed vector (deterministic, and it converges on those graphs), retries
    with a wider Krylov space, and solves densely as a last resort. Small matrices
    (one label's cells in a small dataset: ARPACK near k = n crawls) are solved densely.

    Large matrices (``SHIFT_INVERT_MIN`` rows) go through :func:`_quick_or_near_one` first: a label
    of 30k cells in 46 near-identical copies has its 100 leading eigenvalues within 1e-4 of 1, where
    plain ARPACK took 240 s and shift-invert 12 s, with the same eigenvalues.
    """
    import scipy.linalg
    import scipy.sparse.linalg

    n = matrix.shape[0]
    n_comps = min(n - 1, n_comps)
    start = np.full(n, 1.0 / np.sqrt(n))
    found = _quick_or_near_one(matrix.astype(np.float64), n_comps, start) if n >= SHIFT_INVERT_MIN else None
    if found is not None:
        evals, evecs = found
        order = np.argsort(-evals, kind="stable")
        return evals[order].astype(np.float32), evecs[:, order].astype(np.float32)
    for ncv in () if n <= DENSE_EIGEN_SMALL else (None, min(n, max(4 * n_comps + 1, 200))):
        try:
            evals, evecs = scipy.sparse.linalg.eigsh(matrix.astype(np.float64), k=n_comps, which="LM", ncv=ncv,
                                                     v0=start, maxiter=20 * n)
            break
        except scipy.sparse.linalg.ArpackNoConvergence:
            continue
    else:
        if n > DENSE_EIGEN_MAX:
            raise EvaluationError(f"kBET: the diffusion spectrum of {n} cells did not converge; "
                                  "report this with the embedding's shape")
        full = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)
        evals, evecs = scipy.linalg.eigh(full.astype(np.float64))
        keep = np.argsort(-np.abs(evals), kind="stable")[:n_comps]  # ARPACK's "LM"
        evals, evecs = evals[keep], evecs[:, keep]
    order = np.argsort(-evals, kind="stable")  # decreasing, as scib-metrics sorts them
    return evals[order].astype(np.float32), evecs[:, order].astype(np.float32)


QUICK_RESTARTS = 20  # ARPACK restarts tried before shift-invert (30k cells: 3 s when they suffice, 10 s when not)


def _quick_or_near_one(matrix, n_comps: int, start: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:  # noqa: ANN001
    """Plain ARPACK if it converges within ``QUICK_RESTARTS``, else :func:`_near_one`.

    Shift-invert factorises the matrix, and on a graph without small separators (the random
    control's kNN graph) the factors fill up (2.5 GiB per worker at 30k cells); such spectra are
    well separated, and plain ARPACK converges in a few restarts (3 s). The slow spectra, clustered
    near 1, come from nearly disconnected graphs, which factorise with little fill.
    """
    import scipy.sparse.linalg as linalg

    try:
        return linalg.eigsh(matrix, k=n_comps, which="LM", v0=start, maxiter=QUICK_RESTARTS)
    except linalg.ArpackNoConvergence:
        return _near_one(matrix, n_comps, start)


def _near_one(matrix, n_comps: int, start: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:  # noqa: ANN001
    """The n_comps eigenpairs nearest 1 by shift-invert ARPACK, when they are provably the largest in magnitude.

    They are if no eigenvalue is more negative than the smallest of them is positive (checked with
    the lowest eigenvalue). Each pair must also be an eigenpair (residual) and the vectors
    orthonormal; otherwise None, and the caller solves as before. In a cluster of nearly equal
    eigenvalues the eigenvectors are not unique, so the diffusion embedding (and kBET, by up to
    3e-5 per label at 100k cells) can differ from plain ARPACK's, as it does between two of
    scib-metrics' own runs (random start vectors).
    """
    import scipy.sparse as sp
    import scipy.sparse.linalg as linalg

    n = matrix.shape[0]
    try:
        # SuperLU's default column order (COLAMD) fills a 30k-cell kNN graph's factors to 36M values
        # (2.7 GiB per worker, seen); minimum degree on A'+A, for this symmetric matrix, to 4.8M
        factors = linalg.splu(sp.csc_matrix(matrix - SHIFT * sp.identity(n, format="csc")), permc_spec="MMD_AT_PLUS_A")
        inverse = linalg.LinearOperator((n, n), matvec=factors.solve, dtype=np.float64)
        evals, evecs = linalg.eigsh(matrix, k=n_comps, sigma=SHIFT, which="LM", v0=start, OPinv=inverse)
        lowest = float(linalg.eigsh(matrix, k=1, which="SA", v0=start, return_eigenvectors=False)[0])
    except (linalg.ArpackNoConvergence, linalg.ArpackError, RuntimeError):
        return None
    residual = np.linalg.norm(matrix @ evecs - evecs * evals, axis=0).max()
    drift = np.abs(evecs.T @ evecs - np.eye(evecs.shape[1])).max()
    if -lowest >= evals.min() or residual > 1e-6 or drift > 1e-6:
        return None
    return evals, evecs


def exact_diffusion_nn(connectivities, k: int, n_comps: int = 100):  # noqa: ANN001, ANN201
    """scib-metrics' diffusion_nn with an exact kNN on the diffusion embedding (see the module doc)."""
    from scib_metrics.utils._diffusion_nn import _EPS, _compute_transitions

    transitions = _compute_transitions(connectivities)
    evals, evecs = top_eigen(transitions, n_comps)
    evals += _EPS
    embedding = evecs * np.array([e if e == 1 else e / (1 - e) for e in evals])
    return exact_neighbors(embedding, k + 1)


@contextlib.contextmanager
def _exact_kbet_neighbours() -> Iterator[None]:
    """scib-metrics' own kbet_per_label with heldout's diffusion step (for comparing the two: tests, benchmarks)."""
    import scib_metrics.metrics._kbet as kbet_module

    original = kbet_module.diffusion_nn
    kbet_module.diffusion_nn = exact_diffusion_nn
    try:
        yield
    finally:
        kbet_module.diffusion_nn = original


INTEGRATION_STEPS = ("neighbours", "label_silhouettes", "isolated_labels", "silhouette_label", "clisi", "bras", "ilisi",
                     "kbet", "graph_connectivity", "pcr_comparison")


def integration_deterministic(x: np.ndarray, x_pre: np.ndarray, labels: np.ndarray, batches: np.ndarray,
                              timings: dict[str, float] | None = None,
                              on_step: Callable[[str], None] | None = None) -> dict[str, float]:
    """Every scIB metric that does not depend on a seed (all but k-means).

    Seconds per step (:data:`INTEGRATION_STEPS`) go into ``timings``; ``on_step`` is told each step's end.
    """
    import scib_metrics

    from heldout.evaluation import kbet, silhouettes

    clock = Clock(timings, on_step)
    with clock("neighbours"):
        neighbours = exact_neighbors(x, max(NEIGHBOURS))
        sub = {n: neighbours.subset_neighbors(min(n, neighbours.n_neighbors)) for n in NEIGHBOURS}
    with clock("label_silhouettes"):
        per_cell = silhouettes.label_silhouettes(x, labels)  # one distance pass for both label silhouettes
    steps = {
        "isolated_labels": lambda: silhouettes.isolated_labels(per_cell, labels, batches),
        "silhouette_label": lambda: silhouettes.silhouette_label(per_cell),
        "clisi": lambda: scib_metrics.clisi_knn(sub[90], labels),
        "bras": lambda: silhouettes.bras(x, labels, batches),
        "ilisi": lambda: scib_metrics.ilisi_knn(sub[90], batches),
        "kbet": lambda: kbet.kbet_per_label(sub[50].knn_graph_connectivities, batches, labels),
        "graph_connectivity": lambda: scib_metrics.graph_connectivity(sub[15], labels),
        "pcr_comparison": lambda: scib_metrics.pcr_comparison(x_pre, x, batches, categorical=True),
    }
    values = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, step in steps.items():
            with clock(name):
                values[name] = float(step())
    return values


class Clock:
    """Seconds per named step, added into a dict (or nothing, when none is given); ``on_step`` hears each end."""

    def __init__(self, into: dict[str, float] | None, on_step: Callable[[str], None] | None = None) -> None:
        self.into = into
        self.on_step = on_step

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        import time

        start = time.perf_counter()
        try:
            yield
        finally:
            if self.into is not None:
                self.into[name] = self.into.get(name, 0.0) + time.perf_counter() - start
        if self.on_step is not None:
            self.on_step(name)


def aggregates(values: dict[str, float]) -> dict[str, float]:
    """scib-metrics' aggregate scores (Benchmarker.get_results, unscaled)."""
    bio = float(np.nanmean([values[m] for m in BIO]))
    batch = float(np.nanmean([values[m] for m in BATCH]))
    return {"bio_conservation": bio, "batch_correction": batch, "total": 0.6 * bio + 0.4 * batch}


def per_class_mean(runs: list[dict[str, float]]) -> dict[str, float]:
    return pd.DataFrame(runs).mean(axis=0).round(6).to_dict() if runs else {}
