"""Stage a dataset from outside the Census (an h5ad or any SOMA experiment) as a one-dataset Census.

A card with ``source: h5ad`` or ``source: soma`` is curated through exactly the
same path as a Census card: its cells are written once, in the Census layout
(the mini-Census writer: obs terms and labels, GENCODE var, raw and normalised
X, census_info), to ``.heldout/staged/<card>/<key>/soma``, and curation then
queries that collection with the card's filter. The key hashes the source
(its sha256, or its URI for SOMA), the card's source block and heldout's
version, so a changed file or mapping is staged afresh.

The h5ad is fetched (local path, or http(s)/s3 through fsspec) into heldout's
cache and verified against the pinned sha256 before anything is read. Gene
names are mapped to the organism's GENCODE ids (``heldout.genes``): every
unmapped name is listed in ``unmapped_genes.tsv`` beside the staged copy, and a
source that keeps no gene, or whose unmapped genes carry more than
``max_lost_count_fraction`` of its counts, is refused with the list.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import anndata as ad
import pandas as pd

import heldout
from heldout.cards.dataset import DatasetCard, ExternalSource
from heldout.census import ResolvedCensus
from heldout.errors import CardError, ChecksumMismatch, SourceError
from heldout.project import Project
from heldout.sources.h5ad import ID_COLUMNS, counts_matrix

STAGED = Path(".heldout") / "staged"
NEEDED = ("donor_id", "assay_ontology_term_id", "cell_type_ontology_term_id", "development_stage_ontology_term_id",
          "disease_ontology_term_id", "self_reported_ethnicity_ontology_term_id", "sex_ontology_term_id",
          "tissue_ontology_term_id", "suspension_type", "tissue_type")
CHUNK = 1 << 20


def staging_key(card: DatasetCard) -> str:
    spec = card.source
    assert spec is not None  # noqa: S101 - callers check
    payload = json.dumps({"source": spec.to_dict(), "heldout": heldout.__version__}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def stage_source(card: DatasetCard, project: Project) -> ResolvedCensus:
    """The card's cells as a one-dataset Census collection (staged once per source and mapping)."""
    spec = card.source
    if spec is None:
        msg = f"Card {card.name!r} reads the Census; it has nothing to stage."
        raise CardError(msg)
    folder = project.root / STAGED / card.name / staging_key(card)
    if not (folder / "soma").exists():
        _stage(card, spec, project, folder)
    version = f"sha256:{spec.sha256[:12]}" if spec.sha256 else f"staged:{folder.name}"
    return ResolvedCensus(source=spec.kind, requested=spec.uri, version=version, uri=str(folder / "soma"))


def unmapped_genes(card: DatasetCard, project: Project) -> pd.DataFrame:
    """The source's gene names that did not map to GENCODE, with the reason (after staging)."""
    path = project.root / STAGED / card.name / staging_key(card) / "unmapped_genes.tsv"
    return pd.read_csv(path, sep="\t") if path.exists() else pd.DataFrame(columns=["name", "reason"])


