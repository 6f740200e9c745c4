"""perturbation-ridge: a small perturbation predictor trained on a released perturbation split.

It learns, from the training cells of a released perturbation dataset (the ``train`` and
``validation`` splits), how each target gene shifts expression: each training condition's mean
log1p(CP10k) profile minus its cell line's control mean is regressed on a multi-hot encoding of the
condition's target genes (scikit-learn ridge regression, alpha = 1). A held-out condition is
predicted as the intercept plus the coefficients of its genes (a gene never trained contributes
nothing, so an unseen single is predicted as the average training response and a combination
of trained genes additively, with the fitted interaction-free intercept). Cells are emitted as the
line's training control cells shifted by the predicted change, clipped at zero.

``train`` also writes exactly the cells the model learned from: ``heldout corpus record`` records
them as its task-training corpus, so the audit can show it GREEN on the held-out conditions that
the model never saw.

Usage (the Makefile's demo runs these)::

    python -m heldout.demo.perturbation_ridge train --registry R --release v2 --dataset norman-2019 --out M/
    python -m heldout.demo.perturbation_ridge predict --model M/ --registry R --dataset norman-2019@v2 --out p.h5ad
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from heldout.cards.perturbation import CONTROL
from heldout.demo.released import with_split
from heldout.evaluation.perturbation.predictions import to_log1p

TRAIN_SPLITS = ("train", "validation")
ALPHA = 1.0


def _mean(x: sp.csr_matrix) -> np.ndarray:
    return np.asarray(x.mean(axis=0)).ravel()


def train(registry: str, release: str, dataset: str, out: Path) -> dict:
    from sklearn.linear_model import Ridge

    out.mkdir(parents=True, exist_ok=True)
    adata = with_split(f"{dataset}@{release}", registry)
    cells = adata[np.isin(adata.obs["split"].to_numpy(), TRAIN_SPLITS)].copy()
    keep = ["dataset_id", "donor_id", "perturbation", "cell_line", "split"]
    ad.AnnData(X=sp.csr_matrix(cells.X, dtype=np.float32), obs=cells.obs[keep].copy(),
               var=cells.var[["feature_name"]].copy()).write_h5ad(out / "task_training.h5ad")
    x = to_log1p(cells.X, "counts")
    cond = cells.obs["perturbation"].astype(str).to_numpy()
    line = cells.obs["cell_line"].astype(str).to_numpy()
    genes = sorted({g for c in set(cond) - {CONTROL} for g in c.split("+")})
    rows, targets, controls = [], [], {}
    for value in sorted(set(line)):
        ctrl = (line == value) & (cond == CONTROL)
        if not ctrl.any():
            continue
        controls[value] = np.flatnonzero(ctrl)
        base = _mean(x[ctrl])
        for c in sorted(set(cond[(line == value) & (cond != CONTROL)])):
            rows.append(np.isin(genes, c.split("+")).astype(float))
            targets.append(_mean(x[(line == value) & (cond == c)]) - base)
    model = Ridge(alpha=ALPHA).fit(np.vstack(rows), np.vstack(targets))
    np.savez(out / "model.npz", genes=np.asarray(genes, dtype=str), coef=model.coef_, intercept=model.intercept_,
             var_names=np.asarray(cells.var_names, dtype=str))
    summary = {"dataset": dataset, "release": release, "training_cells": int(cells.n_obs),
               "training_conditions": len(rows), "target_genes": len(genes), "alpha": ALPHA}
    (out / "model.json").write_text(json.dumps(summary, indent=2))
    return summary


def predict(model_dir: Path, registry: str, ref: str, out: Path) -> dict:
    """Predicted cells (log1p CP10k) for every held-out condition of ``ref``'s split, per test cell line."""
    fit = np.load(model_dir / "model.npz")
    genes = list(fit["genes"])
    adata = with_split(ref, registry)
    if list(adata.var_names.astype(str)) != list(fit["var_names"]):
        raise SystemExit(f"{ref}'s genes differ from the ones the model was trained on.")
    x = to_log1p(adata.X, "counts")
    obs = adata.obs
    cond, line, split = (obs[c].astype(str).to_numpy() for c in ("perturbation", "cell_line", "split"))
    test_lines = sorted(set(line[(split == "test") & (cond != CONTROL)]))
    blocks, labels, lines = [], [], []
    for value in test_lines:
        basal = (line == value) & (cond == CONTROL) & np.isin(split, TRAIN_SPLITS)
        if not basal.any():  # a line never seen in training: its held-out controls are its basal state
            basal = (line == value) & (cond == CONTROL)
        base = x[basal].toarray()
        for c in sorted(set(cond[(split == "test") & (line == value) & (cond != CONTROL)])):
            hot = np.isin(genes, c.split("+")).astype(float)
            change = fit["intercept"] + hot @ fit["coef"].T
            blocks.append(np.clip(base + change[None, :], 0, None))
            labels += [c] * len(base)
            lines += [value] * len(base)
    pred = ad.AnnData(sp.csr_matrix(np.vstack(blocks).astype(np.float32)),
                      obs=pd.DataFrame({"perturbation": labels, "cell_line": lines},
                                       index=pd.Index([f"pred{i}" for i in range(len(labels))])),
                      var=pd.DataFrame(index=adata.var_names.astype(str)))
    pred.write_h5ad(out)
    return {"cells": int(pred.n_obs), "conditions": int(len(set(zip(lines, labels, strict=True)))),
            "cell_lines": test_lines}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m heldout.demo.perturbation_ridge",
                                     description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="fit the predictor on a release's training splits")
    t.add_argument("--registry", required=True)
    t.add_argument("--release", required=True)
    t.add_argument("--dataset", required=True, help="a perturbation dataset of the release")
    t.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("predict", help="predict the held-out conditions of a released dataset (log1p CP10k h5ad)")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--registry", required=True)
    p.add_argument("--dataset", required=True, help="NAME@VERSION")
    p.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "train":
        print(json.dumps(train(args.registry, args.release, args.dataset, args.out), indent=2))
    else:
        print(json.dumps(predict(args.model, args.registry, args.dataset, args.out), indent=2))


if __name__ == "__main__":
    main()
