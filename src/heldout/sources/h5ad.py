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

SAMPLE_ROWS = 500  # rows inspected to decide whether a matrix holds counts
ID_COLUMNS = ("feature_id", "gene_ids", "gene_id", "ensembl_id", "ensembl_ids")


def holds_counts(block: sp.spmatrix | np.ndarray) -> bool:
    """Non-negative, finite, whole numbers: what raw counts look like."""
    data = block.data if sp.issparse(block) else np.asarray(block).ravel()
    return bool(data.size == 0 or (np.isfinite(data).all() and (data >= 0).all() and (data == np.rint(data)).all()))


def counts_matrix(adata: ad.AnnData, what: str, choice: str = "auto") -> tuple[str, object, pd.DataFrame]:
    """(``X`` or ``raw.X``, that matrix, its var): whichever holds raw counts (or the one asked for)."""
    candidates = []
    if choice in ("auto", "X"):
        candidates.append(("X", adata.X, adata.var))
    if choice in ("auto", "raw") and adata.raw is not None:
        candidates.append(("raw.X", adata.raw.X, adata.raw.var))
    for name, matrix, var in candidates:
        if matrix is not None and holds_counts(matrix[: min(SAMPLE_ROWS, adata.n_obs)]):
            return name, matrix, var
    where = " and ".join(n for n, _, _ in candidates) or "no matrix"
    msg = f"{what}: {where} hold no raw integer counts (found normalised or negative values)."
    raise SourceError(msg, hint="heldout records and curates raw counts: keep them in X or in raw.X.")


class H5adSource(CellSource):
    kind = "h5ad"

    def __init__(self, path: str | Path, *, dataset_id: str | None = None, counts: str = "auto") -> None:
        self.path = Path(path)
        if not self.path.exists():
            msg = f"No such h5ad file: {self.path}."
            raise SourceError(msg)
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
