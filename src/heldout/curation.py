"""Curate a dataset card into a validated h5ad, a lock and cell fingerprints.

The card's cells are pulled with ``axis_query`` and X is streamed in row
blocks (:func:`heldout.sources.x_blocks.x_blocks`) straight into the h5ad on
disk, so peak memory depends on the block size, not on the number of cells.
A reader thread reads X ahead (within a byte budget) while obs and var are
checked; then each block is appended to the h5ad, summarised for validation
and fingerprinted for audits, and the fingerprint table and the h5ad are
flushed to disk as they grow. Everything is written to temporary files and
moved into place only after validation passed: a failed or interrupted
curation leaves nothing behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
import tiledbsoma as soma
from tqdm.auto import tqdm

import heldout
from heldout._files import (
    atomic_path,
    flushed_as_written,
    fsync_file,
    read_yaml,
    sha256_file,
    write_yaml_atomic,
)
from heldout._gc import paused_gc
from heldout.cards.dataset import (
    DatasetCard,
    DatasetLock,
    SourceDataset,
    load_dataset_card,
)
from heldout.census import ResolvedCensus, experiment, open_resolved, resolve_census
from heldout.errors import CardError
from heldout.leakage.fingerprint import Signatures, gene_keys, signatures
from heldout.leakage.signature_table import SignatureTableWriter
from heldout.leakage.universe import GeneUniverse
from heldout.mirror.assemble import OBS_COLUMNS
from heldout.project import Project, artifact_paths, find_project
from heldout.sources.soma import census_measured_genes
from heldout.sources.stage import stage_source, unmapped_genes
from heldout.sources.x_blocks import x_blocks
from heldout.validation import (
    HARMONISED_KEY,
    ValidationReport,
    check_obs_var,
    prepare,
    validate_tables,
    x_cell_summary,
)
from heldout.validation.frames import all_strings

BLOCK_CELLS = 25_000
READ_AHEAD_BYTES = 128 << 20  # X blocks read ahead while obs is written and blocks are appended (bounded)
H5_CHUNK = 1 << 18  # elements per HDF5 chunk of X's data/indices (1 MiB of float32): h5py's guess is ~6k
OBS_CATEGORICAL = [c for c in OBS_COLUMNS if c not in {
    "soma_joinid", "is_primary_data", "observation_joinid", "raw_sum", "nnz", "raw_mean_nnz",
    "raw_variance_nnz", "n_measured_vars"}]


@dataclass(frozen=True, kw_only=True)
class CurationResult:
    h5ad: Path
    lock_path: Path
    fingerprints: Path
    lock: DatasetLock
    report: ValidationReport


def curate(name: str, *, project: Project | None = None, mirror_root: str | Path | None = None,
           block_cells: int = BLOCK_CELLS, progress: bool | None = None) -> CurationResult:
    """Curate the registered card ``name``: query, stream, validate, write h5ad + lock + fingerprints."""
    with paused_gc():  # bulk work: collections would walk every object loaded and free nothing
        return _curate(name, project=project, mirror_root=mirror_root, block_cells=block_cells, progress=progress)


def _curate(name: str, *, project: Project | None, mirror_root: str | Path | None, block_cells: int,
            progress: bool | None) -> CurationResult:
    project = project or find_project()
    card = load_dataset_card(name, project.registry)
    resolved = stage_source(card, project) if card.source else \
        resolve_census(card.census.version, source=card.census.source, mirror_root=mirror_root)  # type: ignore[union-attr]
    paths = artifact_paths(project, card.name)
    h5ad_path, lock_path = paths.h5ad, paths.lock
    label_maps = _label_maps(project, card)

    census = open_resolved(resolved)
    try:
        exp = experiment(census, card.organism.value)
        with _query(exp, card) as query, atomic_path(h5ad_path) as tmp_h5ad, \
                atomic_path(paths.fingerprints) as tmp_fp, atomic_path(paths.genes) as tmp_genes, \
                ThreadPoolExecutor(max_workers=2, thread_name_prefix="curate-io") as io:  # exits first: joins its work
            checks = {"schemas_dir": str(project.schemas), "organism": card.organism.value,
                      "harmonised_labels": label_maps}
            warmed = io.submit(_warm_up, checks)  # overlaps the obs read, which mostly runs without the GIL
            obs, var = _obs_var(query, card, label_maps)
            obs = _with_design(obs, card, resolved)
            warmed.result()
            cells = (obs.index.to_numpy(dtype=object), _strings(obs["dataset_id"]), _strings(obs["donor_id"]))
            with SignatureTableWriter(tmp_fp, *cells) as fp_table:
                with x_blocks(exp.ms["RNA"].X["raw"], obs["soma_joinid"].to_numpy(), var["soma_joinid"].to_numpy(),
                              block_cells, ahead_bytes=READ_AHEAD_BYTES) as blocks:
                    obs_var_failures = check_obs_var(obs, var, **checks)  # holds the GIL while X is read ahead
                    # a var filter's cells are fingerprinted over all their genes, once validation passed
                    summary = _stream_x(blocks, obs, var, tmp_h5ad, block_cells, progress, label_maps,
                                        fingerprints=None if card.var_value_filter else fp_table.add)
                # Disk and hashing work runs on threads without the GIL while the rest holds it.
                h5ad_synced, h5ad_sha256 = io.submit(fsync_file, tmp_h5ad), io.submit(sha256_file, tmp_h5ad)
                fingerprints = None if card.var_value_filter else fp_table.finish()
                report = validate_tables(str(h5ad_path), obs, var, summary, (len(obs), len(var)),
                                         obs_var_failures=obs_var_failures, **checks)
                report.raise_for_failures()  # aborts every atomic write: nothing lands
                if fingerprints is None:  # content evidence covers the cells' whole source profile
                    fp_table.add(_full_profile_signatures(exp, obs, block_cells))
                    fingerprints = fp_table.finish()
                measured = census_measured_genes(census, card.organism.value, set(_distinct(obs["dataset_id"])))
                GeneUniverse.from_feature_ids(measured).write(tmp_genes)
                fingerprints.result()
            h5ad_synced.result()
            sha = h5ad_sha256.result()
        sources = _source_datasets(census, obs)
    finally:
        census.close()

    lock = _lock(card, resolved, obs, var, h5ad_path, sha, project, sources)
    write_yaml_atomic(lock_path, lock.to_dict())
    return CurationResult(h5ad=h5ad_path, lock_path=lock_path, fingerprints=paths.fingerprints, lock=lock,
                          report=report)


@contextlib.contextmanager
def _query(exp: soma.Experiment, card: DatasetCard) -> Iterator[soma.ExperimentAxisQuery]:
    var_query = soma.AxisQuery(value_filter=card.var_value_filter) if card.var_value_filter else None
    try:
        query = exp.axis_query("RNA", obs_query=soma.AxisQuery(value_filter=card.obs_filter),
                               var_query=var_query or soma.AxisQuery())
        n_obs = query.n_obs
    except Exception as exc:  # tiledbsoma reports a bad filter as various types
        msg = f"The obs/var filter of card {card.name!r} is invalid for this source: {exc}"
        raise CardError(msg, hint="Check the column names and quoting in census.obs_value_filter.") from None
    if n_obs == 0:
        query.close()
        msg = f"Card {card.name!r}: the filter {card.obs_filter!r} selects no cells in this Census."
        raise CardError(msg, hint="Try `heldout lint --dry-run` to see counts, and check the filter values.")
    try:
        yield query
    finally:
        query.close()


def _obs_var(query: soma.ExperimentAxisQuery, card: DatasetCard,
             label_maps: dict[str, dict[str, str]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    obs = query.obs(column_names=OBS_COLUMNS).concat().to_pandas()
    obs = obs.sort_values("soma_joinid", kind="stable")
    missing = [c for c in card.labels if c not in obs.columns]
    if missing:
        msg = f"Card {card.name!r} names label columns {missing} that the Census obs lacks."
        raise CardError(msg, hint=f"Available columns: {', '.join(obs.columns)}.")
    for column, mapping in label_maps.items():
        obs[column] = obs[column].astype(str).replace(mapping)
    for column in OBS_CATEGORICAL:  # TileDB enums arrive as categoricals holding every Census value
        col = obs[column]
        obs[column] = _used_categories(col if isinstance(col.dtype, pd.CategoricalDtype) else
                                       col.astype(str).astype("category"))
    obs.index = pd.Index(_strings(obs["observation_joinid"]), name=None)
    var = query.var().concat().to_pandas().sort_values("soma_joinid", kind="stable")
    var.index = pd.Index(var["feature_id"].astype(str).to_numpy(), name=None)
    return obs, var


def _with_design(obs: pd.DataFrame, card: DatasetCard, resolved: object) -> pd.DataFrame:
    """A perturbation card's design columns (perturbation, perturbation_type, cell_line, nperts,
    target_gene_ids) joined to its cells by observation_joinid."""
    if card.perturbation is None:
        return obs
    from heldout.cards.perturbation import DESIGN_COLUMNS
    from heldout.sources.stage import staged_design

    design = staged_design(resolved)  # type: ignore[arg-type]
    if design is None:
        msg = f"Card {card.name!r} declares a perturbation design, but its source staged none."
        raise CardError(msg, hint="A perturbation card reads an h5ad or SOMA source (`source:`).")
    design = design.set_index("observation_joinid").reindex(obs.index)
    if design["perturbation"].isna().any():
        msg = f"Card {card.name!r}: {int(design['perturbation'].isna().sum())} cells have no staged design row."
        raise CardError(msg, hint="Delete .heldout/staged and curate again.")
    from heldout.perturbation.design import validate_design

    validate_design(design, card.perturbation, card.organism.value, f"card {card.name!r}")  # the selected cells
    for column in DESIGN_COLUMNS:
        obs[column] = design[column].to_numpy()
    return obs


def _warm_up(checks: dict) -> None:
    """Load validation's schemas and gene ids, then the compiled per-block kernels (numba's first
    dispatch in a process imports its typing registries: ~0.6 s). In this order: numba registers
    classes with ABCs, which makes pandera's isinstance checks slow while it loads (0.1 -> 0.35 s)."""
    prepare(schemas_dir=checks["schemas_dir"], organism=checks["organism"])
    empty = sp.csr_matrix((0, 0), dtype=np.float32)
    x_cell_summary(empty)
    signatures(empty, np.zeros(0, dtype=np.uint64))


