"""Inputs of an evaluation: a released (or curated) dataset with its split, and model outputs.

Model outputs are per-cell embeddings keyed by the dataset's cell ids
(``observation_joinid``, the h5ad's obs names): ``.npy`` with an id list,
``.parquet`` with an ``observation_joinid`` column, or an ``.h5ad`` obsm key.
Ids that are missing, unknown or duplicated are an error that says how many
and which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from heldout.errors import EvaluationError
from heldout.leakage.audit import eval_from_curated, eval_from_release
from heldout.leakage.evidence import EvalData
from heldout.project import Project, artifact_paths, find_project
from heldout._files import sha256_file
from heldout.pull import parse_ref, pull, read_index

CURATED = "curated"
ID_COLUMN = "observation_joinid"


@dataclass(frozen=True, eq=False)
class EvalDataset:
    name: str
    version: str
    adata: ad.AnnData
    split: np.ndarray  # per cell, aligned with adata.obs_names
    audit_data: EvalData
    split_sha256: str
    retracted: bool = False
    retraction: str | None = None
    orthologs: dict[str, Path] = field(default_factory=dict)  # target organism -> h5ad in that gene space
    subgroup: np.ndarray | None = None  # per cell, for perturbation splits (unseen_single, combo_seen1, ...)

    @property
    def organism(self) -> str:
        return self.audit_data.organism


def load_eval_dataset(ref: str, *, registry: str | Path | None = None, project: Project | None = None,
                      backed: bool = False) -> EvalDataset:
    """``NAME@VERSION`` from a release (pulled, verified) or ``NAME@curated`` from this project.

    ``backed``: the counts stay on disk (``backed="r"``) until something reads them; tasks scored on
    embeddings read them once, for the simple baseline.
    """
    name, version = parse_ref(ref)
    retracted, retraction, orthologs = False, None, {}
    if version == CURATED:
        project = project or find_project(fallback=True)
        paths = artifact_paths(project, name)
        split_path = project.splits / name / "assignment.parquet"
        for path, command in ((paths.h5ad, "curate"), (split_path, "split")):
            if not path.exists():
                msg = f"{name}@{CURATED}: {path} is missing."
                raise EvaluationError(msg, hint=f"Run `heldout {command} {name}` first.")
        adata = ad.read_h5ad(paths.h5ad, backed="r" if backed else None)
        audit_data = eval_from_curated(project, name)
        orthologs = {p.suffixes[-2].lstrip("."): p for p in paths.h5ad.parent.glob(f"{name}.*.h5ad")}
    else:
        pulled = pull(ref, registry=registry)
        version, retracted = pulled.version, pulled.retracted
        adata = ad.read_h5ad(pulled.path, backed="r" if backed else None)
        split_path = pull(ref, registry=registry, artifact="split_assignment").path
        [audit_data] = eval_from_release(version, registry=registry, datasets=[name])
        index = read_index(registry)
        entry = index.releases[version]
        retraction = entry.retraction.reason if entry.retraction else None
        orthologs = {key.removeprefix("orthologs_"): pull(ref, registry=registry, artifact=key).path
                     for key in pulled.manifest.datasets[name].artifacts if key.startswith("orthologs_")}
    assignment = pd.read_parquet(split_path)
    by_cell = assignment.set_index(ID_COLUMN)
    split = by_cell["split"].reindex(adata.obs_names)
    if split.isna().any():
        msg = f"{name}@{version}: {int(split.isna().sum())} cells have no split assignment."
        raise EvaluationError(msg, hint=f"Re-run `heldout split {name}`.")
    return EvalDataset(name=name, version=version, adata=adata, split=split.to_numpy(), audit_data=audit_data,
                       split_sha256=sha256_file(split_path), retracted=retracted, retraction=retraction,
                       orthologs=orthologs,
                       subgroup=by_cell["subgroup"].reindex(adata.obs_names).to_numpy(dtype=str)
                       if "subgroup" in by_cell.columns else None)


def load_task_datasets(task_card, refs: list[str], *, registry: str | Path | None,  # noqa: ANN001 - TaskCard
                       project: Project, backed: bool = False) -> list[EvalDataset]:
    """Every dataset a task names (NAME@VERSION each), in the task card's order; refuse any other set."""
    loaded = [load_eval_dataset(ref, registry=registry, project=project, backed=backed) for ref in refs]
    if sorted(d.name for d in loaded) != sorted(task_card.dataset_names):
        msg = (f"Task {task_card.name!r} is defined on {', '.join(task_card.dataset_names)}, "
               f"not {', '.join(d.name for d in loaded)}.")
        raise EvaluationError(msg, hint="Use --release VERSION, or --dataset NAME@VERSION for each of them.")
    return sorted(loaded, key=lambda d: task_card.dataset_names.index(d.name))


