"""The interface every cell source implements."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from types import TracebackType

import numpy as np
import pandas as pd
import scipy.sparse as sp

OBS_REQUIRED = ("dataset_id", "donor_id", "cell_id")
DATASET_COLUMNS = ("dataset_id", "dataset_title", "collection_id", "collection_doi", "citation")


class CellSource(abc.ABC):
    """Cells of one source, in a fixed order: obs rows, var columns and X row blocks agree."""

    kind: str = "source"

    def __enter__(self) -> CellSource:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:  # noqa: B027 - sources with nothing to release need not override
        """Release files and handles."""

    @property
    @abc.abstractmethod
    def description(self) -> str:
        """What this source is, for provenance records and messages."""

    @abc.abstractmethod
    def obs(self) -> pd.DataFrame:
        """One row per cell in X order, with at least ``dataset_id``, ``donor_id``, ``cell_id``."""

    @abc.abstractmethod
    def var(self) -> pd.DataFrame:
        """One row per X column, with ``feature_id`` (unversioned Ensembl id)."""

    @abc.abstractmethod
    def blocks(self, size: int) -> Iterator[sp.csr_matrix]:
        """X (raw integer counts) as consecutive CSR blocks of at most ``size`` cells, in obs order."""

    def measured_genes(self) -> dict[str, np.ndarray]:
        """Ensembl ids each dataset measured (default: every var column, for every dataset)."""
        ids = self.var()["feature_id"].to_numpy(dtype=str)
        return {d: ids for d in pd.unique(self.obs()["dataset_id"].astype(str))}

    def datasets(self) -> pd.DataFrame:
        """One row per dataset id with what is known of it (title, collection, DOI, citation)."""
        ids = pd.unique(self.obs()["dataset_id"].astype(str))
        frame = pd.DataFrame({"dataset_id": ids})
        for column in DATASET_COLUMNS[1:]:
            frame[column] = ""
        return frame


def check_obs(obs: pd.DataFrame, description: str) -> pd.DataFrame:
    """The obs a source returns, with the required columns as plain strings."""
    missing = [c for c in OBS_REQUIRED if c not in obs.columns]
    if missing:  # a programming error in a source, not a user error
        msg = f"{description} gave obs without {missing}"
        raise AssertionError(msg)
    for column in OBS_REQUIRED:
        obs[column] = obs[column].astype(str)
    return obs.reset_index(drop=True)
