"""Metrics, from scikit-learn and scanpy; only the scib-style silhouette rescaling is ours.

Every function takes an embedding (cells x dims) and labels and returns plain
floats, deterministic for a given seed.
"""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, adjusted_rand_score, f1_score, normalized_mutual_info_score
from sklearn.metrics import silhouette_samples, silhouette_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def annotation(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
               *, seed: int) -> dict[str, float]:
    """Standardised logistic regression on the train embeddings, scored on the test cells."""
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notices on tiny or random inputs
        model.fit(train_x, train_y)
    predicted = model.predict(test_x)
    return {"macro_f1": float(f1_score(test_y, predicted, average="macro", zero_division=0)),
            "accuracy": float(accuracy_score(test_y, predicted))}


def clustering(x: np.ndarray, labels: np.ndarray, *, seed: int) -> dict[str, float]:
    """k-means (k = number of labels) and Leiden (scanpy, 15-NN Gaussian-kernel graph, resolution 1) vs labels.

    The Gaussian kernel (method="gauss") avoids UMAP's numba compilation (~5 s per process).
    """
    import scanpy as sc

    k = len(np.unique(labels))
    kmeans = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
    adata = ad.AnnData(X=np.zeros((len(x), 1), dtype=np.float32), obsm={"X_emb": np.asarray(x, dtype=np.float64)})
    sc.pp.neighbors(adata, n_neighbors=min(15, len(x) - 1), use_rep="X_emb", random_state=seed, method="gauss")
    sc.tl.leiden(adata, resolution=1.0, random_state=seed, flavor="igraph", n_iterations=2, directed=False)
    leiden = adata.obs["leiden"].to_numpy()
    return {"ari_kmeans": float(adjusted_rand_score(labels, kmeans)),
            "nmi_kmeans": float(normalized_mutual_info_score(labels, kmeans)),
            "ari_leiden": float(adjusted_rand_score(labels, leiden)),
            "nmi_leiden": float(normalized_mutual_info_score(labels, leiden))}


def integration(x: np.ndarray, labels: np.ndarray, batches: np.ndarray) -> dict[str, float]:
    """scib-style silhouettes: label ASW rescaled to [0, 1]; batch ASW = mean over labels of 1 - |s_batch|."""
    n_labels = len(np.unique(labels))
    asw_label = (silhouette_score(x, labels) + 1) / 2 if 1 < n_labels < len(labels) else float("nan")
    per_label = []
    frame = pd.DataFrame({"label": labels, "batch": batches})
    for _, cells in frame.groupby("label", observed=True).groups.items():
        idx = np.asarray(cells)
        sub_batches = batches[idx]
        if len(np.unique(sub_batches)) < 2 or len(idx) <= len(np.unique(sub_batches)):
            continue  # a label seen in one batch says nothing about mixing
        per_label.append(np.mean(1 - np.abs(silhouette_samples(x[idx], sub_batches))))
    return {"asw_label": float(asw_label), "asw_batch": float(np.mean(per_label)) if per_label else float("nan")}
