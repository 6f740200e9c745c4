"""Perturbation-disjoint splits: no test condition is seen in training, and controls go to both sides.

The analogue of donor-disjointness for a perturbation screen. Three schemes (a card's
``perturbation.split.scheme``):

* ``gears_simulation``: GEARS' ``get_simulation_split`` (snap-stanford/GEARS, ``gears/data_utils.py``),
  reproduced draw for draw. A seeded ``train_gene_fraction`` of the perturbed genes are *train genes*:
  their singles train. Combinations with one train gene are ``combo_seen1`` (test). Those with two are
  sampled: ``combo_seen2_train_fraction`` train and the rest are ``combo_seen2`` (test). Singles of the
  other genes are ``unseen_single`` and combinations of them ``combo_seen0`` (test). Then, as GEARS does,
  a validation set is drawn from the train conditions with fractions 0.9 / 0.9. GEARS' "seen" means "the
  gene is a train gene", not "its single was measured".
* ``combination`` (Ahlmann-Eltze et al. 2025; PerturBench's combination split): every single and a
  seeded ``1 - test_combination_fraction`` of the doubles train; the other doubles are held out.
* ``cross_cell_line``: every condition of the ``train_cell_lines`` trains; the perturbed cells of the
  other lines are the test set, predicted from what was learned elsewhere.

Control cells are split by cell (``control_test_fraction`` to test), so that train and test both have
controls to compare predictions with. The proof (:func:`perturbation_problems`) checks that no
non-control condition (within a test cell line, for ``cross_cell_line``) is in two splits, that both
train and test hold controls, and that every test cell belongs to its subgroup.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from heldout._files import sha256_file
from heldout.cards.dataset import DatasetCard
from heldout.cards.perturbation import CONTROL, PerturbationSplit, SplitScheme
from heldout.errors import HeldoutError

GEARS_CONTROL = "ctrl"


class PerturbationSplitImpossible(HeldoutError):
    """The design cannot make the requested perturbation split (too few conditions, a missing cell line)."""

    exit_code = 6


def to_gears(condition: str) -> str:
    """heldout's condition (``A``, ``A+B``, ``control``) in GEARS' naming (``A+ctrl``, ``A+B``, ``ctrl``)."""
    if condition == CONTROL:
        return GEARS_CONTROL
    return condition if "+" in condition else f"{condition}+{GEARS_CONTROL}"


def _genes(p: str) -> list[str]:
    return [g for g in p.split("+") if g != GEARS_CONTROL]


def gears_simulation(conditions: list[str], train_gene_fraction: float, combo_seen2_train_fraction: float,
                     seed: int) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """(train, test, test subgroups) of GEARS-named conditions, with GEARS' draws (numpy's global RNG)."""
    perts = [p for p in conditions if p != GEARS_CONTROL]
    singles = [p for p in perts if GEARS_CONTROL in p]
    combos = [p for p in perts if GEARS_CONTROL not in p]
    genes = np.unique([g for p in np.unique(perts) for g in _genes(p)])
    np.random.seed(seed=seed)
    train_genes = np.random.choice(genes, int(len(genes) * train_gene_fraction), replace=False)
    train_set = set(train_genes.tolist())
    ood = set(np.setdiff1d(genes, train_genes).tolist())
    single_train = [p for p in singles if set(_genes(p)) & train_set]
    combo_with_train = [p for p in combos if set(_genes(p)) & train_set]
    combo_seen1 = [p for p in combo_with_train if sum(g in train_set for g in _genes(p)) == 1]
    both = np.setdiff1d(combo_with_train, combo_seen1)
    np.random.seed(seed=seed)
    combo_train = np.random.choice(both, int(len(both) * combo_seen2_train_fraction), replace=False)
    combo_seen2 = np.setdiff1d(both, combo_train).tolist()
    unseen_single = [p for p in singles if set(_genes(p)) & ood]
    combo_seen0 = [p for p in combos if set(_genes(p)) & ood and not set(_genes(p)) & train_set]
    train = [*single_train, *combo_train.tolist()]
    test = [*combo_seen1, *combo_seen2, *unseen_single, *combo_seen0]
    return train, test, {"combo_seen0": combo_seen0, "combo_seen1": combo_seen1, "combo_seen2": combo_seen2,
                         "unseen_single": unseen_single}


def _by_condition(policy: PerturbationSplit, conditions: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Split and test subgroup of every non-control condition (heldout naming)."""
    split, subgroup = {}, {}
    if policy.scheme is SplitScheme.gears_simulation:
        gears = {to_gears(c): c for c in conditions}
        train, test, groups = gears_simulation(list(gears), policy.train_gene_fraction,
                                               policy.combo_seen2_train_fraction, policy.seed)
        for name, members in groups.items():
            for p in members:
                split[gears[p]], subgroup[gears[p]] = "test", name
        if policy.validation:
            train, validation, vgroups = gears_simulation(train, 0.9, 0.9, policy.seed)
            for name, members in vgroups.items():
                for p in members:
                    split[gears[p]], subgroup[gears[p]] = "validation", f"validation_{name}"
        for p in train:
            split[gears[p]], subgroup[gears[p]] = "train", "train"
        return split, subgroup
    if policy.scheme is SplitScheme.combination:
        singles = sorted(c for c in conditions if "+" not in c)
        doubles = sorted(c for c in conditions if "+" in c)
        rng = np.random.default_rng(policy.seed)
        n_test = int(round(len(doubles) * policy.test_combination_fraction))
        held = set(rng.choice(doubles, n_test, replace=False).tolist()) if n_test else set()
        for c in singles:
            split[c], subgroup[c] = "train", "train"
        for c in doubles:
            split[c], subgroup[c] = ("test", "held_out_combination") if c in held else ("train", "train")
        return split, subgroup
    msg = f"scheme {policy.scheme.value} is split per cell line, not per condition"
    raise AssertionError(msg)


