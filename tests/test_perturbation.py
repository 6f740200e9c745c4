"""Issue 25 (data and splits): perturbation cards, counts, design validation and perturbation-disjoint splits.

Real cells: PerturBench's development subset (sources/perturbench/devel.h5ad; Norman 2019 K562 CRISPRa and
McFaline-Figueroa 2024 glioma CRISPRi). GEARS' simulation split is checked against GEARS' own code
(tests/reference/gears_split.py, verbatim from cell-gears 0.1.2).
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from heldout.cards.dataset import load_dataset_card
from heldout.cards.perturbation import PerturbationSplit
from heldout.curation import curate
from heldout.errors import CardError, SourceError, SplitLeakError, ValidationFailed
from heldout.perturbation.design import design_table, validate_design
from heldout.project import Project
from heldout.sources.counts import recover_counts
from heldout.splits import check_split, split_dataset
from heldout.splits.perturbations import gears_simulation, perturbation_problems, split_by_perturbation, to_gears
from tests.reference.gears_split import DataSplitter

REPO = Path(__file__).resolve().parents[1]
DEVEL = REPO / "sources" / "perturbench" / "devel.h5ad"


@pytest.fixture(scope="module")
def devel() -> ad.AnnData:
    return ad.read_h5ad(DEVEL)


@pytest.fixture(scope="module")
def norman_card() -> object:
    return load_dataset_card("norman-2019", REPO / "registry")


def test_counts_are_recovered_exactly_or_refused(devel: ad.AnnData) -> None:
    counts = recover_counts(devel.X, "devel")
    assert np.array_equal(counts.data, np.rint(counts.data)) and counts.data.min() >= 1
    total = np.asarray(counts.sum(axis=1)).ravel()
    # re-normalising the counts to 10,000 per cell reproduces the file, given each cell's own total
    unit = np.expm1(devel.X.tocsr()[0].data).min() / counts[0].data.min()
    assert np.allclose(np.log1p(counts[0].data * unit), devel.X.tocsr()[0].data, atol=1e-12)
    assert (total > 0).all() and counts.shape == devel.shape
    scaled = devel.X.copy()
    scaled.data = scaled.data * 1.3  # no longer log1p of normalised counts
    with pytest.raises(SourceError, match="not integer multiples of one unit"):
        recover_counts(scaled, "scaled")


def test_card_rules(norman_card: object, tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "registry/datasets/norman-2019.yaml").read_text())
    assert norman_card.perturbation.kind.value == "CRISPRa" and norman_card.identifiers[0].geo_series == ["GSE133344"]
    for bad, message in ((dict(data, split={"fractions": {"test": 1.0}}), "remove the donor `split:` block"),
                         ({**data, "perturbation": {**data["perturbation"], "targets": {"KLF1": "ENSG1"}}},
                          "String should match pattern"),
                         ({**data, "perturbation": {**data["perturbation"], "kind": "CRISPRq"}}, "CRISPRa")):
        path = tmp_path / "registry" / "datasets" / "norman-2019.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(bad))
        with pytest.raises(CardError, match=message):
            load_dataset_card("norman-2019", tmp_path / "registry")


def test_the_design_is_validated_with_every_problem_named(devel: ad.AnnData, norman_card: object) -> None:
    design = norman_card.perturbation
    obs = devel.obs[devel.obs["dataset"] == "norman19"]
    table = design_table(obs, design, "norman")
    validate_design(table, design, "homo_sapiens", "norman")  # the real design passes
    assert set(table["perturbation"]) >= {"control", "KLF1", "KLF1+MAP2K6"} and table["nperts"].max() == 2
    assert table.loc[table["perturbation"] == "KLF1", "target_gene_ids"].iloc[0] == "ENSG00000105610"
    broken = obs.copy()
    broken["perturbation"] = broken["perturbation"].astype(str).replace({"control": "ctrl", "PLK4": "PLK4+",
                                                                         "HK2": "HK2+HK2"})
    targets = {k: v for k, v in design.targets.items() if k != "TMSB4X"} | {"SET": "ENSG00000105610"}
    strict = design.model_copy(update={"targets": targets, "min_cells_per_condition": 120})
    with pytest.raises(ValidationFailed) as info:
        validate_design(design_table(broken, strict, "norman"), strict, "homo_sapiens", "norman")
    text = str(info.value)
    assert "no control cells: no cell is labelled 'control'" in text
    assert "condition does not parse" in text and "PLK4+" in text and "HK2+HK2" in text
    assert "does not declare: " in text and "TMSB4X" in text and "ctrl" in text
    assert "fewer than min_cells_per_condition = 120" in text
    assert "target SET is declared ENSG00000105610, but GENCODE homo_sapiens maps it to ENSG00000119335" in text
    few = design.model_copy(update={"min_control_cells": 500})
    with pytest.raises(ValidationFailed, match="cell line 'k562' has 100 control cells"):
        validate_design(design_table(obs, few, "norman"), few, "homo_sapiens", "norman")


def test_perturbation_cards_curate_raw_counts_with_their_design(project: Project) -> None:
    result = curate("norman-2019", project=project, progress=False)
    adata = ad.read_h5ad(result.h5ad)
    assert adata.n_obs == 3375 and result.lock.n_genes == adata.n_vars > 450
    assert np.array_equal(adata.X.data, np.rint(adata.X.data))  # raw counts, as every heldout dataset
    obs = adata.obs
    assert (obs["perturbation_type"] == "CRISPRa").all() and set(obs["cell_line"]) == {"k562"}
    assert (obs["tissue_type"] == "cell line").all() and set(obs["tissue"]) == {"K-562"}
    assert (obs["perturbation"] == "control").sum() == 100 and obs["perturbation"].nunique() == 34
    mcf = curate("mcfaline-figueroa-2023", project=project, progress=False)
    cells = ad.read_h5ad(mcf.h5ad, backed="r").obs
    assert mcf.lock.n_cells == 2586 and set(cells["cell_line"]) == {"A172", "T98G", "U87MG"}
    assert set(cells["disease"]) == {"glioblastoma"} and (cells["perturbation_type"] == "CRISPRi").all()
    split_dataset("norman-2019", project=project)
    proof = check_split("norman-2019", project=project)
    assert proof.kind == "perturbation" and proof.n_groups == 34
    manifest = yaml.safe_load((project.splits / "norman-2019" / "manifest.yaml").read_text())
    assert set(manifest["subgroups"]) >= {"combo_seen1", "combo_seen2", "unseen_single", "train"}
    path = project.splits / "norman-2019" / "assignment.parquet"  # a hand edit that leaks a test condition
    assignment = pd.read_parquet(path)
    leak = assignment.index[assignment["subgroup"] == "unseen_single"][:3]
    assignment.loc[leak, "split"] = "train"
    assignment.to_parquet(path, index=False)
    with pytest.raises(SplitLeakError, match="condition\\(s\\) in more than one split"):
        check_split("norman-2019", project=project)
    split_dataset("mcfaline-figueroa-2023", project=project)
    cross = pd.read_parquet(project.splits / "mcfaline-figueroa-2023" / "assignment.parquet")
    perturbed = cross[cross["subgroup"] != "control"]
    assert set(perturbed.loc[perturbed["split"] == "train", "cell_line"]) == {"A172"}
    assert set(perturbed.loc[perturbed["split"] == "test", "cell_line"]) == {"T98G", "U87MG"}


# ------------------------------------------------------------------ GEARS parity and split invariants

GENES = [f"G{i}" for i in range(12)]


@st.composite
def designs(draw: st.DrawFn) -> list[str]:
    genes = draw(st.lists(st.sampled_from(GENES), min_size=3, max_size=12, unique=True))
    singles = draw(st.lists(st.sampled_from(genes), min_size=1, unique=True))
    pairs = draw(st.lists(st.tuples(st.sampled_from(genes), st.sampled_from(genes)).filter(lambda p: p[0] != p[1]),
                          unique_by=lambda p: frozenset(p), max_size=20))
    return [*singles, *[f"{a}+{b}" for a, b in pairs]]


@given(designs(), st.integers(0, 10_000), st.sampled_from([0.5, 0.75, 0.85]), st.sampled_from([0.5, 0.75, 0.9]))
@settings(max_examples=150, deadline=None)
def test_gears_simulation_split_equals_gears_own(conditions: list[str], seed: int, genes_f: float,
                                                 combo_f: float) -> None:
    names = [to_gears(c) for c in conditions]
    ours = gears_simulation(names, genes_f, combo_f, seed)
    theirs = DataSplitter().get_simulation_split(names, genes_f, combo_f, seed)
    assert sorted(ours[0]) == sorted(map(str, theirs[0])) and sorted(ours[1]) == sorted(map(str, theirs[1]))
    assert {k: sorted(v) for k, v in ours[2].items()} == {k: sorted(map(str, v)) for k, v in theirs[2].items()}


def _obs(conditions: list[str], lines: list[str], rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for line in lines:
        rows += [(c, line) for c in ["control"] * 12 + [c for c in conditions for _ in range(int(rng.integers(2, 6)))]]
    obs = pd.DataFrame(rows, columns=["perturbation", "cell_line"])
    obs.index = [f"cell{i}" for i in range(len(obs))]
    return obs.assign(dataset_id="d", donor_id="na")


@given(designs(), st.integers(0, 1000), st.sampled_from(["gears_simulation", "combination", "cross_cell_line"]))
@settings(max_examples=80, deadline=None)
def test_every_scheme_is_perturbation_disjoint_deterministic_and_has_controls(conditions: list[str], seed: int,
                                                                              scheme: str) -> None:
    from types import SimpleNamespace

    from heldout.splits.perturbations import PerturbationSplitImpossible

    lines = ["L1", "L2"] if scheme == "cross_cell_line" else ["L1"]
    policy = PerturbationSplit(scheme=scheme, seed=seed, train_cell_lines=["L1"] if lines == ["L1", "L2"] else [])
    card = SimpleNamespace(name="synthetic", perturbation=SimpleNamespace(split=policy))
    obs = _obs(conditions, lines, np.random.default_rng(seed))
    h5ad = DEVEL  # only hashed into the manifest
    try:
        first, manifest = split_by_perturbation(card, obs, h5ad)  # type: ignore[arg-type]
    except PerturbationSplitImpossible:
        return  # e.g. no condition could go to test: refused with a reason, never a half split
    again, _ = split_by_perturbation(card, obs, h5ad)  # type: ignore[arg-type]
    assert first.equals(again)
    assert perturbation_problems(first, manifest) == []
    perturbed = first[first["subgroup"] != "control"]
    if scheme != "cross_cell_line":
        train = set(perturbed.loc[perturbed["split"] == "train", "perturbation"])
        assert not train & set(perturbed.loc[perturbed["split"] == "test", "perturbation"])
    controls = first[first["subgroup"] == "control"]
    assert {"train", "test"} <= set(controls["split"])
