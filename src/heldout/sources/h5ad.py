"""An h5ad file as a cell source: a model's training file, a lab's dataset, a CELLxGENE submission.

Raw counts are read from ``X`` when X holds non-negative integers, else from
``raw.X`` (CELLxGENE files keep normalised values in X and counts in raw.X);
a file with neither is refused. The file is opened backed and read in row
blocks, so memory does not grow with the number of cells.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from heldout._files import sha256_file
from heldout.errors import SourceError
from heldout.sources.base import CellSource, check_obs

CHECK_ROWS = 20_000  # rows per block when every row of a matrix is checked for counts
ID_COLUMNS = ("feature_id", "gene_ids", "gene_id", "ensembl_id", "ensembl_ids")


def counts_problem(block: sp.spmatrix | np.ndarray) -> str:
    """What keeps ``block`` from being raw counts ("" if nothing)."""
    data = block.data if sp.issparse(block) else np.asarray(block).ravel()
    if data.size == 0:
        return ""
    if not np.isfinite(data).all():
        return "NaN or infinite values"
    if (data < 0).any():
        return "negative values"
    if (data != np.rint(data)).any():
        return "non-integer (normalised) values"
    return ""


def first_bad_rows(matrix: object, n_rows: int) -> tuple[int, str] | None:
    """(first row of the first block that is not counts, why), checking every row in blocks; None if all are."""
    for start in range(0, n_rows, CHECK_ROWS):
        problem = counts_problem(matrix[start:min(start + CHECK_ROWS, n_rows)])  # type: ignore[index]
        if problem:
            return start, problem
    return None


def counts_matrix(adata: ad.AnnData, what: str, choice: str = "auto") -> tuple[str, object, pd.DataFrame]:
    """(``X`` or ``raw.X``, that matrix, its var): whichever holds raw counts in every row (or the one asked for).

    Every row is checked, block by block, so a backed file is read in bounded memory."""
    candidates = []
    if choice in ("auto", "X"):
        candidates.append(("X", adata.X, adata.var))
    if choice in ("auto", "raw") and adata.raw is not None:
        candidates.append(("raw.X", adata.raw.X, adata.raw.var))
    found = []
    for name, matrix, var in candidates:
        if matrix is None:
            continue
        bad = first_bad_rows(matrix, adata.n_obs)
        if bad is None:
            return name, matrix, var
        found.append(f"{name} has {bad[1]} in rows {bad[0]:,}-{min(bad[0] + CHECK_ROWS, adata.n_obs) - 1:,}")
    where = "; ".join(found) or "there is no matrix"
    msg = f"{what}: no matrix holds raw integer counts in every cell ({where})."
    raise SourceError(msg, hint="heldout records and curates raw counts: keep them in X or in raw.X.")


class H5adSource(CellSource):
    kind = "h5ad"

    def __init__(self, path: str | Path, *, dataset_id: str | None = None, counts: str = "auto") -> None:
        self.path = Path(path)
        if not self.path.exists():
            msg = f"No such h5ad file: {self.path}."
            raise SourceError(msg)
        from heldout.untrusted.hdf5 import check_h5ad

        check_h5ad(self.path, str(self.path))  # nothing outside the file is read, shapes within limits
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.adata = ad.read_h5ad(self.path, backed="r")
        except Exception as exc:  # h5py/anndata raise many types for a damaged or foreign file
            msg = f"{self.path} is not a readable h5ad: {type(exc).__name__}: {exc}"
            raise SourceError(msg) from None
        self.sha256 = sha256_file(self.path)
        self.default_dataset = dataset_id or f"h5ad:{self.sha256[:16]}"
        self.matrix, self.var_frame = self._counts_matrix(counts)
        self._obs: pd.DataFrame | None = None

    @property
    def description(self) -> str:
        return f"h5ad file {self.path}"

    def close(self) -> None:
        self.adata.file.close()

    def _counts_matrix(self, choice: str) -> tuple[object, pd.DataFrame]:
        self.counts_from, matrix, var = counts_matrix(self.adata, str(self.path), choice)
        return matrix, var

    def obs(self) -> pd.DataFrame:
        if self._obs is None:
            src = self.adata.obs
            obs = pd.DataFrame({
                "dataset_id": src["dataset_id"].astype(str).to_numpy() if "dataset_id" in src
                else np.full(len(src), self.default_dataset, dtype=object),
                "donor_id": src["donor_id"].astype(str).to_numpy() if "donor_id" in src
                else np.full(len(src), "unknown", dtype=object),
                "cell_id": src["observation_joinid"].astype(str).to_numpy() if "observation_joinid" in src
                else self.adata.obs_names.astype(str).to_numpy(),
            })
            from heldout.leakage.conditions import of_obs

            if (conditions := of_obs(src)) is not None:  # perturbation cells: what a corpus keeps of its design
                obs["condition"] = conditions
            self._obs = check_obs(obs, self.description)
        return self._obs

    def var(self) -> pd.DataFrame:
        var = self.var_frame
        column = next((c for c in ID_COLUMNS if c in var.columns), None)
        ids = var[column] if column else pd.Series(var.index)
        return pd.DataFrame({"feature_id": ids.astype(str).to_numpy(),
                             "feature_name": var["feature_name"].astype(str).to_numpy() if "feature_name" in var
                             else var.index.astype(str).to_numpy()})

    def blocks(self, size: int) -> Iterator[sp.csr_matrix]:
        for start in range(0, self.adata.n_obs, size):
            block = self.matrix[start:min(start + size, self.adata.n_obs)]
            yield sp.csr_matrix(block, dtype=np.float32)
