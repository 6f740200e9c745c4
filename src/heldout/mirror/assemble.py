"""Turn source datasets into Census-shaped tables: obs, var, X blocks and census_info.

Column names, order and meaning follow the Census schema 2.4.0 builder
(``CENSUS_OBS_CORE_FIELDS + CXG_OBS_TERM_FIELDS + CENSUS_OBS_FIELDS_MAPPED +
CENSUS_OBS_STATS_FIELDS``). Ids are deterministic: the same sources always give
the same dataset ids, observation ids and joinids.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from heldout.mirror.sources import OBS_TERMS, SourceDataset

OBS_COLUMNS = [
    "soma_joinid", "dataset_id", "assay", "assay_ontology_term_id", "cell_type", "cell_type_ontology_term_id",
    "development_stage", "development_stage_ontology_term_id", "disease", "disease_ontology_term_id", "donor_id",
    "is_primary_data", "observation_joinid", "self_reported_ethnicity", "self_reported_ethnicity_ontology_term_id",
    "sex", "sex_ontology_term_id", "suspension_type", "tissue", "tissue_ontology_term_id", "tissue_type",
    "tissue_general", "tissue_general_ontology_term_id", "raw_sum", "nnz", "raw_mean_nnz", "raw_variance_nnz",
    "n_measured_vars",
]
OBS_STRING_COLUMNS = [c for c in OBS_COLUMNS if c not in {
    "soma_joinid", "is_primary_data", "raw_sum", "nnz", "raw_mean_nnz", "raw_variance_nnz", "n_measured_vars"}]
OBS_CATEGORICAL = [c for c in OBS_STRING_COLUMNS if c != "observation_joinid"]  # TileDB enums in the Census
VAR_COLUMNS = ["soma_joinid", "feature_id", "feature_name", "feature_type", "feature_length", "nnz", "n_measured_obs"]
ORGANISMS = {"homo_sapiens": ("Homo sapiens", "NCBITaxon:9606"), "mus_musculus": ("Mus musculus", "NCBITaxon:10090")}
ID_NAMESPACE = uuid.UUID("6d1f6a52-3c1e-4a55-9d0e-6b9a1b1e0c11")  # heldout mini-Census ids
SPECIAL_TERMS = {"unknown": "unknown", "na": "na"}


def dataset_id_for(key: str) -> str:
    """The deterministic Census dataset_id of a source dataset key."""
    return str(uuid.uuid5(ID_NAMESPACE, f"dataset/{key}"))


def collection_id_for(name: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"collection/{name}"))


def observation_joinids(dataset_id: str, barcodes: pd.Series) -> np.ndarray:
    """Ten printable characters per cell, like the Census's, from (dataset_id, barcode)."""
    return np.array([base64.b85encode(hashlib.blake2b(f"{dataset_id}/{b}".encode(), digest_size=8).digest())[:10]
                     .decode() for b in barcodes], dtype=object)


@functools.cache
def ontology() -> object:
    from heldout.ontologies import parser

    return parser()  # the same parser (and ontology set) validation checks labels against


@functools.cache
def term_label(term_id: str) -> str:
    """The ontology label of a term id (``unknown``/``na`` stay as they are)."""
    if term_id in SPECIAL_TERMS:
        return SPECIAL_TERMS[term_id]
    return ontology().get_term_label(term_id)


@dataclass(frozen=True)
class Placed:
    """A source dataset placed in its organism's experiment: joinid offset and var columns."""

    source: SourceDataset
    dataset_id: str
    dataset_joinid: int  # row of census_info/datasets
    first_obs: int
    var_joinids: np.ndarray  # experiment var soma_joinid of each counts column

    @functools.cached_property
    def cells_per_gene(self) -> np.ndarray:
        """Cells with a stored count, per counts column (feeds var ``nnz`` and the presence matrix)."""
        return np.bincount(self.source.counts.indices, minlength=self.source.counts.shape[1])


