"""Stage a dataset from outside the Census (an h5ad or any SOMA experiment) as a one-dataset Census.

A card with ``source: h5ad`` or ``source: soma`` is curated through exactly the
same path as a Census card: its cells are written once, in the Census layout
(the mini-Census writer: obs terms and labels, GENCODE var, raw and normalised
X, census_info), to ``.heldout/staged/<card>/<key>/soma``, and curation then
queries that collection with the card's filter. The key hashes the source
(its sha256, or its URI for SOMA), the card's source block and heldout's
version, so a changed file or mapping is staged afresh.

The h5ad is a file of the registry (a relative path, kept inside it) or a URL
that ``heldout curate`` fetches from an allow-listed host into heldout's cache
(the PR check never fetches); either is verified against the pinned sha256 and
its HDF5 layout checked (heldout.untrusted) before anything is read. Gene
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
import numpy as np
import pandas as pd

import heldout
from heldout.cards.dataset import DatasetCard, ExternalSource
from heldout.census import ResolvedCensus
from heldout.errors import CardError, ChecksumMismatch, HeldoutError, SourceError
from heldout.project import Project
from heldout.sources.h5ad import ID_COLUMNS, counts_matrix
from heldout.untrusted.hdf5 import check_h5ad
from heldout.untrusted.limits import limits
from heldout.untrusted.paths import confined_file, resolve_inside
from heldout.untrusted.remote import RemoteURI, check_allowed, check_uri, fetch_verified, is_remote

STAGED = Path(".heldout") / "staged"
DESIGN = "design.parquet"  # perturbation cards: the design columns per cell, beside the staged SOMA
NEEDED = ("donor_id", "assay_ontology_term_id", "cell_type_ontology_term_id", "development_stage_ontology_term_id",
          "disease_ontology_term_id", "self_reported_ethnicity_ontology_term_id", "sex_ontology_term_id",
          "tissue_ontology_term_id", "suspension_type", "tissue_type")


def staging_key(card: DatasetCard) -> str:
    spec = card.source
    assert spec is not None  # noqa: S101 - callers check
    design = card.perturbation.to_dict() if card.perturbation else None
    payload = json.dumps({"source": spec.to_dict(), "perturbation": design, "heldout": heldout.__version__},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def stage_source(card: DatasetCard, project: Project, *, fetch_remote: bool = True) -> ResolvedCensus:
    """The card's cells as a one-dataset Census collection (staged once per source and mapping).

    ``fetch_remote=False`` (the PR check): a URL source raises :class:`RemoteNotFetched` after its shape
    is checked, and nothing is fetched."""
    spec = card.source
    if spec is None:
        msg = f"Card {card.name!r} reads the Census; it has nothing to stage."
        raise CardError(msg)
    # the source is located, confined and verified on every call, even when a staged copy exists
    location = fetch_h5ad(spec.uri, spec.sha256 or "", project, fetch_remote=fetch_remote) if spec.kind == "h5ad" \
        else _soma_location(spec.uri, project, fetch_remote=fetch_remote)
    folder = project.root / STAGED / card.name / staging_key(card)
    if not (folder / "soma").exists():
        _stage(card, spec, folder, location)
    version = f"sha256:{spec.sha256[:12]}" if spec.sha256 else f"staged:{folder.name}"
    return ResolvedCensus(source=spec.kind, requested=spec.uri, version=version, uri=str(folder / "soma"))


def unmapped_genes(card: DatasetCard, project: Project) -> pd.DataFrame:
    """The source's gene names that did not map to GENCODE, with the reason (after staging)."""
    path = project.root / STAGED / card.name / staging_key(card) / "unmapped_genes.tsv"
    return pd.read_csv(path, sep="\t") if path.exists() else pd.DataFrame(columns=["name", "reason"])


