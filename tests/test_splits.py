"""Splits are donor-disjoint, complete, deterministic and proportionate; leaks are refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heldout._files import sha256_file
from heldout.cards.dataset import SpecialDonorPolicy
from heldout.cli import cli
from heldout.curation import curate
from heldout.errors import SplitLeakError
from heldout.project import Project
from heldout.splits import SplitImpossible, assign_splits, check_split, donor_groups, folds_for, split_dataset

FRACTIONS = st.sampled_from([
    {"train": 0.6, "validation": 0.2, "test": 0.2}, {"train": 0.5, "test": 0.5},
    {"train": 0.7, "validation": 0.15, "test": 0.15}, {"train": 0.8, "test": 0.2},
])


@st.composite
def cells(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n_groups = draw(st.integers(3, 30))
    sizes = draw(st.lists(st.integers(1, 40), min_size=n_groups, max_size=n_groups))
    groups = np.repeat([f"ds::donor{i}" for i in range(n_groups)], sizes).astype(object)
    labels = np.array(draw(st.lists(st.sampled_from("abcd"), min_size=len(groups), max_size=len(groups))))
    return groups, labels


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=cells(), fractions=FRACTIONS, seed=st.integers(0, 2**16), stratify=st.booleans())
def test_disjoint_complete_deterministic_proportionate(data, fractions, seed, stratify) -> None:
    groups, labels = data
    wanted = [s for s, f in fractions.items() if f > 0]
    if len(np.unique(groups)) < len(wanted):
        return
    split, _ = assign_splits(groups, labels if stratify else None, fractions, seed)
    again, _ = assign_splits(groups, labels if stratify else None, fractions, seed)
    assert np.array_equal(split, again)  # deterministic
    assert len(split) == len(groups) and set(split) <= set(wanted)  # complete: every cell exactly one split
    per_group = pd.DataFrame({"g": groups, "s": split}).groupby("g")["s"].nunique()
    assert (per_group == 1).all()  # disjoint
    counts = folds_for(fractions)
    k = min(sum(counts.values()), len(np.unique(groups)))
    largest = pd.Series(groups).value_counts().max()
    for name in wanted:  # each split within its folds' worth of whole groups of its target
        share = np.mean(split == name)
        slack = (counts.get(name, 0) + 1) * largest / len(groups) + 1 / k
        assert abs(share - fractions[name]) <= slack + 1e-9


def test_special_donors_are_never_merged() -> None:
    obs = pd.DataFrame({"dataset_id": ["a", "a", "b", "b", "b"], "donor_id": ["unknown", "d1", "unknown", "d1", "na"]})
    keys, keep = donor_groups(obs, SpecialDonorPolicy.own_group)
    assert len(set(keys)) == 5 and keep.all()  # 'unknown' of a and of b are separate groups
    _, keep = donor_groups(obs, SpecialDonorPolicy.exclude)
    assert keep.tolist() == [False, True, False, True, False]


def test_too_few_donors_is_a_clear_error() -> None:
    groups = np.array(["a::1"] * 5 + ["a::2"] * 5, dtype=object)
    with pytest.raises(SplitImpossible, match="2 donor group.*cannot fill 3 donor-disjoint splits"):
        assign_splits(groups, None, {"train": 0.6, "validation": 0.2, "test": 0.2}, 0)


def test_split_files_byte_identical_and_checked(curated: Project) -> None:
    first = split_dataset("glioma-tirosh2016", project=curated)
    digest = sha256_file(first.assignment_path), sha256_file(first.manifest_path)
    second = split_dataset("glioma-tirosh2016", project=curated)
    assert (sha256_file(second.assignment_path), sha256_file(second.manifest_path)) == digest
    m = first.manifest
    assert m["engine"] == "StratifiedGroupKFold" and sum(m["cells"].values()) == 184
    assert sum(len(v) for v in m["donors"].values()) == 5
    assert "labels_in_test_not_train" in m and set(m["cells_per_label"]) == set(m["cells"])
    assert check_split("glioma-tirosh2016", project=curated).n_cells == 184


def test_every_registered_card_splits(curated: Project) -> None:
    from heldout.cards.dataset import list_dataset_cards

    for name in list_dataset_cards(curated.registry):
        split_dataset(name, project=curated)
        assert check_split(name, project=curated).n_cells > 0


def test_leaky_split_is_refused_loudly(curated: Project, tmp_path) -> None:
    result = split_dataset("glioma-tirosh2016", project=curated)
    leaky = pd.read_parquet(result.assignment_path)
    donor = leaky.loc[leaky["split"] == "test", "donor_id"].iloc[0]
    first_cell = leaky.index[(leaky["donor_id"] == donor)][0]
    leaky.loc[first_cell, "split"] = "train"  # one cell of a test donor moved into train
    leaky = pd.concat([leaky, leaky.iloc[[1]]])  # and one cell assigned twice
    leaky.to_parquet(tmp_path / "leaky.parquet", index=False)
    with pytest.raises(SplitLeakError, match=rf"donor\(s\) in more than one split: '{donor}'.*train\+test|"
                                              rf"test\+train"):
        check_split("glioma-tirosh2016", project=curated, assignment_path=tmp_path / "leaky.parquet")
    with pytest.raises(SplitLeakError, match="assigned more than once"):
        check_split("glioma-tirosh2016", project=curated, assignment_path=tmp_path / "leaky.parquet")


def test_cli_split_and_check(project: Project, mirror_root) -> None:
    curate("glioma-tirosh2016", project=project, mirror_root=mirror_root, progress=False)
    runner = CliRunner()
    result = runner.invoke(cli, ["split", "glioma-tirosh2016"])
    assert result.exit_code == 0, result.output
    assert "StratifiedGroupKFold" in result.output
    ok = runner.invoke(cli, ["check-split", "glioma-tirosh2016"])
    assert ok.exit_code == 0 and "no donor or cell in two splits" in ok.output
    frame = pd.read_parquet(project.splits / "glioma-tirosh2016" / "assignment.parquet")
    frame.loc[0, "split"] = "validation" if frame.loc[0, "split"] != "validation" else "train"
    frame.to_parquet(project.splits / "glioma-tirosh2016" / "assignment.parquet", index=False)
    bad = runner.invoke(cli, ["check-split", "glioma-tirosh2016"])
    assert bad.exit_code == 6 and "more than one split" in bad.output