def _block_stats(csr: sp.csr_matrix, first_row: int,
                 keys: np.ndarray | None) -> tuple[pd.DataFrame, Signatures | None]:
    return x_cell_summary(csr, first_row), None if keys is None else signatures(csr, keys)


def _full_profile_signatures(exp: soma.Experiment, obs: pd.DataFrame, block_cells: int) -> Signatures:
    """Signatures over every gene of the cells' source, not only the genes the card's var filter kept."""
    rna = exp.ms["RNA"]
    var = rna.var.read(column_names=["soma_joinid", "feature_id"]).concat().to_pandas().sort_values("soma_joinid")
    keys = gene_keys(var["feature_id"].to_numpy())
    parts = [signatures(csr, keys) for csr in
             x_blocks(rna.X["raw"], obs["soma_joinid"].to_numpy(), var["soma_joinid"].to_numpy(), block_cells)]
    return Signatures.concat(parts)


def _stream_x(blocks: Iterable[sp.csr_matrix], obs: pd.DataFrame, var: pd.DataFrame, out: Path,
              block_cells: int, progress: bool | None, label_maps: dict[str, dict[str, str]],
              fingerprints: Callable[[Signatures], None] | None) -> pd.DataFrame:
    """Write obs/var and X's ``blocks`` to ``out``; return the X summary, and hand each block's
    signatures to ``fingerprints`` (in order).

    Four things overlap: the reader thread reads blocks ahead (``x_blocks``), a worker
    thread summarises and fingerprints block i (numba, without the GIL), the main
    thread appends block i to the h5ad, and a flush thread moves what is written to disk.
    """
    keys = gene_keys(var.index.to_numpy()) if fingerprints else None
    summaries: list[pd.DataFrame] = []
    n_blocks = -(-len(obs) // block_cells)
    with h5py.File(out, "w") as f, ThreadPoolExecutor(max_workers=1) as worker, flushed_as_written(out) as flush:
        ad.experimental.write_dispatched(f, "obs", obs, callback=_strings_natively)
        ad.io.write_elem(f, "var", var)
        for elem in ("obsm", "varm", "obsp", "varp", "layers"):
            ad.io.write_elem(f, elem, {})
        ad.io.write_elem(f, "uns", {HARMONISED_KEY: label_maps} if label_maps else {})
        done, x, pending = 0, None, None

        def collect(pending: Future) -> None:
            summary, sig = pending.result()
            summaries.append(summary)
            if fingerprints:
                fingerprints(sig)

        for csr in tqdm(blocks, total=n_blocks, unit="block", desc="curating X",
                        disable=None if progress is None else not progress):
            if pending is not None:
                collect(pending)
            pending = worker.submit(_block_stats, csr, done, keys)
            if x is None:  # 64-bit indptr: a dataset may hold more than 2^31 non-zeros
                ad.io.write_elem(f, "X", csr, dataset_kwargs={"indptr_dtype": np.int64, "chunks": (H5_CHUNK,)})
                x = ad.io.sparse_dataset(f["X"])
            else:
                x.append(csr)
            flush()
            done += csr.shape[0]
        if pending is not None:
            collect(pending)
    return pd.concat(summaries)


STRING_DTYPE_WRITES = h5py.version.version_tuple >= (3, 14)  # h5py writes numpy StringDType to vlen strings itself


def _strings_natively(write, store, key, elem, *, iospec, dataset_kwargs):  # noqa: ANN001, ANN202
    """anndata write callback: a column of str objects is handed to h5py as a numpy StringDType array.

    The file is the same ("string-array", variable-length UTF-8), but h5py converts a StringDType
    array in C instead of one Python object at a time: 410k ids, 0.13 s instead of 0.28 s.
    """
    if (STRING_DTYPE_WRITES and iospec.encoding_type == "string-array" and isinstance(store, h5py.Group)
            and isinstance(elem, np.ndarray) and elem.dtype == object
            and pd.api.types.infer_dtype(elem, skipna=False) == "string"):
        dataset = store.create_dataset(key, data=elem.astype(np.dtypes.StringDType()), dtype=h5py.string_dtype(),
                                       **dataset_kwargs)
        dataset.attrs.update({"encoding-type": iospec.encoding_type, "encoding-version": iospec.encoding_version})
        return
    write(store, key, elem, dataset_kwargs=dataset_kwargs)


def _strings(column: pd.Series) -> np.ndarray:
    """A column's values as str objects; for a categorical, its categories' strings taken by code
    (410k rows: ~6 ms, against ~130 ms for ``astype(str)``, which converts every row)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        names = np.append(column.cat.categories.astype(str).to_numpy(dtype=object), "nan")  # code -1: missing
        return names[column.cat.codes.to_numpy()]
    values = column.to_numpy()
    if all_strings(values):  # already str objects (Census string columns)
        return values.astype(object, copy=False)
    return column.astype(str).to_numpy(dtype=object)


def _used_categories(column: pd.Series) -> pd.Series:
    """``cat.remove_unused_categories()`` by counting codes (pandas sorts them: 410k rows x 20 columns, 0.2 s)."""
    codes = column.cat.codes.to_numpy()
    used = np.bincount(codes[codes >= 0], minlength=len(column.cat.categories)) > 0
    if used.all():
        return column
    renumber = np.full(len(used) + 1, -1, dtype=np.int64)  # the last slot maps code -1 (missing) to itself
    renumber[np.flatnonzero(used)] = np.arange(int(used.sum()))
    kept = pd.Categorical.from_codes(renumber[codes], categories=column.cat.categories[used],
                                     ordered=column.cat.ordered)
    return pd.Series(kept, index=column.index, name=column.name)


def _distinct(column: pd.Series) -> list[str]:
    """The sorted distinct values of a column, as str."""
    values = column.unique()
    return sorted({str(v) for v in (values.to_numpy() if hasattr(values, "to_numpy") else values)})


def _label_maps(project: Project, card: DatasetCard) -> dict[str, dict[str, str]]:
    """Declarative label harmonisation from ``curation/<name>.yaml`` ({column: {old: new}})."""
    path = project.curation / f"{card.name}.yaml"
    if not path.exists():
        return {}
    data = read_yaml(path) or {}
    maps = data.get("label_maps", {}) if isinstance(data, dict) else None
    if not isinstance(maps, dict) or not all(isinstance(v, dict) for v in maps.values()):
        msg = f"{path}: expected `label_maps: {{column: {{old value: new value}}}}`."
        raise CardError(msg)
    unknown = [c for c in maps if c not in card.labels]
    if unknown:
        msg = f"{path}: label_maps names columns {unknown} that are not labels of card {card.name!r} ({card.labels})."
        raise CardError(msg)
    return {c: {str(k): str(v) for k, v in m.items()} for c, m in maps.items()}


def _source_datasets(census: soma.Collection, obs: pd.DataFrame) -> list[SourceDataset]:
    ids = _distinct(obs["dataset_id"])
    table = census["census_info"]["datasets"].read(
        column_names=["dataset_id", "dataset_title", "collection_id", "collection_doi", "citation"]
    ).concat().to_pandas().set_index("dataset_id")
    return [SourceDataset(dataset_id=i, **{k: str(v) for k, v in table.loc[i].items()}) if i in table.index
            else SourceDataset(dataset_id=i) for i in ids]


def _lock(card: DatasetCard, resolved: ResolvedCensus, obs: pd.DataFrame, var: pd.DataFrame,
          h5ad: Path, h5ad_sha256: str, project: Project, sources: list[SourceDataset]) -> DatasetLock:
    card_file = project.registry / "datasets" / f"{card.name}.yaml"
    return DatasetLock(
        name=card.name, card_sha256=sha256_file(card_file), census_source=resolved.source,
        census_version=resolved.version, organism=card.organism.value, obs_value_filter=card.obs_filter,
        dataset_ids=_distinct(obs["dataset_id"]), sources=sources, n_cells=len(obs),
        n_donors=int(obs.groupby(["dataset_id", "donor_id"], observed=True).ngroups), n_genes=len(var),
        h5ad=h5ad.name, h5ad_sha256=h5ad_sha256, heldout_version=heldout.__version__,
        source_uri=card.source.uri if card.source else None, source_sha256=card.source.sha256 if card.source else None,
        unmapped_genes=len(unmapped_genes(card, project)) if card.source else None,
    )
