"""Perturbation conditions as evidence: the perturbation analogue of a donor.

In a perturbation screen every cell comes from one cell line (donor ``na``), so donors cannot tell
a model's training cells from held-out ones, and with a few hundred measured genes most cells fall
below the content-matching floor. What a perturbation model learns from is a *condition*: a
perturbation in a cell line. A recorded corpus of cells that carry heldout's design columns
(``perturbation``, ``cell_line``) therefore also records its conditions (``conditions.parquet``:
dataset_id, condition, n_cells), and the eval side knows each cell's condition from its
perturbation split.

For a dataset the corpus shares, a cell is seen when its condition (dataset, cell line,
perturbation) is in the corpus: the model saw that perturbation's response in that line, whichever
cells it saw. A cell of a condition the corpus never had is decided by its condition too, instead of
being counted as seen for want of a donor. Controls are a condition like any other (a model trained
beside its line's control cells has seen that condition); perturbation tasks score the perturbed
held-out cells.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SEPARATOR = "|"
FILE = "conditions.parquet"


def condition_keys(cell_line: np.ndarray, perturbation: np.ndarray) -> np.ndarray:
    """``LINE|perturbation`` per cell: a condition within its dataset."""
    return np.char.add(np.char.add(np.asarray(cell_line, dtype=str), SEPARATOR), np.asarray(perturbation, dtype=str))


def of_obs(obs: pd.DataFrame) -> np.ndarray | None:
    """Each cell's condition from heldout's design columns, or None when the cells carry no perturbation design."""
    if "perturbation" not in obs.columns:
        return None
    line = obs["cell_line"].astype(str).to_numpy() if "cell_line" in obs.columns else np.full(len(obs), "")
    return condition_keys(line, obs["perturbation"].astype(str).to_numpy())


def table(dataset_of_cell: np.ndarray, conditions: np.ndarray) -> pd.DataFrame:
    """dataset_id, condition, n_cells: what a recorded corpus keeps of its cells' conditions."""
    frame = pd.DataFrame({"dataset_id": np.asarray(dataset_of_cell, dtype=str), "condition": conditions})
    return frame.groupby(["dataset_id", "condition"], observed=True).size().rename("n_cells").reset_index()


def merge(tables: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [t for t in tables if len(t)]
    if not frames:
        return pd.DataFrame(columns=["dataset_id", "condition", "n_cells"])
    return pd.concat(frames).groupby(["dataset_id", "condition"], observed=True)["n_cells"].sum().reset_index()


def keys(frame: pd.DataFrame) -> frozenset[str]:
    """``dataset::condition`` of every condition in a corpus's table."""
    return frozenset((frame["dataset_id"].astype(str) + "::" + frame["condition"].astype(str)).tolist())


def seen(dataset_of_cell: np.ndarray, condition_of_cell: np.ndarray, corpus: frozenset[str]) -> np.ndarray:
    """Eval cells whose condition the corpus holds."""
    cell_keys = np.char.add(np.char.add(np.asarray(dataset_of_cell, dtype=str), "::"), condition_of_cell)
    return np.isin(cell_keys, list(corpus))