def synthetic_copy(ds: SourceDataset, copy: int, *, keep: float = 0.8) -> SourceDataset:
    """A SYNTHETIC copy of ``ds`` for scale tests: counts binomially thinned, new ids everywhere."""
    rng = np.random.default_rng([copy, int(hashlib.sha256(ds.key.encode()).hexdigest()[:8], 16)])
    counts = ds.counts.copy()
    counts.data = rng.binomial(counts.data.astype(np.int64), keep).astype(np.float32)
    counts.eliminate_zeros()
    obs = ds.obs.copy()
    obs["barcode"] = obs["barcode"] + f"-synthetic{copy}"
    obs["donor_id"] = obs["donor_id"].where(obs["donor_id"].isin(["unknown", "pooled", "na"]),
                                            obs["donor_id"] + f"-synthetic{copy}")
    return replace(ds, key=f"{ds.key}-synthetic{copy}", title=f"[SYNTHETIC copy {copy}] {ds.title}", counts=counts,
                   obs=obs, origin=f"SYNTHETIC: binomial thinning (p={keep}, seed {copy}) of {ds.origin}",
                   notes="Synthetic copy for scale tests and benchmarks only; not real cells.")


def place(datasets: list[SourceDataset], first_dataset_joinid: int) -> tuple[pd.DataFrame, list[Placed]]:
    """The organism's var table (union of genes, sorted by id) and where each dataset goes."""
    genes = pd.concat([d.var for d in datasets]).drop_duplicates("feature_id").sort_values("feature_id")
    genes = genes.reset_index(drop=True)
    position = pd.Series(np.arange(len(genes)), index=genes["feature_id"])
    placed, first = [], 0
    for i, d in enumerate(datasets):
        placed.append(Placed(d, dataset_id_for(d.key), first_dataset_joinid + i, first,
                             position.loc[d.var["feature_id"]].to_numpy()))
        first += d.counts.shape[0]
    var = pd.DataFrame({"soma_joinid": np.arange(len(genes), dtype=np.int64), "feature_id": genes["feature_id"],
                        "feature_name": genes["feature_name"], "feature_type": genes["feature_type"],
                        "feature_length": genes["feature_length"].astype(np.int64)})
    return var, placed


def obs_table(p: Placed) -> pd.DataFrame:
    """Census obs rows of one placed dataset, with the X statistics columns."""
    ds, x = p.source, p.source.counts
    n = x.shape[0]
    obs = pd.DataFrame({"soma_joinid": np.arange(p.first_obs, p.first_obs + n, dtype=np.int64),
                        "dataset_id": p.dataset_id})
    for term in OBS_TERMS:
        obs[term] = ds.obs[term].to_numpy(dtype=str)
        obs[term.removesuffix("_ontology_term_id")] = obs[term].map({t: term_label(t) for t in obs[term].unique()})
    obs["donor_id"] = ds.obs["donor_id"].to_numpy(dtype=str)
    obs["is_primary_data"] = ds.primary
    obs["observation_joinid"] = observation_joinids(p.dataset_id, ds.obs["barcode"])
    obs["suspension_type"] = ds.obs["suspension_type"].to_numpy(dtype=str)
    obs["tissue_type"] = ds.obs["tissue_type"].to_numpy(dtype=str)
    # A source names its high-level tissue when it differs (islet -> pancreas); blood and brain are their own.
    general = ds.obs.get("tissue_general_ontology_term_id", ds.obs["tissue_ontology_term_id"]).to_numpy(dtype=str)
    obs["tissue_general_ontology_term_id"] = general
    obs["tissue_general"] = pd.Series(general).map({t: term_label(t) for t in set(general)}).to_numpy()
    nnz = np.diff(x.indptr).astype(np.int64)
    raw_sum = np.asarray(x.sum(axis=1), dtype=np.float64).ravel()
    sq = np.asarray(x.multiply(x).sum(axis=1), dtype=np.float64).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(nnz > 0, raw_sum / np.maximum(nnz, 1), 0.0)
        variance = np.where(nnz > 0, sq / np.maximum(nnz, 1) - mean**2, 0.0)
    obs["raw_sum"], obs["nnz"], obs["raw_mean_nnz"] = raw_sum, nnz, mean
    obs["raw_variance_nnz"] = np.maximum(variance, 0.0)
    obs["n_measured_vars"] = np.int64(x.shape[1])
    return obs[OBS_COLUMNS]