def split_by_perturbation(card: DatasetCard, obs: pd.DataFrame, h5ad: Path, seed: int | None = None
                          ) -> tuple[pd.DataFrame, dict]:
    """The perturbation-disjoint assignment of ``obs`` (curated cells with design columns) and its manifest."""
    design = card.perturbation
    assert design is not None  # noqa: S101 - the caller dispatches on it
    policy = design.split if seed is None else design.split.model_copy(update={"seed": seed})
    condition = obs["perturbation"].astype(str).to_numpy()
    line = obs["cell_line"].astype(str).to_numpy()
    is_control = condition == CONTROL
    split = np.empty(len(obs), dtype=object)
    subgroup = np.empty(len(obs), dtype=object)
    if policy.scheme is SplitScheme.cross_cell_line:
        lines = sorted(set(line))
        missing = sorted(set(policy.train_cell_lines) - set(lines))
        if missing or set(policy.train_cell_lines) >= set(lines):
            msg = (f"Card {card.name!r}: cross_cell_line needs train_cell_lines among the data's lines {lines}, "
                   f"and at least one other line to predict; got {policy.train_cell_lines}.")
            raise PerturbationSplitImpossible(msg, hint="Fix perturbation.split.train_cell_lines.")
        in_train = np.isin(line, policy.train_cell_lines)
        split[:] = np.where(in_train, "train", "test")
        subgroup[:] = np.where(in_train, "train", "other_cell_line")
    else:
        per_condition, groups = _by_condition(policy, sorted(set(condition[~is_control])))
        if not any(v == "test" for v in per_condition.values()):
            msg = f"Card {card.name!r}: the {policy.scheme.value} split puts no condition in test."
            raise PerturbationSplitImpossible(msg, hint="Change the split's fractions or seed.")
        split[:] = [per_condition.get(c, "") for c in condition]
        subgroup[:] = [groups.get(c, "") for c in condition]
    control_split = _controls(is_control, line, policy)
    split[is_control] = control_split[is_control]
    subgroup[is_control] = "control"
    assignment = pd.DataFrame({"observation_joinid": obs.index.astype(str), "dataset_id": obs["dataset_id"].astype(str),
                               "donor_id": obs["donor_id"].astype(str), "split": split.astype(str),
                               "perturbation": condition, "cell_line": line, "subgroup": subgroup.astype(str)})
    return assignment, _manifest(card, h5ad, assignment, policy)


