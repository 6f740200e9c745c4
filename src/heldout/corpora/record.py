"""Record a corpus: stream its cells once, write signatures, donors and genes, and a manifest.

A corpus is cut into partitions: ``soma_joinid`` ranges of a Census experiment
(``partition_cells`` each), or one partition per input file (h5ad or SOMA).
Each partition is a Dask task that opens its own source, streams X in blocks
and writes its files into ``.staging-<key>/parts/<name>/``, renamed into place
with a ``DONE`` marker only when complete. A killed run started again finds
the same staging folder and redoes only the partitions without a marker.

When every partition is done, the files are moved into ``data/`` (cells per
dataset, donors, genes), hashed, and ``manifest.yaml`` is written last: a
manifest exists only for a complete recording.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import heldout
from heldout._files import crashpoint, sha256_file, write_yaml_atomic
from heldout.census import ResolvedCensus, experiment, open_resolved
from heldout.corpora.manifest import (DATA, MANIFEST, CorpusManifest, CorpusSource, DataFile, DatasetEntry,
                                      InputFile, corpus_dir, safe_name)
from heldout.errors import UsageError
from heldout.genes import map_genes
from heldout.leakage.fingerprint import (MIN_GENES, N_BANDS, SKETCH_BUCKETS, Signatures, gene_keys, signatures,
                                         sorted_unique, write_options)
from heldout.leakage import conditions
from heldout.leakage.universe import GeneUniverse
from heldout.sources import CellSource, CensusSource, H5adSource, SomaSource

DEFAULT_PARTITION_CELLS = 1_000_000
BLOCK_CELLS = 25_000
ROW_GROUP = 65_536  # rows per parquet row group: a sketch column is read only for groups with candidates
SIGNATURE_PARAMS = {"sketch_buckets": SKETCH_BUCKETS, "bands": N_BANDS, "band_key_bits": 32, "min_genes": MIN_GENES}


@dataclass(frozen=True, kw_only=True)
class PartSpec:
    """One partition of a corpus: what to open and where its files go (picklable, for Dask workers)."""

    name: str
    out: str
    kind: str  # census | h5ad | soma
    organism: str | None = None
    resolved: ResolvedCensus | None = None
    obs_filter: str | None = None
    lo: int = 0
    hi: int = 0
    path: str | None = None
    dataset_id: str | None = None

    def open(self) -> CellSource:
        if self.kind == "census":
            return CensusSource(self.resolved, self.organism, self.obs_filter, coords=(self.lo, self.hi))
        if self.kind == "h5ad":
            return H5adSource(self.path, dataset_id=self.dataset_id)
        return SomaSource(self.path, obs_filter=self.obs_filter, dataset_id=self.dataset_id)


def _gene_columns(source: CellSource, organism: str | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(Ensembl ids kept, X columns to keep or None for all, their gene keys)."""
    ids = source.var()["feature_id"].astype(str).to_numpy()
    if ids.size and np.mean(np.char.startswith(ids.astype(str), "ENS")) > 0.5:
        stripped = np.array([i.split(".")[0] if i.startswith("ENS") else i for i in ids])
        return stripped, None, gene_keys(stripped)
    if organism is None:
        msg = f"{source.description} names its genes by symbol; heldout needs the organism to map them."
        raise UsageError(msg, hint="Pass --organism homo_sapiens (or mus_musculus).")
    mapping = map_genes(ids, organism, by="symbol", what=source.description)
    kept = mapping.genes["feature_id"].to_numpy(dtype=str)
    return kept, mapping.genes["column"].to_numpy(), gene_keys(kept)


