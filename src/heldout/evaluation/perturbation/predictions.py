"""A model's predicted cells, checked against the task before any metric runs.

Predictions come in cell-eval's AnnData shape: one row per predicted cell, an obs column naming its
condition (``perturbation``, the curated design column; combinations written ``A+B``), and the
dataset's genes as ``var_names`` in the dataset's order. The scale is declared, never guessed:
``counts`` (non-negative integers) or ``log1p`` (log1p of counts per 10,000, as scanpy's
``normalize_total`` + ``log1p`` write them). Control cells may be included (their own DE
reference then, as in cell-eval); without them the held-out real controls are added. A task that
predicts several cell lines also needs ``cell_line`` in obs.

Every mismatch is an error that names the bad value and how to fix it; nothing is reordered,
renamed, dropped or filled silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from heldout.cards.perturbation import CONTROL
from heldout.errors import EvaluationError

Values = Literal["counts", "log1p"]
VALUES: tuple[Values, ...] = ("counts", "log1p")
TARGET_SUM = 1e4
LOG1P_MAX = 15.0  # log1p of a whole 10,000-count cell in one gene is 9.2; above this it is not log1p(CP10k)
LINE = "cell_line"
MIN_CELLS = 2  # a Wilcoxon test needs more than one predicted cell per condition
SHAPE_HINT = ("Write predictions in cell-eval's shape: `pred = ad.AnnData(X, obs=pd.DataFrame({'perturbation': "
              "conditions}), var=pd.DataFrame(index=real.var_names))`, one row per predicted cell.")


class PredictionError(EvaluationError):
    """A prediction file that does not fit its task (exit 10, like every evaluation error)."""


@dataclass(frozen=True, eq=False)
class Predictions:
    """Predicted cells on the task's genes, as log1p(CP10k), with their conditions."""

    adata: ad.AnnData  # obs["key"]: condition (LINE/condition for several lines); X float32 CSR, log1p(CP10k)
    path: Path
    values: Values
    n_cells: int
    keys: list[str]