def _ids_for_npy(path: Path, ids_path: Path | None) -> np.ndarray:
    candidate = ids_path or path.with_suffix(".ids.txt")
    if not candidate.exists():
        msg = f"{path} is a .npy array without cell ids; expected an id list at {candidate}."
        raise EvaluationError(msg, hint="Pass --ids FILE with one observation_joinid per line, in row order.")
    return np.array([line.strip() for line in candidate.read_text().splitlines() if line.strip()], dtype=object)


def read_predictions(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(ids, predicted labels) from a .parquet or .csv/.tsv with observation_joinid and a prediction column."""
    path = Path(path)
    if not path.exists():
        msg = f"Predictions file {path} does not exist."
        raise EvaluationError(msg)
    if path.suffix.lower() == ".parquet":
        frame = pd.read_parquet(path)
    elif path.suffix.lower() in (".csv", ".tsv"):
        frame = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    else:
        msg = f"Unsupported predictions file {path.name!r}: use .parquet, .csv or .tsv."
        raise EvaluationError(msg)
    if ID_COLUMN not in frame.columns:
        frame = frame.reset_index()
    others = [c for c in frame.columns if c != ID_COLUMN]
    if ID_COLUMN not in frame.columns or not others:
        msg = (f"{path} needs an {ID_COLUMN!r} column and one column of predicted labels "
               f"(columns: {', '.join(map(str, frame.columns[:10]))}).")
        raise EvaluationError(msg)
    column = "prediction" if "prediction" in others else others[0]
    return frame[ID_COLUMN].astype(str).to_numpy(dtype=object), frame[column].astype(str).to_numpy(dtype=object)


def read_embeddings(path: str | Path, *, ids_path: Path | None = None, obsm_key: str | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(ids, matrix) from .npy + ids, .parquet or .h5ad; no alignment yet."""
    path = Path(path)
    if not path.exists():
        msg = f"Embedding file {path} does not exist."
        raise EvaluationError(msg)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        matrix = np.load(path)
        ids = _ids_for_npy(path, ids_path)
    elif suffix == ".parquet":
        frame = pd.read_parquet(path)
        if ID_COLUMN not in frame.columns:
            frame = frame.reset_index()
        if ID_COLUMN not in frame.columns:
            msg = f"{path} has no {ID_COLUMN!r} column (columns: {', '.join(map(str, frame.columns[:10]))})."
            raise EvaluationError(msg)
        ids = frame.pop(ID_COLUMN).astype(str).to_numpy(dtype=object)
        matrix = frame.to_numpy(dtype=np.float64)
    elif suffix == ".h5ad":
        adata = ad.read_h5ad(path)
        if not obsm_key or obsm_key not in adata.obsm:
            msg = f"{path}: obsm key {obsm_key!r} not found; available: {', '.join(adata.obsm.keys()) or 'none'}."
            raise EvaluationError(msg, hint="Pass --obsm-key NAME.")
        ids, matrix = adata.obs_names.to_numpy(dtype=object), np.asarray(adata.obsm[obsm_key])
    else:
        msg = f"Unsupported embedding file {path.name!r}: use .npy (+ ids), .parquet or .h5ad."
        raise EvaluationError(msg)
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != len(ids):
        msg = f"{path}: {matrix.shape} array for {len(ids)} ids; expected one row per id."
        raise EvaluationError(msg)
    return ids, matrix


def align(ids: np.ndarray, matrix: np.ndarray, cell_ids: pd.Index, *, what: str) -> np.ndarray:
    """Rows of ``matrix`` in the order of ``cell_ids``; every cell exactly once, nothing extra."""
    index = pd.Index(ids.astype(str))
    dup = index[index.duplicated()].unique()
    if len(dup):
        msg = f"{what}: {len(dup)} cell id(s) appear more than once, e.g. {', '.join(dup[:5])}."
        raise EvaluationError(msg)
    missing = cell_ids.difference(index)
    extra = index.difference(cell_ids)
    if len(missing) or len(extra):
        parts = []
        if len(missing):
            parts.append(f"{len(missing)} of the dataset's {len(cell_ids)} cells are missing (e.g. "
                         f"{', '.join(missing[:5])})")
        if len(extra):
            parts.append(f"{len(extra)} ids are not cells of the dataset (e.g. {', '.join(extra[:5])})")
        msg = f"{what}: " + "; ".join(parts) + "."
        raise EvaluationError(msg, hint="Key embeddings by the dataset's obs names (observation_joinid).")
    aligned = matrix[index.get_indexer(cell_ids)]
    if aligned.dtype.kind in "OUS":  # predicted labels: nothing numeric to check
        return aligned
    if not np.isfinite(aligned).all():
        rows = np.flatnonzero(~np.isfinite(aligned).all(axis=1))
        msg = f"{what}: {len(rows)} cells have NaN or infinite values (e.g. {', '.join(cell_ids[rows[:5]])})."
        raise EvaluationError(msg)
    return aligned