def record_part(spec: PartSpec, block_cells: int = BLOCK_CELLS) -> dict:
    """Record one partition (idempotent: a partition with a DONE marker is left as it is)."""
    out = Path(spec.out)
    if (out / "DONE").exists():
        return json.loads((out / "DONE").read_text())
    tmp = out.with_name(f"{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "cells").mkdir(parents=True)
    with spec.open() as source:
        obs = source.obs()
        summary = {"name": spec.name, "n_cells": len(obs), "datasets": {}}
        if len(obs):
            ids, columns, keys = _gene_columns(source, spec.organism)
            parts = [signatures(block if columns is None else block[:, columns], keys)
                     for block in source.blocks(block_cells)]
            sig = Signatures.concat(parts)
            _write_cells(tmp / "cells", obs, sig)
            _write_donors(tmp / "donors.parquet", obs, sig)
            if "condition" in obs.columns:
                conditions.table(obs["dataset_id"].to_numpy(), obs["condition"].to_numpy()).to_parquet(
                    tmp / conditions.FILE, index=False)
            measured = (source.measured_genes() if columns is None
                        else {d: ids for d in pd.unique(obs["dataset_id"])})
            GeneUniverse.from_feature_ids(measured).write(tmp / "genes.parquet")
            source.datasets().to_parquet(tmp / "datasets.parquet", index=False)
            summary["datasets"] = obs.groupby("dataset_id").size().astype(int).to_dict()
    (tmp / "DONE").write_text(json.dumps(summary))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    crashpoint(f"after-partition-{spec.name}")
    return summary


def _write_cells(folder: Path, obs: pd.DataFrame, sig: Signatures) -> None:
    for dataset, rows in obs.groupby("dataset_id", sort=True).indices.items():
        part = sig.take(rows)
        table = pa.table({"cell_id": pa.array(obs["cell_id"].to_numpy()[rows], pa.string()),
                          "donor_id": pa.array(obs["donor_id"].to_numpy()[rows], pa.string()), **part.columns()})
        pq.write_table(table, folder / f"{safe_name(dataset)}.parquet", row_group_size=ROW_GROUP,
                       **write_options(table.column_names))


def _write_donors(path: Path, obs: pd.DataFrame, sig: Signatures) -> None:
    frame = pd.DataFrame({"dataset_id": obs["dataset_id"], "donor_id": obs["donor_id"],
                          "informative": sig.informative})
    donors = frame.groupby(["dataset_id", "donor_id"], observed=True).agg(
        n_cells=("informative", "size"), n_informative=("informative", "sum")).reset_index()
    donors.to_parquet(path, index=False)


def run_parts(specs: list[PartSpec], *, client: object | None = None, workers: int = 1,
              block_cells: int = BLOCK_CELLS, progress: bool = False) -> list[dict]:
    """Record every partition with Dask: on ``client`` (a dask.distributed Client) or local threads."""
    import dask

    tasks = [dask.delayed(record_part)(spec, block_cells, dask_key_name=f"record-{spec.name}") for spec in specs]
    if client is not None:
        return list(client.gather(client.compute(tasks)))  # type: ignore[attr-defined]
    if progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar(dt=1.0):
            return list(dask.compute(*tasks, scheduler="threads", num_workers=workers))
    return list(dask.compute(*tasks, scheduler="threads", num_workers=workers))


@dataclass(frozen=True, kw_only=True)
class RecordPlan:
    """Everything a recording needs besides its partitions' work."""

    root: Path  # project root
    model: str
    corpus: str
    role: str
    definition_sha256: str | None
    source: CorpusSource
    specs: list[PartSpec]
    staging: Path
    datasets_from_census: ResolvedCensus | None = None


def census_plan(*, root: Path, model: str, corpus: str, role: str, definition_sha256: str, resolved: ResolvedCensus,
                organism: str, obs_filter: str, partition_cells: int = DEFAULT_PARTITION_CELLS) -> RecordPlan:
    census = open_resolved(resolved)
    try:
        n_obs = int(experiment(census, organism).obs.count)
    finally:
        census.close()
    staging = corpus_dir(root, model, corpus) / f".staging-{definition_sha256[:16]}-{partition_cells}"
    specs = [PartSpec(name=f"{lo:012d}-{min(lo + partition_cells, n_obs):012d}",
                      out=str(staging / "parts" / f"{lo:012d}"), kind="census", organism=organism,
                      resolved=resolved, obs_filter=obs_filter, lo=lo, hi=min(lo + partition_cells, n_obs))
             for lo in range(0, max(n_obs, 1), partition_cells)]
    kind = "mirror" if resolved.source == "mirror" else "census"
    return RecordPlan(root=root, model=model, corpus=corpus, role=role, definition_sha256=definition_sha256,
                      source=CorpusSource(kind=kind, census_version=resolved.version, organism=organism,
                                          obs_value_filter=obs_filter),
                      specs=specs, staging=staging, datasets_from_census=resolved)


def files_plan(*, root: Path, model: str, corpus: str, role: str, kind: str, inputs: list[Path],
               organism: str | None, dataset_id: str | None = None) -> RecordPlan:
    records = [InputFile(path=p.name, sha256=sha256_file(p) if p.is_file() else _tree_digest(p),
                         size=p.stat().st_size if p.is_file() else 0) for p in inputs]
    key = sha256_text("|".join(r.sha256 for r in records))[:16]
    staging = corpus_dir(root, model, corpus) / f".staging-{key}"
    specs = [PartSpec(name=f"{i:04d}", out=str(staging / "parts" / f"{i:04d}"), kind=kind, organism=organism,
                      path=str(p), dataset_id=dataset_id) for i, p in enumerate(inputs)]
    return RecordPlan(root=root, model=model, corpus=corpus, role=role, definition_sha256=None,
                      source=CorpusSource(kind=kind, organism=organism, inputs=records,  # type: ignore[arg-type]
                                          uri=str(inputs[0]) if kind == "soma" else None),
                      specs=specs, staging=staging)


def sha256_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def _tree_digest(folder: Path) -> str:
    from heldout._files import sha256_tree

    return sha256_tree(folder)


def execute(plan: RecordPlan, *, client: object | None = None, workers: int = 1, block_cells: int = BLOCK_CELLS,
            progress: bool = False, say: Callable[[str], None] = lambda _m: None) -> CorpusManifest:
    """Record every partition not yet done, then assemble ``data/`` and write the manifest."""
    done = [s for s in plan.specs if (Path(s.out) / "DONE").exists()]
    if done:
        say(f"resuming: {len(done)} of {len(plan.specs)} partition(s) already recorded in {plan.staging}")
    run_parts([s for s in plan.specs if s not in done], client=client, workers=workers, block_cells=block_cells,
              progress=progress)
    return assemble(plan)


def assemble(plan: RecordPlan) -> CorpusManifest:
    folder = corpus_dir(plan.root, plan.model, plan.corpus)
    new = folder / f"{DATA}.new"
    shutil.rmtree(new, ignore_errors=True)
    (new / "cells").mkdir(parents=True)
    parts = [Path(s.out) for s in plan.specs]
    for part in parts:
        for cells in sorted((part / "cells").glob("*.parquet")):
            target = new / "cells" / cells.stem / f"part-{part.name}.parquet"
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(cells, target)
    donors = _concat(parts, "donors.parquet")
    donors = (donors.groupby(["dataset_id", "donor_id"], observed=True)[["n_cells", "n_informative"]].sum()
              .reset_index() if len(donors) else pd.DataFrame(columns=["dataset_id", "donor_id", "n_cells",
                                                                       "n_informative"]))
    donors.to_parquet(new / "donors.parquet", index=False)
    if tables := [pd.read_parquet(p / conditions.FILE) for p in parts if (p / conditions.FILE).exists()]:
        conditions.merge(tables).to_parquet(new / conditions.FILE, index=False)
    universe = _merge_universes([GeneUniverse.read(p / "genes.parquet") for p in parts
                                 if (p / "genes.parquet").exists()])
    universe.write(new / "genes.parquet")
    info = _concat(parts, "datasets.parquet").drop_duplicates("dataset_id").set_index("dataset_id")
    manifest = _manifest(plan, new, donors, info)
    data = folder / DATA
    old = folder / f"{DATA}.old"
    shutil.rmtree(old, ignore_errors=True)
    if data.exists():
        os.replace(data, old)
    os.replace(new, data)
    write_yaml_atomic(folder / MANIFEST, manifest.to_dict())  # the commit point: a manifest means complete
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(plan.staging, ignore_errors=True)
    (folder / ".verified.json").unlink(missing_ok=True)
    return manifest


def _concat(parts: list[Path], name: str) -> pd.DataFrame:
    frames = [pd.read_parquet(p / name) for p in parts if (p / name).exists()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["dataset_id"])


def _merge_universes(universes: list[GeneUniverse]) -> GeneUniverse:
    if not universes:
        return GeneUniverse(np.zeros(0, np.uint64), {})
    prefixes = sorted_unique(np.concatenate([u.prefixes for u in universes]))
    measured: dict[str, np.ndarray] = {}
    for u in universes:
        for dataset, mask in u.measured.items():
            full = np.isin(prefixes, u.prefixes[mask])
            measured[dataset] = measured[dataset] | full if dataset in measured else full
    return GeneUniverse(prefixes, measured)


def _manifest(plan: RecordPlan, new: Path, donors: pd.DataFrame, info: pd.DataFrame) -> CorpusManifest:
    files = []
    for path in sorted(p for p in new.rglob("*") if p.is_file()):
        rel = f"{DATA}/{path.relative_to(new).as_posix()}"
        dataset, n_cells = None, 0
        if path.parent.parent.name == "cells":
            n_cells = pq.ParquetFile(path).metadata.num_rows
            dataset = _dataset_of_folder(path.parent.name, donors)
        files.append(DataFile(path=rel, sha256=sha256_file(path), size=path.stat().st_size, dataset_id=dataset,
                              n_cells=n_cells))
    per_dataset = donors.groupby("dataset_id", observed=True).agg(
        n_cells=("n_cells", "sum"), n_informative=("n_informative", "sum"), n_donors=("donor_id", "size"))
    datasets = [DatasetEntry(dataset_id=str(d), n_cells=int(row.n_cells), n_informative=int(row.n_informative),
                             n_donors=int(row.n_donors),
                             **{k: str(info.loc[d, k]) for k in ("dataset_title", "collection_id", "collection_doi",
                                                                 "citation") if d in info.index and k in info})
                for d, row in per_dataset.iterrows()]
    return CorpusManifest(
        model=plan.model, corpus=plan.corpus, role=plan.role, definition_sha256=plan.definition_sha256,  # type: ignore[arg-type]
        source=plan.source, created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        heldout_version=heldout.__version__, signature=SIGNATURE_PARAMS, n_cells=int(donors["n_cells"].sum()),
        n_informative=int(donors["n_informative"].sum()), n_donors=len(donors), datasets=datasets, files=files)


def _dataset_of_folder(folder: str, donors: pd.DataFrame) -> str:
    for dataset in pd.unique(donors["dataset_id"].astype(str)):
        if safe_name(dataset) == folder:
            return dataset
    return folder

