"""Donor-disjoint, stratified, seeded train/validation/test splits.

The unit of a split is the donor group ``(dataset_id, donor_id)``: Census
donor ids are free text and only unique within a dataset. Special donor
values (``unknown``, ``pooled``, ``na``) follow the card's policy: each
(dataset, value) is a group of its own, or such cells are excluded. Never are
they merged with real donors.

Groups are dealt into K folds by scikit-learn (``StratifiedGroupKFold`` when a
label column is given and every class can be spread, else ``GroupKFold``),
and whole folds go to splits in proportion to the card's fractions. The same
data, card and seed give a byte-identical assignment file.
"""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

from heldout._files import sha256_file
from heldout.cards.dataset import SPECIAL_DONOR_IDS, SPLIT_NAMES, DatasetCard, SpecialDonorPolicy, SplitPolicy
from heldout.errors import HeldoutError

EXCLUDED = "excluded"
MAX_FOLDS = 20


class SplitImpossible(HeldoutError):
    """The data has too few donor groups for the requested splits."""

    exit_code = 6


def donor_groups(obs: pd.DataFrame, policy: SpecialDonorPolicy) -> tuple[np.ndarray, np.ndarray]:
    """Group key per cell (``dataset_id::donor_id``) and a mask of cells kept by the policy."""
    donor = obs["donor_id"].astype(str).to_numpy()
    keys = obs["dataset_id"].astype(str).to_numpy().astype(object) + "::" + donor.astype(object)
    special = np.isin(donor, SPECIAL_DONOR_IDS)
    keep = ~special if policy is SpecialDonorPolicy.exclude else np.ones(len(obs), dtype=bool)
    return keys, keep


def folds_for(fractions: dict[str, float], max_folds: int = MAX_FOLDS) -> dict[str, int]:
    """Whole folds per split whose proportions best match ``fractions`` (fewest folds on ties)."""
    wanted = {s: f for s, f in fractions.items() if f > 0}
    best: tuple[float, int, dict[str, int]] | None = None
    for k in range(len(wanted), max_folds + 1):
        counts = _largest_remainder(wanted, k)
        error = max(abs(counts[s] / k - f) for s, f in wanted.items())
        if best is None or error < best[0] - 1e-12:
            best = (error, k, counts)
    return best[2]


def _largest_remainder(fractions: dict[str, float], k: int) -> dict[str, int]:
    raw = {s: Fraction(f).limit_denominator(1000) * k for s, f in fractions.items()}
    counts = {s: max(int(v), 1) for s, v in raw.items()}
    order = sorted(raw, key=lambda s: (raw[s] - int(raw[s]), s), reverse=True)
    i = 0
    while sum(counts.values()) < k:
        counts[order[i % len(order)]] += 1
        i += 1
    while sum(counts.values()) > k:
        largest = max(counts, key=lambda s: (counts[s], s))
        counts[largest] -= 1
    return counts


def assign_splits(groups: np.ndarray, labels: np.ndarray | None, fractions: dict[str, float],
                  seed: int) -> tuple[np.ndarray, str]:
    """Split name per cell, and the engine used. Whole groups only, deterministic in ``seed``."""
    n_groups = len(np.unique(groups))
    wanted = {s: f for s, f in fractions.items() if f > 0}
    if len(wanted) == 1:
        return np.full(len(groups), next(iter(wanted)), dtype=object), "single split"
    if n_groups < len(wanted):
        msg = (f"{n_groups} donor group(s) cannot fill {len(wanted)} donor-disjoint splits "
               f"({', '.join(wanted)}).")
        raise SplitImpossible(msg, hint="Give fewer non-zero fractions in the card's split, or add donors.")
    counts = folds_for(wanted)
    k = sum(counts.values())
    if n_groups < k:  # fewer groups than folds: one fold per group, re-dealt by fraction
        counts = _largest_remainder(wanted, n_groups)
        k = n_groups
    # Integer codes in sorted-name order: scikit-learn sees the same groups in the same order as with
    # the names (so the same folds), without slow object-array np.unique / np.isin on 1M strings.
    groups = pd.factorize(groups, sort=True)[0]
    fold = np.empty(len(groups), dtype=np.int64)
    dummy = np.zeros((len(groups), 1))
    engine = "GroupKFold"
    if labels is not None and len(pd.unique(labels)) > 1:
        cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        engine = "StratifiedGroupKFold"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "least populated class" notices
            splits = list(cv.split(dummy, labels, groups))
    else:
        splits = list(GroupKFold(n_splits=k, shuffle=True, random_state=seed).split(dummy, groups=groups))
    for i, (_, test_idx) in enumerate(splits):
        fold[test_idx] = i
    fold_order = np.random.default_rng(seed).permutation(k)
    names = np.empty(k, dtype=object)
    start = 0
    for split in ("test", "validation", "train"):  # test first: it gets its folds before others
        n = counts.get(split, 0)
        names[fold_order[start:start + n]] = split
        start += n
    return names[fold], engine


