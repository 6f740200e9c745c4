"""The proof of a written split: complete, every cell once, and disjoint by its kind (donor or perturbation)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import pandas as pd

from heldout._files import read_yaml, sha256_file
from heldout.errors import HeldoutError, SplitLeakError
from heldout.project import Project, artifact_paths, find_project


@dataclass(frozen=True)
class SplitCheck:
    dataset: str
    n_cells: int
    n_groups: int  # donor groups, or perturbation conditions
    cells: dict
    kind: str = "donor"


def check_split(name: str, *, project: Project | None = None, assignment_path: Path | None = None) -> SplitCheck:
    """Prove a split is complete and disjoint (donors, or perturbation conditions); raise naming every leak."""
    from heldout.splits.donors import donor_problems
    from heldout.splits.perturbations import perturbation_problems

    project = project or find_project()
    folder = project.splits / name
    path = assignment_path or folder / "assignment.parquet"
    if not path.exists():
        msg = f"No split for {name!r} at {path}."
        raise HeldoutError(msg, hint=f"Run `heldout split {name}`.")
    assignment = pd.read_parquet(path)
    manifest_path = folder / "manifest.yaml"
    manifest = read_yaml(manifest_path) if manifest_path.exists() else {}
    kind = manifest.get("kind", "donor")
    problems = donor_problems(assignment) if kind == "donor" else \
        _unique_cells(assignment) + perturbation_problems(assignment, manifest)
    h5ad = artifact_paths(project, name).h5ad
    if h5ad.exists() and manifest:
        obs_ids = ad.read_h5ad(h5ad, backed="r").obs_names
        missing = len(set(obs_ids) - set(assignment["observation_joinid"]))
        if missing:
            problems.append(f"{missing} cell(s) of the dataset have no assignment")
        if manifest.get("input_sha256") != sha256_file(h5ad):
            problems.append("the curated h5ad changed since the split was made (input_sha256 differs)")
    if problems:
        msg = f"Split of {name!r} is not valid: " + " | ".join(problems)
        raise SplitLeakError(msg, hint=f"Re-run `heldout split {name}`; never edit assignment files by hand.")
    groups = assignment.groupby(["dataset_id", "donor_id"]).ngroups if kind == "donor" else \
        assignment["perturbation"].nunique()
    return SplitCheck(dataset=name, n_cells=len(assignment), n_groups=int(groups),
                      cells=assignment["split"].value_counts().to_dict(), kind=kind)


def _unique_cells(assignment: pd.DataFrame) -> list[str]:
    dup = assignment["observation_joinid"].duplicated(keep=False)
    if not dup.any():
        return []
    ids = assignment.loc[dup, "observation_joinid"].unique()
    return [f"{len(ids)} cell(s) assigned more than once, e.g. {', '.join(map(str, ids[:5]))}"]