def _stage(card: DatasetCard, spec: ExternalSource, project: Project, folder: Path) -> None:
    from heldout.mirror import build, sources

    adata = _read(spec, project)
    counts_from, counts, counts_var = counts_matrix(adata, spec.uri)
    names = _gene_names(counts_var, spec)
    x, var, unmapped = sources._dataset(counts, names, spec.organism.value, key=card.name,  # noqa: SLF001
                                        by=spec.genes, max_lost=spec.max_lost_count_fraction,
                                        what=f"the {spec.kind} source of card")
    obs = _obs(adata, spec, card)
    sources.check_ontology_terms(obs, card.name)
    primary = adata.obs["is_primary_data"].astype(bool).all() if "is_primary_data" in adata.obs else True
    dataset = sources.SourceDataset(
        key=f"{spec.kind}:{spec.sha256 or spec.uri}", title=spec.dataset_title or card.description.strip(),
        organism=spec.organism.value, counts=x, var=var, obs=obs, collection_name="", primary=bool(primary),
        collection_doi=spec.collection_doi, citation=card.citation, license=card.license, origin=spec.uri,
        unmapped_genes=unmapped, notes=f"Staged by heldout from {spec.kind} {spec.uri} (counts from {counts_from}).")
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build._write_version(partial, "staged", [dataset], False, lambda _m: None)  # noqa: SLF001
        pd.DataFrame({"name": list(unmapped), "reason": list(unmapped.values())}).to_csv(
            partial / "unmapped_genes.tsv", sep="\t", index=False)
        os.replace(partial, folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _read(spec: ExternalSource, project: Project) -> ad.AnnData:
    if spec.kind == "h5ad":
        path = fetch_h5ad(spec.uri, spec.sha256 or "", project)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return ad.read_h5ad(path)
        except Exception as exc:  # h5py/anndata raise many types for a damaged file
            msg = f"{spec.uri} is not a readable h5ad: {type(exc).__name__}: {exc}"
            raise SourceError(msg) from None
    import tiledbsoma as soma

    try:
        with soma.Experiment.open(spec.uri) as exp, exp.axis_query(spec.measurement) as query:
            return query.to_anndata(X_name=spec.layer)
    except Exception as exc:  # tiledbsoma raises many types for a missing or foreign URI
        msg = f"Cannot read SOMA experiment {spec.uri} (measurement {spec.measurement!r}, X layer {spec.layer!r}): " \
              f"{type(exc).__name__}: {exc}"
        raise SourceError(msg, hint="Check the URI, and `measurement:`/`layer:` in the card's source block.") from None


def fetch_h5ad(uri: str, sha256: str, project: Project) -> Path:
    """A local, verified copy of the h5ad: a path as is, a URL downloaded once into heldout's cache."""
    from heldout._files import sha256_file

    local = Path(uri) if "://" not in uri else None
    if local is not None:
        path = local if local.is_absolute() else project.root / local
        if not path.exists():
            msg = f"The card's h5ad {uri} does not exist (looked at {path})."
            raise SourceError(msg, hint="Paths are relative to the project root; or give an http(s) or s3 URL.")
    else:
        path = _cache_dir() / f"{sha256}.h5ad"
        if not path.exists():
            _download(uri, path)
    actual = sha256_file(path)
    if actual != sha256:
        msg = f"{uri}: sha256 is {actual}, but the card pins {sha256}."
        raise ChecksumMismatch(msg, hint="The file changed since the card was written: check it, then update "
                                         "`sha256:` (a new card version, if it was released).")
    return path


def _cache_dir() -> Path:
    from heldout.pull import cache_root

    root = cache_root().parent / "sources"  # beside the release objects, under $HELDOUT_CACHE
    root.mkdir(parents=True, exist_ok=True)
    return root


def _download(uri: str, dest: Path) -> None:
    import fsspec

    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        with fsspec.open(uri, "rb") as src, open(tmp, "wb") as out:
            while chunk := src.read(CHUNK):
                out.write(chunk)
        os.replace(tmp, dest)
    except (OSError, ValueError, ImportError) as exc:
        msg = f"Cannot download {uri}: {type(exc).__name__}: {exc}"
        raise SourceError(msg, hint="Check the URL and the network (s3:// needs s3fs and credentials).") from None
    finally:
        tmp.unlink(missing_ok=True)


def _gene_names(var: pd.DataFrame, spec: ExternalSource) -> pd.Series:
    if spec.gene_column:
        if spec.gene_column not in var.columns:
            msg = f"{spec.uri}: var has no column {spec.gene_column!r} (gene_column); it has {list(var.columns)}."
            raise CardError(msg)
        return var[spec.gene_column].astype(str)
    if spec.genes != "symbol":
        column = next((c for c in ID_COLUMNS if c in var.columns), None)
        if column:
            return var[column].astype(str)
    return pd.Series(var.index.astype(str), index=var.index)


def _obs(adata: ad.AnnData, spec: ExternalSource, card: DatasetCard) -> pd.DataFrame:
    """The Census term columns, from the card's mapping, the file's own columns, or the card's constants."""
    obs = pd.DataFrame({"barcode": adata.obs_names.astype(str).to_numpy()})
    missing = []
    for column in NEEDED:
        source_column = spec.obs.columns.get(column, column)
        if source_column in adata.obs.columns:
            obs[column] = adata.obs[source_column].astype(str).to_numpy()
        elif column in spec.obs.values:
            obs[column] = spec.obs.values[column]
        else:
            missing.append(column)
    if missing:
        msg = (f"Card {card.name!r}: the source has no obs column for {missing} and the card gives no value.")
        raise CardError(msg, hint="Map a column of the file under `source.obs.columns` or give one value for every "
                                  "cell under `source.obs.values` (e.g. `donor_id: unknown`).")
    for column, value in spec.obs.values.items():
        if column not in NEEDED and column != "tissue_general_ontology_term_id":
            msg = f"Card {card.name!r}: source.obs.values names {column!r}, which is not a Census obs term column."
            raise CardError(msg, hint=f"Allowed: {', '.join(NEEDED)}, tissue_general_ontology_term_id.")
        if column == "tissue_general_ontology_term_id":
            obs[column] = value
    return obs


def source_sha256(card: DatasetCard) -> str | None:
    return card.source.sha256 if card.source else None