def _controls(is_control: np.ndarray, line: np.ndarray, policy: PerturbationSplit) -> np.ndarray:
    """Control cells split by cell, per cell line (seeded): ``control_test_fraction`` of each to test."""
    out = np.full(len(line), "", dtype=object)
    rng = np.random.default_rng(policy.seed)
    for value in sorted(set(line[is_control])):
        idx = np.flatnonzero(is_control & (line == value))
        order = rng.permutation(idx)
        n_test = max(1, int(round(len(idx) * policy.control_test_fraction)))
        out[order[:n_test]] = "test"
        out[order[n_test:]] = "train"
        if policy.scheme is SplitScheme.cross_cell_line and value not in policy.train_cell_lines:
            out[idx] = "test"  # a predicted line's controls are its reference, not training data
    return out


def _manifest(card: DatasetCard, h5ad: Path, assignment: pd.DataFrame, policy: PerturbationSplit) -> dict:
    perturbed = assignment[assignment["subgroup"] != "control"]
    conditions = {s: sorted(perturbed.loc[perturbed["split"] == s, "perturbation"].unique().tolist())
                  for s in ("train", "validation", "test") if (perturbed["split"] == s).any()}
    subgroups = {g: sorted(perturbed.loc[perturbed["subgroup"] == g, "perturbation"].unique().tolist())
                 for g in sorted(perturbed["subgroup"].unique())}
    return {"schema_version": 1, "dataset": card.name, "kind": "perturbation", "scheme": policy.scheme.value,
            "input_sha256": sha256_file(h5ad), "seed": policy.seed, "policy": policy.to_dict(),
            "conditions": conditions, "subgroups": subgroups,
            "cells": {s: int((assignment["split"] == s).sum()) for s in ("train", "validation", "test")
                      if (assignment["split"] == s).any()},
            "control_cells": {s: int(((assignment["split"] == s) & (assignment["subgroup"] == "control")).sum())
                              for s in ("train", "test")}}


def perturbation_problems(assignment: pd.DataFrame, manifest: dict) -> list[str]:
    """What makes a perturbation split invalid (empty: it is perturbation-disjoint and both sides have controls)."""
    problems = []
    perturbed = assignment[assignment["subgroup"] != "control"]
    key = ["cell_line", "perturbation"] if manifest.get("scheme") == SplitScheme.cross_cell_line.value \
        else ["perturbation"]
    per_condition = perturbed.groupby(key)["split"].nunique()
    leaky = per_condition[per_condition > 1]
    if len(leaky):
        problems.append(f"{len(leaky)} condition(s) in more than one split, e.g. "
                        f"{', '.join(map(str, leaky.index[:5]))}")
    if manifest.get("scheme") == SplitScheme.cross_cell_line.value:
        train_lines = set(assignment.loc[(assignment["split"] == "train"), "cell_line"])
        test_lines = set(perturbed.loc[perturbed["split"] == "test", "cell_line"])
        if train_lines & test_lines:
            problems.append(f"cell line(s) {sorted(train_lines & test_lines)} have perturbed cells in train and test")
    controls = assignment[assignment["subgroup"] == "control"]
    for side in ("train", "test"):
        if not (controls["split"] == side).any():
            problems.append(f"no control cells in {side}")
    if (perturbed["split"] == "").any() or (perturbed["subgroup"] == "").any():
        problems.append(f"{int((perturbed['split'] == '').sum())} perturbed cell(s) without a split")
    test = perturbed[perturbed["split"] == "test"]
    if test.empty:
        problems.append("no perturbed cell in test")
    return problems