def x_coo(p: Placed, rows_per_block: int = 50_000) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(obs joinid, var joinid, raw, normalized) in row blocks of one placed dataset.

    normalized is the Census's: X / rowsum, or for full-length assays
    (X / feature_length) / rowsum(X / feature_length).
    """
    x = p.source.counts
    lengths = np.maximum(p.source.var["feature_length"].to_numpy(dtype=np.float64), 1.0)
    for start in range(0, x.shape[0], rows_per_block):
        block = x[start:start + rows_per_block].tocoo()
        vals = block.data.astype(np.float64)
        scaled = vals / lengths[block.col] if p.source.full_length else vals
        sums = np.bincount(block.row, weights=scaled, minlength=block.shape[0])
        norm = (scaled / sums[block.row]).astype(np.float32)
        yield (block.row.astype(np.int64) + p.first_obs + start, p.var_joinids[block.col].astype(np.int64),
               block.data.astype(np.float32), norm)


def presence(placed: list[Placed]) -> tuple[np.ndarray, np.ndarray]:
    """(dataset joinid, var joinid) pairs where the gene has a count > 0 in the dataset."""
    rows, cols = [], []
    for p in placed:
        present = np.flatnonzero(p.cells_per_gene > 0)
        cols.append(p.var_joinids[present])
        rows.append(np.full(len(present), p.dataset_joinid, dtype=np.int64))
    return np.concatenate(rows), np.concatenate(cols).astype(np.int64)


def var_stats(var: pd.DataFrame, placed: list[Placed]) -> pd.DataFrame:
    """var with ``nnz`` (cells with a count) and ``n_measured_obs`` (cells of datasets measuring it)."""
    nnz = np.zeros(len(var), dtype=np.int64)
    measured = np.zeros(len(var), dtype=np.int64)
    for p in placed:
        np.add.at(nnz, p.var_joinids, p.cells_per_gene)
        measured[p.var_joinids] += p.source.counts.shape[0]
    return var.assign(nnz=nnz, n_measured_obs=measured)[VAR_COLUMNS]


def datasets_row(p: Placed) -> dict[str, object]:
    """The census_info/datasets row of one dataset (plus heldout's provenance columns)."""
    ds = p.source
    return {
        "soma_joinid": p.dataset_joinid, "citation": ds.citation, "collection_id": collection_id_for(ds.collection_name),
        "collection_name": ds.collection_name, "collection_doi": ds.collection_doi,
        "collection_doi_label": ds.citation.split(" doi:")[0] if ds.collection_doi else "",
        "dataset_id": p.dataset_id, "dataset_version_id": str(uuid.uuid5(ID_NAMESPACE, f"version/{ds.key}")),
        "dataset_title": ds.title, "dataset_h5ad_path": f"{p.dataset_id}.h5ad",
        "dataset_total_cell_count": int(ds.counts.shape[0]),
        "heldout_origin": ds.origin, "heldout_license": ds.license, "heldout_notes": ds.notes,
    }


SUMMARY_CATEGORIES = ["cell_type", "assay", "tissue", "tissue_general", "disease", "self_reported_ethnicity", "sex",
                      "suspension_type"]


def summary_cell_counts(organism: str, obs: pd.DataFrame) -> pd.DataFrame:
    """census_info/summary_cell_counts rows for one organism (total and primary-only counts)."""
    label = ORGANISMS[organism][0]
    primary = obs["is_primary_data"].to_numpy()
    rows = [{"organism": label, "category": "all", "label": "na", "ontology_term_id": "na",
             "total_cell_count": len(obs), "unique_cell_count": int(primary.sum())}]
    for category in SUMMARY_CATEGORIES:
        term = f"{category}_ontology_term_id" if category != "suspension_type" else None
        frame = pd.DataFrame({"label": obs[category], "term": obs[term] if term else "na", "primary": primary})
        for (lab, tid), group in frame.groupby(["label", "term"], observed=True, sort=True):
            rows.append({"organism": label, "category": category, "label": lab, "ontology_term_id": tid,
                         "total_cell_count": len(group), "unique_cell_count": int(group["primary"].sum())})
    return pd.DataFrame(rows)