def split_by_donor(card: DatasetCard, obs: pd.DataFrame, h5ad: Path, seed: int | None = None
                   ) -> tuple[pd.DataFrame, dict]:
    """The donor-disjoint assignment of ``obs`` (the curated cells of ``card``) and its manifest."""
    policy: SplitPolicy = card.split
    seed = policy.seed if seed is None else seed
    keys, keep = donor_groups(obs, policy.special_donors)
    labels = obs[policy.stratify_by].astype(str).to_numpy() if policy.stratify_by else None
    split = np.full(len(obs), EXCLUDED, dtype=object)
    names, engine = assign_splits(keys[keep], None if labels is None else labels[keep], dict(policy.fractions), seed)
    split[keep] = names
    assignment = pd.DataFrame({"observation_joinid": obs.index.astype(str), "dataset_id": obs["dataset_id"].astype(str),
                               "donor_id": obs["donor_id"].astype(str), "split": split}).reset_index(drop=True)
    return assignment, _manifest(card.name, h5ad, assignment, labels, policy, seed, engine)


def _manifest(name: str, h5ad: Path, assignment: pd.DataFrame, labels: np.ndarray | None, policy: SplitPolicy,
              seed: int, engine: str) -> dict:
    donors = assignment.assign(group=assignment["dataset_id"] + "::" + assignment["donor_id"])
    per_split = {s: sorted(donors.loc[donors["split"] == s, "group"].unique().tolist())
                 for s in (*SPLIT_NAMES, EXCLUDED) if (donors["split"] == s).any()}
    manifest = {
        "schema_version": 1, "dataset": name, "kind": "donor", "input_sha256": sha256_file(h5ad), "seed": seed,
        "engine": engine,
        "fractions": dict(policy.fractions), "special_donors": policy.special_donors.value,
        "stratify_by": policy.stratify_by, "donors": per_split,
        "cells": {s: int((assignment["split"] == s).sum()) for s in per_split},
    }
    if labels is not None:
        table = pd.crosstab(assignment["split"], labels)
        manifest["cells_per_label"] = {s: {str(k): int(v) for k, v in row.items() if v} for s, row in table.iterrows()}
        in_train = set(table.columns[table.loc["train"] > 0]) if "train" in table.index else set()
        in_test = set(table.columns[table.loc["test"] > 0]) if "test" in table.index else set()
        manifest["labels_in_test_not_train"] = sorted(str(x) for x in in_test - in_train)
    return manifest


def donor_problems(assignment: pd.DataFrame) -> list[str]:
    """What makes a donor split invalid (empty: it is donor-disjoint, complete and well named)."""
    problems: list[str] = []
    dup = assignment["observation_joinid"].duplicated(keep=False)
    if dup.any():
        ids = assignment.loc[dup, "observation_joinid"].unique()
        problems.append(f"{len(ids)} cell(s) assigned more than once, e.g. {', '.join(map(str, ids[:5]))}")
    assigned = assignment[assignment["split"] != EXCLUDED]
    per_group = assigned.groupby(["dataset_id", "donor_id"])["split"].nunique()
    leaky = per_group[per_group > 1]
    if len(leaky):
        examples = []
        for (ds, donor) in leaky.index[:5]:
            where = sorted(assigned.loc[(assigned["dataset_id"] == ds) & (assigned["donor_id"] == donor), "split"].unique())
            examples.append(f"{donor!r} of dataset {ds} in {'+'.join(where)}")
        problems.append(f"{len(leaky)} donor(s) in more than one split: " + "; ".join(examples))
    unknown = set(assignment["split"]) - {*SPLIT_NAMES, EXCLUDED}
    if unknown:
        problems.append(f"unknown split names {sorted(unknown)}")
    return problems