def _stage(card: DatasetCard, spec: ExternalSource, folder: Path, location: Path | str) -> None:
    from heldout.mirror import build, sources

    adata = _read(spec, location)
    counts_from, counts, counts_var = counts_matrix(adata, spec.uri)
    names = _gene_names(counts_var, spec)
    x, var, unmapped = sources._dataset(counts, names, spec.organism.value, key=card.name,  # noqa: SLF001
                                        by=spec.genes, max_lost=spec.max_lost_count_fraction,
                                        what=f"the {spec.kind} source of card")
    obs = _obs(adata, spec, card)
    key = f"{spec.kind}:{spec.sha256 or spec.uri}"
    design = _design(adata, card, key)
    sources.check_ontology_terms(obs, card.name, what="the source of card", hint=(
        "Give current ontology term ids: fix the file's obs columns, or map them in the card under "
        "`source.obs.columns` / `source.obs.values` (e.g. tissue_ontology_term_id: UBERON:0000178); look terms "
        "up at https://www.ebi.ac.uk/ols4."))
    primary = adata.obs["is_primary_data"].astype(bool).all() if "is_primary_data" in adata.obs else True
    dataset = sources.SourceDataset(
        key=key, title=spec.dataset_title or card.description.strip(),
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
        if design is not None:
            design.to_parquet(partial / DESIGN, index=False)
        os.replace(partial, folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _read(spec: ExternalSource, location: Path | str) -> ad.AnnData:
    """The source's cells: ``location`` is the verified h5ad (see fetch_h5ad) or the SOMA URI (_soma_location)."""
    if spec.kind == "h5ad":
        path = location
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if spec.values == "log1p_cp10k":  # counts recovered exactly, cell by cell, or refused
                    from heldout.sources.counts import recover_counts

                    adata = ad.read_h5ad(path)
                    adata.X = recover_counts(adata.X, spec.uri)
                    return adata
                backed = ad.read_h5ad(path, backed="r")
                try:  # every row of X (or raw.X) is checked in blocks before the file is loaded
                    counts_matrix(backed, spec.uri)
                finally:
                    backed.file.close()
                return ad.read_h5ad(path)
        except HeldoutError:
            raise
        except Exception as exc:  # h5py/anndata raise many types for a damaged file
            msg = f"{spec.uri} is not a readable h5ad: {type(exc).__name__}: {exc}"
            raise SourceError(msg) from None
    import tiledbsoma as soma

    try:
        with soma.Experiment.open(str(location)) as exp, exp.axis_query(spec.measurement) as query:
            return query.to_anndata(X_name=spec.layer)
    except Exception as exc:  # tiledbsoma raises many types for a missing or foreign URI
        msg = f"Cannot read SOMA experiment {spec.uri} (measurement {spec.measurement!r}, X layer {spec.layer!r}): " \
              f"{type(exc).__name__}: {exc}"
        raise SourceError(msg, hint="Check the URI, and `measurement:`/`layer:` in the card's source block.") from None


class RemoteNotFetched(HeldoutError):
    """A card's source is a URL and this run does not fetch (the PR check): checked for shape only."""


WHAT = "the card's source uri"


def _remote(uri: str, project: Project, *, fetch_remote: bool) -> RemoteURI:
    remote = check_uri(uri, WHAT)
    if not fetch_remote:
        msg = f"{uri} is a URL: the PR check does not fetch it (its shape is fine)."
        raise RemoteNotFetched(msg, hint="A maintainer fetches it with `heldout curate NAME`, from a host on "
                                         "params.yaml's sources.allowed_hosts.")
    from heldout.pipeline import load_params

    check_allowed(remote, tuple(load_params(project).sources.allowed_hosts), WHAT)
    return remote


def _soma_location(uri: str, project: Project, *, fetch_remote: bool = True) -> str:
    """A SOMA experiment's URI: a folder inside the registry, or an allow-listed remote store."""
    if is_remote(uri):
        return _remote(uri, project, fetch_remote=fetch_remote).uri
    folder = resolve_inside(project.root, uri, WHAT)
    if not folder.is_dir():
        msg = f"{WHAT} {uri!r} is not a folder inside the registry (looked at {folder})."
        raise SourceError(msg, hint="Name the SOMA experiment's folder relative to the registry root.")
    return str(folder)


def fetch_h5ad(uri: str, sha256: str, project: Project, *, fetch_remote: bool = True) -> Path:
    """A local, verified, self-contained copy of the h5ad.

    A path must name a regular file of the registry (inside it after symlinks, tracked by git or DVC);
    a URL is fetched only when ``fetch_remote`` and its host is allow-listed, into a cache keyed by the
    verified sha256. Either way the file's HDF5 layout is checked (heldout.untrusted.hdf5) before use.
    """
    from heldout._files import sha256_file

    bounds = limits()
    if is_remote(uri):
        path = fetch_verified(_remote(uri, project, fetch_remote=fetch_remote), sha256, _cache_dir(), bounds=bounds)
    else:
        path = confined_file(project.root, uri, WHAT, max_bytes=bounds.file_bytes)
    actual = sha256_file(path)
    if actual != sha256:
        msg = f"{uri}: sha256 is {actual}, but the card pins {sha256}."
        raise ChecksumMismatch(msg, hint="The file changed since the card was written: check it, then update "
                                         "`sha256:` (a new card version, if it was released).")
    check_h5ad(path, uri, bounds=bounds)
    return path


def _cache_dir() -> Path:
    from heldout.pull import cache_root

    root = cache_root().parent / "sources"  # beside the release objects, under $HELDOUT_CACHE
    root.mkdir(parents=True, exist_ok=True)
    return root


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
        if column in spec.obs.maps:
            obs[column] = _mapped(adata, spec.obs.maps[column], column, card)
        elif source_column in adata.obs.columns:
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


def _mapped(adata: ad.AnnData, mapping: object, column: str, card: DatasetCard) -> np.ndarray:
    """A Census column from a file column, value by value (``source.obs.maps``); every value must be mapped."""
    if mapping.column not in adata.obs.columns:  # type: ignore[attr-defined]
        msg = f"Card {card.name!r}: source.obs.maps.{column} reads column {mapping.column!r}, which the file's " \
              f"obs lacks (it has {list(adata.obs.columns)})."  # type: ignore[attr-defined]
        raise CardError(msg)
    values = adata.obs[mapping.column].astype(str)  # type: ignore[attr-defined]
    missing = sorted(set(values) - set(mapping.values))  # type: ignore[attr-defined]
    if missing:
        msg = f"Card {card.name!r}: source.obs.maps.{column} gives no value for {missing}."
        raise CardError(msg, hint=f"Add them under source.obs.maps.{column}.values.")
    return values.map(mapping.values).to_numpy(dtype=object)  # type: ignore[attr-defined]


def _design(adata: ad.AnnData, card: DatasetCard, key: str) -> pd.DataFrame | None:
    """A perturbation card's design columns per cell (validated), keyed by the cells' observation_joinid."""
    if card.perturbation is None:
        return None
    from heldout.mirror.assemble import dataset_id_for, observation_joinids
    from heldout.perturbation.design import design_table

    table = design_table(adata.obs, card.perturbation, f"card {card.name!r}")
    table.insert(0, "observation_joinid", observation_joinids(dataset_id_for(key),
                                                              pd.Series(adata.obs_names.astype(str))))
    return table


def staged_design(resolved: ResolvedCensus) -> pd.DataFrame | None:
    """The design table staged beside a staged source's SOMA (None for other sources)."""
    path = Path(resolved.uri).parent / DESIGN
    return pd.read_parquet(path) if path.exists() else None


def source_sha256(card: DatasetCard) -> str | None:
    return card.source.sha256 if card.source else None

