"""pancreas-typist: a small foundation-model-shaped model built from released heldout data.

* **Encoder (pretraining, unlabelled):** scanpy's standard workflow (library-size
  normalisation, log1p, 2,000 highly variable genes, scaling, 50-component PCA)
  fit on every cell of two released human datasets, glioma-tirosh2016 and
  pbmc-blood. Its output is the model's embedding.
* **Classifier (task training, labelled):** a CellTypist logistic-regression
  model (mini-batch stochastic gradient descent, 10 epochs, balanced classes) trained on the
  log-normalised cells of the *train and validation donors* of
  baron-pancreas-human. Its output is the model's cell-type prediction.

CellTypist is a widely used annotation tool (Dominguez Conde et al., Science
2022) that trains offline from an AnnData with scikit-learn alone, so the demo
stays light and every cell the model saw is known exactly. ``train`` writes the
two training sets as h5ad files: ``heldout corpus record`` records them as the
model's pretraining and task-training corpora, so the audit can tell GREEN,
YELLOW and RED pairings apart from evidence rather than from claims.

Usage (the Makefile's demo runs these)::

    python -m heldout.demo.pancreas_typist train --registry R --release v1 --out model/
    python -m heldout.demo.pancreas_typist embed --model model/ --dataset NAME@v2 --registry R --out emb.parquet
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from heldout.demo.released import with_split

PRETRAINING = ("glioma-tirosh2016", "pbmc-blood")
TASK_DATASET = "baron-pancreas-human"
TASK_SPLITS = ("train", "validation")
N_HVG, N_PCS, SEED = 2000, 50, 0


def _lognorm(x: sp.spmatrix) -> sp.csr_matrix:
    x = sp.csr_matrix(x, dtype=np.float64)
    totals = np.asarray(x.sum(axis=1)).ravel()
    scale = np.divide(1e4, totals, out=np.zeros_like(totals), where=totals > 0)
    x = sp.diags(scale) @ x
    x.data = np.log1p(x.data)
    return sp.csr_matrix(x)


def _training_file(adata: ad.AnnData, path: Path) -> None:
    """Exactly the cells the model is trained on: raw counts, ids, donors (what a corpus record reads)."""
    keep = ["dataset_id", "donor_id", "cell_type", "split"]
    out = ad.AnnData(X=sp.csr_matrix(adata.X, dtype=np.float32), obs=adata.obs[[c for c in keep if c in adata.obs]].copy(),
                     var=adata.var[["feature_name"]].copy())
    out.write_h5ad(path)


def train(registry: str, release: str, out: Path) -> dict:
    import celltypist
    import scanpy as sc

    out.mkdir(parents=True, exist_ok=True)
    pre = ad.concat([with_split(f"{n}@{release}", registry) for n in PRETRAINING], join="inner", merge="same")
    _training_file(pre, out / "pretraining.h5ad")
    work = ad.AnnData(X=_lognorm(pre.X), var=pd.DataFrame(index=pre.var_names))
    sc.pp.highly_variable_genes(work, n_top_genes=N_HVG, flavor="seurat")
    genes = work.var_names[work.var["highly_variable"].to_numpy()]
    dense = work[:, genes].X.toarray()
    mean, std = dense.mean(axis=0), dense.std(axis=0) + 1e-8
    pca = sc.pp.pca(np.clip((dense - mean) / std, -10, 10), n_comps=N_PCS, svd_solver="arpack", random_state=SEED,
                    return_info=True)
    components = pca[1]
    np.savez(out / "encoder.npz", genes=np.asarray(genes, dtype=str), mean=mean, std=std, components=components)

    task = with_split(f"{TASK_DATASET}@{release}", registry)
    task = task[np.isin(task.obs["split"].to_numpy(), TASK_SPLITS)].copy()
    _training_file(task, out / "task_training.h5ad")
    labelled = ad.AnnData(X=_lognorm(task.X), obs=task.obs[["cell_type"]].copy(), var=pd.DataFrame(index=task.var_names))
    np.random.seed(SEED)  # CellTypist's mini-batches are drawn with numpy's global generator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = celltypist.train(labelled, labels="cell_type", use_SGD=True, mini_batch=True, epochs=10,
                                 balance_cell_type=True, feature_selection=False, n_jobs=1, check_expression=True)
    model.write(str(out / "celltypist.pkl"))
    summary = {"pretraining_cells": int(pre.n_obs), "pretraining_datasets": list(PRETRAINING),
               "task_training_cells": int(task.n_obs), "task_training_donors": sorted(task.obs["donor_id"].unique()),
               "encoder_genes": int(len(genes)), "release": release}
    (out / "model.json").write_text(json.dumps(summary, indent=2))
    return summary


def embed(model_dir: Path, adata: ad.AnnData) -> np.ndarray:
    """The encoder's embedding of ``adata`` (raw counts, var indexed by Ensembl id)."""
    enc = np.load(model_dir / "encoder.npz")
    x = _lognorm(adata.X)
    column = pd.Index(adata.var_names).get_indexer(enc["genes"])
    dense = np.zeros((adata.n_obs, len(column)))
    present = column >= 0
    dense[:, present] = x[:, column[present]].toarray()
    return np.clip((dense - enc["mean"]) / enc["std"], -10, 10) @ enc["components"].T


def predict(model_dir: Path, adata: ad.AnnData) -> np.ndarray:
    """CellTypist's label for each cell of ``adata``."""
    import celltypist

    data = ad.AnnData(X=_lognorm(adata.X), var=pd.DataFrame(index=adata.var_names.astype(str)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = celltypist.annotate(data, model=str(model_dir / "celltypist.pkl"), majority_voting=False)
    return result.predicted_labels["predicted_labels"].astype(str).to_numpy()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m heldout.demo.pancreas_typist", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the encoder and the classifier from a release")
    t.add_argument("--registry", required=True)
    t.add_argument("--release", required=True)
    t.add_argument("--out", type=Path, required=True)
    e = sub.add_parser("embed", help="embed a released dataset (parquet keyed by observation_joinid)")
    e.add_argument("--model", type=Path, required=True)
    e.add_argument("--dataset", required=True, help="NAME@VERSION")
    e.add_argument("--registry", required=True)
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--predictions", type=Path, default=None, help="also write CellTypist predictions here")
    args = parser.parse_args(argv)
    if args.command == "train":
        print(json.dumps(train(args.registry, args.release, args.out), indent=2))
        return
    from heldout.pull import pull

    adata = ad.read_h5ad(pull(args.dataset, registry=args.registry).path)
    frame = pd.DataFrame(embed(args.model, adata), index=pd.Index(adata.obs_names, name="observation_joinid"))
    frame.rename(columns=str).to_parquet(args.out)
    if args.predictions:
        pd.DataFrame({"observation_joinid": adata.obs_names, "prediction": predict(args.model, adata)}).to_parquet(
            args.predictions, index=False)
    print(f"wrote {args.out}" + (f" and {args.predictions}" if args.predictions else ""))


if __name__ == "__main__":
    main()
