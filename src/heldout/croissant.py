"""Croissant 1.1 metadata for every released dataset: what dataset tracks and loaders read.

``heldout release`` writes ``registry/releases/croissant/VERSION/NAME.json`` for each dataset, validated
by mlcroissant before the release is committed:

* name, description, licence, citation, version (the release), keywords, and ``heldout:release`` /
  ``heldout:registry`` so a loader can come back to heldout;
* ``distribution``: the curated h5ad, the split assignment and the per-cell table (``cells.parquet``),
  each with its sha256, its path in the registry and its DVC remote (``sameAs``);
* a ``cells`` record set read from ``cells.parquet``: the cell id (key), its split (``cr:Split``), the
  card's labels and the Census metadata, each CELLxGENE ontology column marked with its ontology's root
  term (``equivalentProperty``);
* provenance (``isBasedOn`` / ``heldout:provenance``): the Census source and version, the obs filter,
  the source file's sha256, and the dataset's public identifiers.

Content URLs are relative to the Croissant file inside a registry checkout, so ``mlcroissant.Dataset``
reads the records of a registry whose release has been pulled (``dvc pull``), and ``heldout pull``
accepts the file (or its URL) in place of ``NAME@VERSION``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from heldout._files import write_text_atomic
from heldout.errors import ReleaseError, UsageError

FOLDER = Path("croissant")  # under registry/releases
CONFORMS_TO = "http://mlcommons.org/croissant/1.1"
ONTOLOGY_ROOTS = {  # CELLxGENE ontology columns -> the root term of the ontology they draw from
    "cell_type_ontology_term_id": "http://purl.obolibrary.org/obo/CL_0000000",
    "tissue_ontology_term_id": "http://purl.obolibrary.org/obo/UBERON_0001062",
    "disease_ontology_term_id": "http://purl.obolibrary.org/obo/MONDO_0000001",
    "assay_ontology_term_id": "http://www.ebi.ac.uk/efo/EFO_0002694",
    "sex_ontology_term_id": "http://purl.obolibrary.org/obo/PATO_0000047",
    "development_stage_ontology_term_id": "http://purl.obolibrary.org/obo/HsapDv_0000000",
    "self_reported_ethnicity_ontology_term_id": "http://purl.obolibrary.org/obo/HANCESTRO_0004",
}
PERTURBATION_FIELDS = {  # scPerturb / pertpy conventions (heldout.cards.perturbation)
    "perturbation": "The cell's perturbation condition: target genes joined by '+', or 'control'.",
    "perturbation_type": "CRISPRa, CRISPRi, CRISPRko or drug (scPerturb's perturbation_type).",
    "cell_line": "The cell line, as the source names it.",
    "nperts": "How many genes the condition perturbs (0 for controls).",
    "target_gene_ids": "The Ensembl ids of the target genes, joined by '+'.",
}
DISTRIBUTED = {"h5ad": "application/x-hdf5", "split_assignment": "application/x-parquet",
               "split_cells": "application/x-parquet"}


def croissant_path(releases: Path, version: str, name: str) -> Path:
    return releases / FOLDER / version / f"{name}.json"


def build(*, root: Path, json_path: Path, name: str, version: str, card: object, release: object,
          dvc_remote: dict[str, str], registry_url: str) -> dict:
    """The Croissant JSON-LD of one released dataset (validated by mlcroissant; raises on any error)."""
    import mlcroissant as mlc
    import pyarrow.parquet as pq

    artifacts = release.artifacts  # type: ignore[attr-defined]
    if "split_cells" not in artifacts:
        msg = f"Dataset {name!r} has no per-cell table (splits/{name}/cells.parquet) to describe."
        raise ReleaseError(msg, hint=f"Re-run the split stage (`dvc repro split@{name}`); splits written since "
                                     "heldout's Croissant support include it.")
    from mlcroissant._src.core.context import CroissantVersion

    ctx = mlc.Context()
    ctx.conforms_to = CroissantVersion.V_1_1
    distribution = []
    for key, fmt in DISTRIBUTED.items():
        if key not in artifacts:
            continue
        a = artifacts[key]
        distribution.append(mlc.FileObject(
            ctx=ctx, id=key, name=Path(a.path).name, description=f"{key.replace('_', ' ')} ({a.path} in the registry)",
            content_url=os.path.relpath(root / a.path, json_path.parent), content_size=f"{a.size} B",
            encoding_formats=[fmt], sha256=a.sha256,
            same_as=[f"{dvc_remote.get('url', '')}#{a.path}"] if dvc_remote.get("url") else None))
    columns = pq.read_schema(root / artifacts["split_cells"].path).names
    fields = []
    for column in columns:
        kwargs = {}
        if column == "split":
            kwargs["data_types"] = [mlc.DataType.TEXT, mlc.DataType.SPLIT]
        else:
            kwargs["data_types"] = [mlc.DataType.TEXT]
        if column in ONTOLOGY_ROOTS:
            kwargs["equivalentProperty"] = [ONTOLOGY_ROOTS[column]]
        fields.append(mlc.Field(ctx=ctx, id=f"cells/{column}", name=column, description=_describe(column, card),
                                source=mlc.Source(ctx=ctx, file_object="split_cells",
                                                  extract=mlc.Extract(ctx=ctx, column=column)), **kwargs))
    record_set = mlc.RecordSet(ctx=ctx, id="cells", name="cells", key="cells/observation_joinid", fields=fields,
                               description="One record per cell: its heldout split, labels and Census metadata.")
    lock_source = getattr(card, "source", None)
    census = getattr(card, "census", None)
    metadata = mlc.Metadata(
        ctx=ctx, name=f"heldout-{name}", description=" ".join(str(card.description).split()),  # type: ignore[attr-defined]
        license=[card.license], cite_as=card.citation, version=version,  # type: ignore[attr-defined]
        url=f"{registry_url}#{name}@{version}", keywords=["single-cell", "heldout", "evaluation", name],
        distribution=distribution, record_sets=[record_set])
    issues = metadata.issues
    if issues.errors:
        msg = f"Croissant metadata of {name}@{version} does not validate: {issues.report()}"
        raise ReleaseError(msg)
    data = metadata.to_json()
    data["conformsTo"] = CONFORMS_TO
    data["heldout:release"] = version
    data["heldout:registry"] = registry_url
    data["heldout:provenance"] = {
        "census_source": release.census_source, "census_version": release.census_version,  # type: ignore[attr-defined]
        "organism": release.organism, "dataset_ids": release.dataset_ids,  # type: ignore[attr-defined]
        "obs_value_filter": card.obs_filter,  # type: ignore[attr-defined]
        "source_uri": getattr(lock_source, "uri", None), "source_sha256": getattr(lock_source, "sha256", None),
        "census": census.to_dict() if census is not None else None,
        "identifiers": [i.to_dict() for i in getattr(card, "identifiers", [])],
        "sources": [s.to_dict() for s in release.sources]}  # type: ignore[attr-defined]
    data["@context"]["heldout"] = "https://github.com/heldout/heldout#"
    return data


def _describe(column: str, card: object) -> str:
    if column == "observation_joinid":
        return "The cell's id (CELLxGENE Census observation_joinid): the key of every heldout artifact."
    if column == "split":
        return "The cell's split (train, validation, test; 'excluded' when the card's donor policy drops it)."
    if column in getattr(card, "labels", []):
        return f"Label column {column!r} of the dataset card."
    if column in ONTOLOGY_ROOTS:
        return f"CELLxGENE schema {column} (an ontology term id)."
    if column in PERTURBATION_FIELDS:
        return PERTURBATION_FIELDS[column]
    return f"CELLxGENE schema obs column {column}."


def write_release(project: object, version: str, manifest: object, registry_url: str) -> list[Path]:
    """Write and validate the Croissant file of every dataset of release ``version``; return the paths."""
    from heldout.cards.dataset import load_dataset_card

    root = project.root  # type: ignore[attr-defined]
    out = []
    for name, release in manifest.datasets.items():  # type: ignore[attr-defined]
        path = croissant_path(project.releases, version, name)  # type: ignore[attr-defined]
        data = build(root=root, json_path=path, name=name, version=version,
                     card=load_dataset_card(name, project.registry), release=release,  # type: ignore[attr-defined]
                     dvc_remote=manifest.dvc_remote, registry_url=registry_url)  # type: ignore[attr-defined]
        write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")
        out.append(path)
    return out


def registry_url(project: object) -> str:
    """Where users reach the registry: its git remote ``origin`` if set, else its folder."""
    import subprocess

    root = project.root  # type: ignore[attr-defined]
    proc = subprocess.run(["git", "config", "--get", "remote.origin.url"], cwd=root, capture_output=True, text=True,
                          check=False)
    return proc.stdout.strip() or str(root)


def reference(path_or_url: str) -> tuple[str, str, str]:
    """(dataset name, release version, registry) named by a heldout Croissant file or URL."""
    if "://" in path_or_url:
        import fsspec

        with fsspec.open(path_or_url, "rt") as fh:
            data = json.load(fh)
        where = path_or_url
    else:
        path = Path(path_or_url)
        if not path.is_file():
            msg = f"No Croissant file at {path}."
            raise UsageError(msg, hint="Give NAME@VERSION, or a Croissant file written by `heldout release`.")
        data = json.loads(path.read_text(encoding="utf-8"))
        where = str(path)
    try:
        name = str(data["name"]).removeprefix("heldout-")
        return name, str(data["heldout:release"]), str(data["heldout:registry"])
    except (KeyError, TypeError):
        msg = f"{where} is not a Croissant file written by heldout (it has no heldout:release / heldout:registry)."
        raise UsageError(msg, hint="Give NAME@VERSION, or the Croissant file a heldout release wrote.") from None
