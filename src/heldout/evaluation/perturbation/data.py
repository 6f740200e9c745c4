"""The cells a perturbation task scores and trains its baselines on, from a released (or curated) dataset.

A dataset with a perturbation split has, per cell, a ``split`` and a ``subgroup`` (GEARS'
``unseen_single``/``combo_seen0/1/2``, ``held_out_combination``, ``other_cell_line``, ``control``).
The task scores the held-out conditions of each test cell line (a *context*) against that line's
held-out controls; baselines learn from the training splits. Counts become log1p(CP10k), the scale
every entry is scored on.

A condition key is the condition (``KLF1``, ``KLF1+MAP2K6``), or ``LINE/condition`` when the task
predicts several cell lines (the cross-cell-line split predicts the same genes in two glioma lines).
"""

from __future__ import annotations

from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd

from heldout.cards.perturbation import CONTROL
from heldout.errors import EvaluationError
from heldout.evaluation.inputs import EvalDataset
from heldout.evaluation.perturbation.predictions import to_log1p

LINE_SUBGROUP = "cell_line:"


@dataclass(frozen=True, eq=False)
class PerturbationData:
    genes: pd.Index  # the dataset's var_names (Ensembl ids), in order
    lines: list[str]  # test cell lines (contexts), each scored on its own
    real: dict[str, ad.AnnData]  # line -> held-out cells of that line (obs: perturbation, key), log1p(CP10k)
    train: ad.AnnData  # training cells (obs: perturbation, cell_line), log1p(CP10k)
    subgroups: dict[str, list[str]]  # subgroup -> condition keys
    target_gene_map: dict[str, str | None]  # condition -> its target's Ensembl id (None for combinations)
    symbols: dict[str, str]  # Ensembl id -> gene symbol (var feature_name), how conditions name their targets

    @property
    def expected(self) -> list[str]:
        return sorted({k for members in self.subgroups.values() for k in members})


def _design_columns(data: EvalDataset) -> pd.DataFrame:
    obs = data.adata.obs
    missing = [c for c in ("perturbation", "cell_line", "target_gene_ids") if c not in obs.columns]
    if missing or data.subgroup is None:
        msg = (f"{data.name}@{data.version} is not a perturbation dataset (obs lacks {', '.join(missing) or 'nothing'}; "
               f"split subgroups: {'none' if data.subgroup is None else 'present'}).")
        raise EvaluationError(msg, hint="A perturbation task names a dataset whose card declares `perturbation:`.")
    return obs


def perturbation_data(data: EvalDataset, *, train_splits: list[str], test_splits: list[str]) -> PerturbationData:
    obs = _design_columns(data)
    condition = obs["perturbation"].astype(str).to_numpy()
    line = obs["cell_line"].astype(str).to_numpy()
    subgroup = np.asarray(data.subgroup, dtype=str)
    is_control = condition == CONTROL
    test = np.isin(data.split, test_splits)
    train = np.isin(data.split, train_splits)
    lines = sorted(set(line[test & ~is_control]))
    if not lines:
        msg = f"{data.name}@{data.version}: no perturbed cell is in the task's test splits {test_splits}."
        raise EvaluationError(msg, hint="Check the task card's test_splits against the dataset's split.")
    x = to_log1p(data.adata.X, "counts")
    genes = pd.Index(data.adata.var_names.astype(str))
    real, subgroups = {}, {}
    for value in lines:
        cells = test & (line == value)
        if not (cells & is_control).any():
            msg = f"{data.name}@{data.version}: cell line {value} has no held-out control cells to compare with."
            raise EvaluationError(msg, hint="Re-split the dataset: every test line needs controls in test.")
        real[value] = frame(x[cells], condition[cells], line[cells], obs.index[cells], genes)
    single = len(lines) == 1
    for c, g, value in zip(condition[test & ~is_control], subgroup[test & ~is_control], line[test & ~is_control],
                           strict=True):
        key = c if single else f"{value}/{c}"
        subgroups.setdefault(g, set()).add(key)
        if not single:
            subgroups.setdefault(f"{LINE_SUBGROUP}{value}", set()).add(key)
    # cell-eval excludes a single's own target from the ranked genes; a combination, or a target the
    # panel does not measure, has no column to exclude and is declared so (None) rather than left unresolved
    targets = obs["target_gene_ids"].astype(str).to_numpy()
    measured = set(genes)
    target_map = {c: (t if "+" not in t and t in measured else None)
                  for c, t in zip(condition, targets, strict=True) if c != CONTROL}
    return PerturbationData(genes=genes, lines=lines, real=real,
                            train=frame(x[train], condition[train], line[train], obs.index[train], genes),
                            subgroups={g: sorted(keys) for g, keys in sorted(subgroups.items())},
                            target_gene_map=target_map, symbols=_symbols(data.adata.var))


def _symbols(var: pd.DataFrame) -> dict[str, str]:
    if "feature_name" not in var.columns:
        return {}
    return dict(zip(var.index.astype(str), var["feature_name"].astype(str), strict=True))


def frame(x, condition: np.ndarray, line: np.ndarray, index: pd.Index, genes: pd.Index) -> ad.AnnData:  # noqa: ANN001
    """Cells in cell-eval's shape: X (log1p CP10k CSR), obs perturbation and cell_line, var the genes."""
    return ad.AnnData(x, obs=pd.DataFrame({"perturbation": condition, "cell_line": line},
                                          index=pd.Index(np.asarray(index).astype(str))),
                      var=pd.DataFrame(index=genes.copy()))
