"""SOMA sources: the Census (real or mini-Census) and any SOMA experiment written by tiledbsoma.

Both read through ``Experiment.axis_query``: obs and var once, X streamed in obs
order by :func:`heldout.sources.x_blocks.x_blocks`, with the bounded read buffers
of :func:`heldout.census.streaming_context`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import tiledbsoma as soma

from heldout.census import ResolvedCensus, experiment, open_resolved, streaming_context
from heldout.errors import CardError, SourceError, unknown_choice
from heldout.sources.base import DATASET_COLUMNS, CellSource, check_obs
from heldout.sources.x_blocks import x_blocks

CELL_ID_COLUMNS = ("observation_joinid", "obs_id", "cell_id", "barcode")
BLOCK_NNZ = 10_000_000  # non-zeros per X block: what bounds memory, whatever the cells' depth


class _QuerySource(CellSource):
    """Shared: an axis query on one measurement of an experiment."""

    def __init__(self, exp: soma.Experiment, *, measurement: str, layer: str | None, obs_filter: str | None,
                 coords: tuple[int, int] | None, what: str) -> None:
        if measurement not in exp.ms:
            raise unknown_choice(f"measurement of {what}", measurement, list(exp.ms.keys()))
        layers = list(exp.ms[measurement].X.keys())
        self.layer = layer or next((name for name in ("raw", "counts", "data") if name in layers), layers[0])
        if self.layer not in layers:
            raise unknown_choice(f"X layer of {what}", self.layer, layers)
        obs_query = soma.AxisQuery(value_filter=obs_filter,
                                   coords=(slice(coords[0], coords[1] - 1),) if coords else ())
        try:
            self.query = exp.axis_query(measurement, obs_query=obs_query)
            self.n_obs = self.query.n_obs
        except Exception as exc:  # tiledbsoma reports a bad filter with several exception types
            msg = f"The obs filter {obs_filter!r} does not run against {what}: {exc}"
            raise CardError(msg, hint="Check column names and quoting (`heldout lint --dry-run` lists columns).") \
                from None
        self._obs: pd.DataFrame | None = None
        self._var: pd.DataFrame | None = None
        self.exp, self.measurement = exp, measurement

    def close(self) -> None:
        self.query.close()

    def _raw_obs(self) -> pd.DataFrame:
        names = [f.name for f in self.exp.obs.schema]
        return self.query.obs(column_names=names).concat().to_pandas().sort_values("soma_joinid", kind="stable")

    def var(self) -> pd.DataFrame:
        if self._var is None:
            var = self.query.var().concat().to_pandas().sort_values("soma_joinid", kind="stable")
            if "feature_id" not in var.columns:
                var["feature_id"] = var.get("var_id", var.index).astype(str)
            self._var = var.reset_index(drop=True)
        return self._var

    def blocks(self, size: int) -> Iterator[sp.csr_matrix]:
        """X in blocks of at most ``size`` cells and about BLOCK_NNZ non-zeros (from obs ``nnz`` when known)."""
        obs = self.obs()
        joinids = obs["soma_joinid"].to_numpy()
        if "nnz" in obs.columns and len(obs):
            size = int(min(size, max(1_000, BLOCK_NNZ // max(float(obs["nnz"].mean()), 1.0))))
        x = self.exp.ms[self.measurement].X[self.layer]
        yield from x_blocks(x, joinids, self.var()["soma_joinid"].to_numpy(), size)


class CensusSource(_QuerySource):
    """Cells of a Census version (real or mini-Census) selected by an obs filter (and a joinid range)."""

    kind = "census"

    def __init__(self, resolved: ResolvedCensus, organism: str, obs_filter: str, *,
                 coords: tuple[int, int] | None = None) -> None:
        self.resolved, self.organism, self.obs_filter = resolved, organism, obs_filter
        self.census = open_resolved(resolved)
        try:
            super().__init__(experiment(self.census, organism), measurement="RNA", layer="raw",
                             obs_filter=obs_filter, coords=coords, what=self.description)
        except BaseException:
            self.census.close()
            raise

    @property
    def description(self) -> str:
        return f"Census {self.resolved.source} {self.resolved.version} ({self.organism})"

    def close(self) -> None:
        super().close()
        self.census.close()

    def obs(self) -> pd.DataFrame:
        if self._obs is None:
            names = ["soma_joinid", "dataset_id", "donor_id", "observation_joinid"]
            names += ["nnz"] if "nnz" in {f.name for f in self.exp.obs.schema} else []
            obs = self.query.obs(column_names=names).concat().to_pandas().sort_values("soma_joinid", kind="stable")
            obs["cell_id"] = obs["observation_joinid"]
            self._obs = check_obs(obs, self.description)
        return self._obs

    def _dataset_table(self) -> pd.DataFrame:
        table = self.census["census_info"]["datasets"].read().concat().to_pandas()
        return table[table["dataset_id"].isin(set(self.obs()["dataset_id"]))]

    def datasets(self) -> pd.DataFrame:
        table = self._dataset_table().copy()
        for column in DATASET_COLUMNS:
            table[column] = table[column].astype(str) if column in table else ""
        return table[list(DATASET_COLUMNS)].reset_index(drop=True)

    def measured_genes(self) -> dict[str, np.ndarray]:
        return census_measured_genes(self.census, self.organism, set(self.obs()["dataset_id"]))


def census_measured_genes(census: soma.Collection, organism: str, dataset_ids: set[str]) -> dict[str, np.ndarray]:
    """Ensembl ids each dataset measured, from the Census feature_dataset_presence_matrix."""
    table = census["census_info"]["datasets"].read(column_names=["soma_joinid", "dataset_id"]).concat().to_pandas()
    table = table[table["dataset_id"].isin(dataset_ids)]
    if table.empty:
        return {}
    rna = experiment(census, organism).ms["RNA"]
    all_var = rna.var.read(column_names=["soma_joinid", "feature_id"]).concat().to_pandas()
    ids = pd.Series(all_var["feature_id"].astype(str).to_numpy(), index=all_var["soma_joinid"].to_numpy())
    presence = rna["feature_dataset_presence_matrix"].read(
        (table["soma_joinid"].to_numpy(dtype=np.int64),)).tables().concat().to_pandas()
    by_row = dict(zip(table["soma_joinid"], table["dataset_id"].astype(str), strict=True))
    return {by_row[int(row)]: ids.loc[genes.to_numpy()].to_numpy(dtype=str)
            for row, genes in presence.groupby("soma_dim_0")["soma_dim_1"]}


class SomaSource(_QuerySource):
    """Any SOMA experiment (tiledbsoma): a lab's atlas, a non-Census store, a SOMA export."""

    kind = "soma"

    def __init__(self, uri: str, *, measurement: str = "RNA", layer: str | None = None,
                 obs_filter: str | None = None, dataset_id: str | None = None) -> None:
        self.uri = uri
        self.default_dataset = dataset_id or f"soma:{Path(str(uri).rstrip('/')).name}"
        try:
            self.experiment = soma.Experiment.open(str(uri), context=streaming_context())
        except Exception as exc:  # DoesNotExistError, SOMAError, TileDBError ...
            msg = f"Cannot open a SOMA experiment at {uri}: {type(exc).__name__}: {exc}"
            raise SourceError(msg, hint="Give the URI of a tiledbsoma Experiment (a folder with obs/ and ms/).") \
                from None
        try:
            super().__init__(self.experiment, measurement=measurement, layer=layer, obs_filter=obs_filter,
                             coords=None, what=self.description)
        except BaseException:
            self.experiment.close()
            raise

    @property
    def description(self) -> str:
        return f"SOMA experiment {self.uri}"

    def close(self) -> None:
        super().close()
        self.experiment.close()

    def obs(self) -> pd.DataFrame:
        if self._obs is None:
            obs = self._raw_obs()
            if "dataset_id" not in obs.columns:
                obs["dataset_id"] = self.default_dataset
            if "donor_id" not in obs.columns:
                obs["donor_id"] = "unknown"
            id_column = next((c for c in CELL_ID_COLUMNS if c in obs.columns), "soma_joinid")
            obs["cell_id"] = obs[id_column].astype(str)
            self._obs = check_obs(obs, self.description)
        return self._obs