def _examples(items: list[str], n: int = 5) -> str:
    shown = ", ".join(repr(str(i)) for i in items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def check_values(values: str) -> Values:
    if values not in VALUES:
        msg = f"--values {values!r} is not a scale heldout knows; allowed: {', '.join(VALUES)}."
        raise PredictionError(msg, hint="Declare what X holds: raw counts (`counts`) or log1p of counts per "
                                        "10,000 (`log1p`).")
    return values  # type: ignore[return-value]


def _check_genes(var_names: pd.Index, genes: pd.Index, path: Path) -> None:
    if var_names.has_duplicates:
        dup = var_names[var_names.duplicated()].unique().tolist()
        raise PredictionError(f"{path.name}: duplicated gene(s) in var_names: {_examples(dup)}.",
                              hint="One column per gene of the dataset, each once.")
    missing = genes.difference(var_names, sort=False).tolist()
    extra = var_names.difference(genes, sort=False).tolist()
    if missing or extra:
        parts = [f"{len(missing)} of the dataset's {len(genes)} genes are missing ({_examples(missing)})"] if missing \
            else []
        parts += [f"{len(extra)} gene(s) are not the dataset's ({_examples(extra)})"] if extra else []
        raise PredictionError(f"{path.name}: {'; '.join(parts)}.",
                              hint="var_names are the released h5ad's var_names (Ensembl ids), all of them: "
                                   "predict every gene, or subset with `pred[:, real.var_names]`.")
    if not var_names.equals(genes):
        at = int(np.flatnonzero(var_names.to_numpy() != genes.to_numpy())[0])
        raise PredictionError(f"{path.name}: the genes are the dataset's but in another order (position {at} is "
                              f"{var_names[at]!r}, the dataset has {genes[at]!r}); nothing is reordered silently.",
                              hint="Reorder the columns: `pred = pred[:, real.var_names]`.")


def _keys(obs: pd.DataFrame, column: str, lines: list[str], path: Path) -> np.ndarray:
    """Each predicted cell's condition key: the condition, or ``LINE/condition`` when several lines are predicted."""
    if column not in obs.columns:
        raise PredictionError(f"{path.name}: obs has no {column!r} column naming each cell's condition "
                              f"(columns: {_examples(list(map(str, obs.columns)), 10) or 'none'}).", hint=SHAPE_HINT)
    conditions = obs[column].astype(str).to_numpy()
    if len(lines) == 1:
        return conditions
    if LINE not in obs.columns:
        raise PredictionError(f"{path.name}: this task predicts {len(lines)} cell lines ({', '.join(lines)}), so obs "
                              f"needs a {LINE!r} column saying which line each predicted cell is for.", hint=SHAPE_HINT)
    line = obs[LINE].astype(str).to_numpy()
    unknown = sorted(set(line) - set(lines))
    if unknown:
        raise PredictionError(f"{path.name}: cell line(s) {_examples(unknown)} are not predicted by this task.",
                              hint=f"The task's test cell lines: {', '.join(lines)}.")
    return np.char.add(np.char.add(line.astype(str), "/"), conditions.astype(str)).astype(object)


def _check_conditions(keys: np.ndarray, expected: list[str], path: Path) -> None:
    present = set(pd.unique(keys))
    missing = sorted(set(expected) - present)
    extra = sorted(k for k in present - set(expected) if k.rsplit("/", 1)[-1] != CONTROL)
    if missing:
        raise PredictionError(f"{path.name}: no predicted cells for {len(missing)} held-out condition(s): "
                              f"{_examples(missing)}.",
                              hint=f"Predict every test condition of the task ({len(expected)}: "
                                   f"{_examples(sorted(expected), 8)}); combinations are written 'A+B', the "
                                   f"control {CONTROL!r}.")
    if extra:
        raise PredictionError(f"{path.name}: {len(extra)} condition(s) are not held out by this task: "
                              f"{_examples(extra)}.",
                              hint="Predict exactly the test conditions (and optionally the control); check the "
                                   "spelling ('A+B', the order of a combination as the dataset writes it).")
    counts = pd.Series(keys).value_counts()
    thin = counts[counts < MIN_CELLS]
    if len(thin):
        raise PredictionError(f"{path.name}: condition(s) with fewer than {MIN_CELLS} predicted cells: "
                              f"{_examples(thin.index.tolist())}.",
                              hint="Predict a population of cells per condition (e.g. as many as the real test set).")


def _check_values(x: sp.csr_matrix, values: Values, path: Path) -> None:
    data = x.data
    bad = ~np.isfinite(data)
    if bad.any():
        row = int(np.searchsorted(x.indptr, np.flatnonzero(bad)[0], side="right") - 1)
        raise PredictionError(f"{path.name}: {int(bad.sum())} value(s) are NaN or infinite (first in cell row {row}).",
                              hint="Predict a finite value for every gene of every cell.")
    if (data < 0).any():
        raise PredictionError(f"{path.name}: {int((data < 0).sum())} value(s) are negative (min {data.min():.4g}); "
                              f"expression is never negative.",
                              hint="Clip at zero, or predict on the declared scale (counts or log1p), not a "
                                   "centred or z-scored one.")
    fractional = data[np.abs(data - np.round(data)) > 1e-6] if values == "counts" else data[:0]
    if len(fractional):
        raise PredictionError(f"{path.name}: declared counts, but {len(fractional)} value(s) are not whole numbers "
                              f"(e.g. {fractional[0]:.4g}).",
                              hint="If X holds log1p of counts per 10,000, pass --values log1p.")
    if values == "log1p" and len(data) and data.max() > LOG1P_MAX:
        raise PredictionError(f"{path.name}: declared log1p, but the largest value is {data.max():.4g}; log1p of "
                              f"counts per 10,000 stays below {LOG1P_MAX:g}.",
                              hint="If X holds raw counts, pass --values counts.")


def to_log1p(x: sp.spmatrix | np.ndarray, values: Values) -> sp.csr_matrix:
    """log1p of counts per 10,000 (scanpy's normalize_total + log1p), as float32 CSR (totals in float64)."""
    x = sp.csr_matrix(x)
    if values == "log1p":
        return x if x.dtype == np.float32 else x.astype(np.float32)
    totals = np.asarray(x.sum(axis=1, dtype=np.float64)).ravel()
    scale = np.divide(TARGET_SUM, totals, out=np.zeros_like(totals), where=totals > 0)
    data = np.log1p(x.data.astype(np.float64) * np.repeat(scale, np.diff(x.indptr)))
    return sp.csr_matrix((data.astype(np.float32), x.indices, x.indptr), shape=x.shape)


def read_predictions(path: str | Path, *, values: str, genes: pd.Index, expected: list[str], lines: list[str],
                     column: str = "perturbation") -> Predictions:
    """Read and check ``path`` against the task's genes (in order) and held-out condition keys.

    ``expected`` are the keys of the held-out conditions (``LINE/condition`` when the task predicts
    several cell ``lines``, else the condition).
    """
    from heldout.untrusted.hdf5 import check_h5ad

    path = Path(path)
    declared = check_values(values)
    if not path.is_file():
        raise PredictionError(f"Predictions file {path} does not exist.", hint=SHAPE_HINT)
    if path.suffix.lower() != ".h5ad":
        raise PredictionError(f"{path.name}: perturbation predictions are an .h5ad (cell-eval's AnnData shape), "
                              f"not {path.suffix or 'a file without suffix'}.", hint=SHAPE_HINT)
    check_h5ad(path, f"predictions {path.name}")
    adata = ad.read_h5ad(path)
    _check_genes(pd.Index(adata.var_names.astype(str)), genes, path)
    labels = _keys(adata.obs, column, lines, path)
    _check_conditions(labels, expected, path)
    x = sp.csr_matrix(adata.X)
    _check_values(x, declared, path)
    out = ad.AnnData(to_log1p(x, declared), obs=pd.DataFrame({"key": labels},
                                                             index=pd.Index([f"pred{i}" for i in range(len(labels))])),
                     var=pd.DataFrame(index=genes.copy()))
    return Predictions(adata=out, path=path, values=declared, n_cells=int(adata.n_obs),
                       keys=sorted(set(labels)))
