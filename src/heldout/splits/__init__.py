"""Seeded train/validation/test splits of curated datasets, each written with its proof.

* :mod:`~heldout.splits.donors`: donor-disjoint, stratified splits (every transcriptomics card);
* :mod:`~heldout.splits.perturbations`: perturbation-disjoint splits (cards with a ``perturbation:``
  design): GEARS' simulation split, the combination split, the cross-cell-line split;
* :mod:`~heldout.splits.proof`: ``check_split``, which proves a written split before anyone uses it.

``split_dataset(name)`` picks the kind from the card and writes ``splits/NAME/assignment.parquet`` (one
row per cell), ``cells.parquet`` (what a Croissant record set reads) and ``manifest.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from heldout._files import atomic_path, write_yaml_atomic
from heldout.cards.dataset import load_dataset_card
from heldout.errors import HeldoutError
from heldout.project import Project, artifact_paths, find_project
from heldout.splits.donors import (
    EXCLUDED,
    MAX_FOLDS,
    SplitImpossible,
    assign_splits,
    donor_groups,
    folds_for,
    split_by_donor,
)
from heldout.splits.proof import SplitCheck, check_split

__all__ = ["CELLS", "EXCLUDED", "MAX_FOLDS", "SplitCheck", "SplitImpossible", "SplitResult", "assign_splits",
           "cell_table", "check_split", "donor_groups", "folds_for", "split_dataset"]

CELLS = "cells.parquet"
CELL_COLUMNS = ("dataset_id", "donor_id", "assay", "assay_ontology_term_id", "cell_type", "cell_type_ontology_term_id",
                "development_stage", "development_stage_ontology_term_id", "disease", "disease_ontology_term_id",
                "self_reported_ethnicity", "self_reported_ethnicity_ontology_term_id", "sex", "sex_ontology_term_id",
                "suspension_type", "tissue", "tissue_ontology_term_id", "tissue_type", "is_primary_data",
                "perturbation", "perturbation_type", "cell_line", "nperts", "target_gene_ids")


@dataclass(frozen=True, kw_only=True)
class SplitResult:
    manifest_path: Path
    assignment_path: Path
    manifest: dict


def cell_table(obs: pd.DataFrame, split: np.ndarray, labels: list[str]) -> pd.DataFrame:
    """One row per cell: its id, split, the card's labels and the Census (and perturbation) metadata columns."""
    columns = [c for c in dict.fromkeys([*CELL_COLUMNS, *labels]) if c in obs.columns]
    table = pd.DataFrame({"observation_joinid": obs.index.astype(str), "split": split.astype(str)})
    for column in columns:
        table[column] = obs[column].astype(str).to_numpy()
    return table.reset_index(drop=True)


def split_dataset(name: str, *, project: Project | None = None, seed: int | None = None) -> SplitResult:
    """Split the curated dataset ``name`` by its card's policy; write assignment, cells and manifest; prove it."""
    project = project or find_project()
    card = load_dataset_card(name, project.registry)
    h5ad = artifact_paths(project, card.name).h5ad
    if not h5ad.exists():
        msg = f"Dataset {card.name!r} is not curated yet ({h5ad} is missing)."
        raise HeldoutError(msg, hint=f"Run `heldout curate {card.name}` first.")
    obs = ad.read_h5ad(h5ad, backed="r").obs
    if card.perturbation is not None:
        from heldout.splits.perturbations import split_by_perturbation

        assignment, manifest = split_by_perturbation(card, obs, h5ad, seed)
    else:
        assignment, manifest = split_by_donor(card, obs, h5ad, seed)
    folder = project.splits / card.name
    with atomic_path(folder / "assignment.parquet") as tmp:
        assignment.to_parquet(tmp, index=False)
    with atomic_path(folder / CELLS) as tmp:
        cell_table(obs, assignment["split"].to_numpy(), card.labels).to_parquet(tmp, index=False)
    write_yaml_atomic(folder / "manifest.yaml", manifest)
    check_split(card.name, project=project)  # prove what we wrote before anyone uses it
    return SplitResult(manifest_path=folder / "manifest.yaml", assignment_path=folder / "assignment.parquet",
                       manifest=manifest)
