"""The perturbation task kind on real cells: cell-eval parity, bad prediction files, baselines, the tier gate.

Norman 2019 and McFaline-Figueroa 2024 (PerturBench's development subset) are curated and split as
the pipeline does, then scored from ``NAME@curated``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from heldout.cli import cli
from heldout.evaluation.inputs import load_eval_dataset
from heldout.evaluation.perturbation import baselines
from heldout.evaluation.perturbation.data import PerturbationData, perturbation_data
from heldout.evaluation.perturbation.engine import Engine, per_perturbation
from heldout.evaluation.perturbation.predictions import PredictionError, read_predictions
from heldout.project import Project
from heldout.splits import split_dataset
from tests.conftest import make_project

NORMAN, MCFALINE = "norman-2019", "mcfaline-figueroa-2023"


@pytest.fixture(scope="module")
def pert(curated: Project, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A project holding the two curated perturbation datasets, split as the pipeline splits them."""
    proj = make_project(tmp_path_factory.mktemp("pert") / "project")
    (proj.root / "data" / "curated").mkdir(parents=True)
    for name in (NORMAN, MCFALINE):
        for path in (curated.root / "data" / "curated").glob(f"{name}.*"):
            shutil.copy(path, proj.root / "data" / "curated" / path.name)
        split_dataset(name, project=proj)
    return proj


def _data(proj: Project, name: str) -> PerturbationData:
    return perturbation_data(load_eval_dataset(f"{name}@curated", project=proj), train_splits=["train", "validation"],
                             test_splits=["test"])


@pytest.fixture(scope="module")
def norman(pert: Project) -> PerturbationData:
    return _data(pert, NORMAN)


def _real_test_cells(proj: Project, name: str) -> ad.AnnData:
    """The held-out cells as raw counts, in cell-eval's prediction shape (a perfect prediction)."""
    adata = ad.read_h5ad(proj.root / "data" / "curated" / f"{name}.h5ad")
    split = pd.read_parquet(proj.splits / name / "assignment.parquet").set_index("observation_joinid")
    test = adata[split.loc[adata.obs_names, "split"].to_numpy() == "test"]
    test = test[test.obs["perturbation"].astype(str) != "control"]
    return ad.AnnData(sp.csr_matrix(test.X), var=pd.DataFrame(index=test.var_names.astype(str)),
                      obs=pd.DataFrame({"perturbation": test.obs["perturbation"].astype(str).to_numpy(),
                                        "cell_line": test.obs["cell_line"].astype(str).to_numpy()},
                                       index=[f"p{i}" for i in range(test.n_obs)]))


@pytest.mark.parametrize("copies", [1, 3])
def test_raw_metrics_equal_cell_eval_0_8_2_on_real_cells(copies: int, norman: PerturbationData, tmp_path: Path) -> None:
    """heldout's engine (cell-eval2's cell-eval-0.7.6 preset, pdex DE) against cell-eval 0.8.2 itself.

    Three copies of every cell give the Wilcoxon tests the power to call genes absent from the controls
    significant: their fold changes are infinite in cell-eval 0.8.2, and must be in heldout too.
    """
    from cell_eval import MetricsEvaluator

    fit = baselines.training(norman)
    [line] = norman.lines
    pred, real = baselines.additive_entry(norman, fit).preds[line].copy(), norman.real[line].copy()
    pred, real = (ad.concat([a] * copies, index_unique="-", keys=[str(i) for i in range(copies)])
                  if copies > 1 else a for a in (pred, real))
    for adata in (pred, real):  # cell-eval 0.8.2 finds a target by its name among var_names
        adata.var_names = [norman.symbols[g] for g in adata.var_names]
    ours = per_perturbation(pred, real, Engine(target_gene_map={}, num_threads=1))
    ours = ours[ours["run"] == "raw"]
    results, _ = MetricsEvaluator(adata_pred=pred, adata_real=real, control_pert="control", pert_col="perturbation",
                                  num_threads=1, outdir=str(tmp_path / "cell-eval")).compute(profile="full",
                                                                                             write_csv=False)
    theirs = results.to_pandas().melt(id_vars=["perturbation"], var_name="metric", value_name="value")
    both = ours.merge(theirs, on=["perturbation", "metric"], suffixes=("_heldout", "_cell_eval"))
    assert both["metric"].nunique() >= 26 and both["perturbation"].nunique() == len(norman.expected)
    a, b = both["value_heldout"].to_numpy(float), both["value_cell_eval"].to_numpy(float)
    assert (np.isnan(a) == np.isnan(b)).all()
    finite = ~np.isnan(a)
    worst = both.loc[finite].assign(diff=np.abs(a[finite] - b[finite])).sort_values("diff").tail(3)
    assert finite.sum() > 300 and np.abs(a[finite] - b[finite]).max() <= 1e-6, worst.to_string()


def _write(adata: ad.AnnData, path: Path) -> Path:
    adata.write_h5ad(path)
    return path


def _case(name: str, perfect: ad.AnnData) -> tuple[ad.AnnData, str, str]:
    """(a broken prediction, the declared scale, what the error must say)."""
    bad = perfect.copy()
    first = sorted(set(bad.obs["perturbation"]))[0]
    if name == "missing perturbation":
        return bad[bad.obs["perturbation"] != first].copy(), "counts", f"no predicted cells for 1 held-out condition(s): '{first}'"
    if name == "extra perturbation":
        labels = bad.obs["perturbation"].to_numpy().copy()
        labels[np.flatnonzero(labels == first)[:3]] = "NOT_A_GENE"  # a few cells of a condition nobody held out
        bad.obs["perturbation"] = labels
        return bad, "counts", "1 condition(s) are not held out by this task: 'NOT_A_GENE'"
    if name == "missing genes":
        return bad[:, 5:].copy(), "counts", "5 of the dataset's 495 genes are missing"
    if name == "extra genes":
        extra = ad.AnnData(sp.csr_matrix((bad.n_obs, 1)), obs=bad.obs, var=pd.DataFrame(index=["ENSG99999999999"]))
        return ad.concat([bad, extra], axis=1, merge="first"), "counts", "1 gene(s) are not the dataset's ('ENSG99999999999')"
    if name == "wrong order":
        order = list(bad.var_names)
        order[0], order[1] = order[1], order[0]
        return bad[:, order].copy(), "counts", "in another order (position 0"
    if name == "NaN":
        x = bad.X.toarray().astype(float)
        x[3, 7] = np.nan
        bad.X = sp.csr_matrix(x)
        return bad, "counts", "1 value(s) are NaN or infinite (first in cell row 3)"
    if name == "negative":
        x = bad.X.toarray().astype(float)
        x[0, 0] = -2.0
        bad.X = sp.csr_matrix(x)
        return bad, "counts", "1 value(s) are negative"
    if name == "log1p declared as counts":
        x = bad.X.copy().astype(np.float32)
        x.data = np.log1p(x.data) + 0.01
        bad.X = x
        return bad, "counts", "declared counts, but"
    if name == "counts declared as log1p":
        return bad, "log1p", "declared log1p, but the largest value"
    if name == "no perturbation column":
        bad.obs = bad.obs.rename(columns={"perturbation": "target"})
        return bad, "counts", "obs has no 'perturbation' column"
    raise AssertionError(name)


CASES = ["missing perturbation", "extra perturbation", "missing genes", "extra genes", "wrong order", "NaN",
         "negative", "log1p declared as counts", "counts declared as log1p", "no perturbation column"]


@pytest.mark.parametrize("case", CASES)
def test_bad_prediction_files_get_clear_errors(case: str, pert: Project, norman: PerturbationData,
                                               tmp_path: Path) -> None:
    bad, values, expected = _case(case, _real_test_cells(pert, NORMAN))
    path = _write(bad, tmp_path / "pred.h5ad")
    with pytest.raises(PredictionError) as info:
        read_predictions(path, values=values, genes=norman.genes, expected=norman.expected, lines=norman.lines)
    assert expected in str(info.value), str(info.value)
    assert info.value.hint  # every error says how to fix it


def test_a_prediction_for_several_lines_names_each_cells_line_and_a_csv_is_refused(pert: Project,
                                                                                  tmp_path: Path) -> None:
    data = _data(pert, MCFALINE)
    assert data.lines == ["T98G", "U87MG"] and data.expected[0].startswith("T98G/")
    cells = _real_test_cells(pert, MCFALINE)
    read_predictions(_write(cells, tmp_path / "ok.h5ad"), values="counts", genes=data.genes,
                     expected=data.expected, lines=data.lines)
    del cells.obs["cell_line"]
    with pytest.raises(PredictionError, match="needs a 'cell_line' column"):
        read_predictions(_write(cells, tmp_path / "p.h5ad"), values="counts", genes=data.genes,
                         expected=data.expected, lines=data.lines)
    (tmp_path / "p.csv").write_text("perturbation\nMAPK1\n")
    with pytest.raises(PredictionError, match="cell-eval's AnnData shape"):
        read_predictions(tmp_path / "p.csv", values="counts", genes=data.genes, expected=data.expected,
                         lines=data.lines)


def _evaluate(proj: Project, monkeypatch: pytest.MonkeyPatch, *args: str) -> object:
    monkeypatch.setenv("HELDOUT_PROJECT", str(proj.root))
    monkeypatch.chdir(proj.root)
    return CliRunner().invoke(cli, ["evaluate", "--dataset", f"{NORMAN}@curated", "--results", "results", *args])


def test_evaluate_scores_a_model_beside_baselines_and_the_ceiling(pert: Project, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    perfect = _write(_real_test_cells(pert, NORMAN), tmp_path / "perfect.h5ad")
    result = _evaluate(pert, monkeypatch, "--task", "norman-perturbation", "--model", "oracle",
                       "--predictions", str(perfect), "--values", "counts", "--workers", "2")
    assert result.exit_code == 0, result.output
    [record] = [json.loads(line) for line in (pert.root / "results" / "results.jsonl").read_text().splitlines()
                if json.loads(line)["model"] == "oracle"]
    assert record["kind"] == "perturbation" and record["tier"] == "GRAY"  # no card: undocumented
    assert record["roles"] == {"oracle": "model", "control": "negative", "mean": "baseline",
                               "additive": "baseline", "technical_replicate": "positive"}
    score = {e: record["scores"][e]["vcc2026_score"]["mean"] for e in record["roles"]}
    assert score["mean"] == 0 and score["technical_replicate"] == pytest.approx(1)  # the scale's two ends
    assert score["oracle"] > 0.9 and score["oracle"] > max(score["control"], score["additive"])
    for group in ("unseen_single", "combo_seen0", "combo_seen1", "combo_seen2"):
        assert f"{group}/vcc2026_score" in record["scores"]["oracle"]
    assert record["scores"]["oracle"]["mse"]["mean"] == pytest.approx(0, abs=1e-9)
    assert len(record["scores"]["technical_replicate"]["mse"]["values"]) == 5  # one per seed
    assert any(n.startswith("linear: not applicable: 0 of") for n in record["notes"])  # no target is measured
    assert not record["flags"]
    assert record["timings"]["oracle"]["cell-eval2"] > 0 and set(record["timings"]) == set(record["roles"])

    controls = _real_test_cells(pert, NORMAN)  # a "model" that predicts no change: below the mean baseline
    basal = norman_controls(pert)
    controls.X = sp.csr_matrix(np.resize(basal, controls.shape))
    path = _write(controls, tmp_path / "no-change.h5ad")
    result = _evaluate(pert, monkeypatch, "--task", "norman-perturbation", "--model", "no-change",
                       "--predictions", str(path), "--values", "counts", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "below the mean baseline" in result.output


def norman_controls(proj: Project) -> np.ndarray:
    adata = ad.read_h5ad(proj.root / "data" / "curated" / f"{NORMAN}.h5ad")
    return adata[adata.obs["perturbation"].astype(str) == "control"].X.toarray()


def test_red_is_refused_before_the_predictions_are_read(pert: Project, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    garbage = tmp_path / "not-even-h5ad.h5ad"
    garbage.write_text("never opened")
    result = _evaluate(pert, monkeypatch, "--task", "norman-perturbation", "--model", "gears-norman",
                       "--predictions", str(garbage), "--values", "log1p")
    assert result.exit_code == 9 and "is RED" in result.output and "norman-2019-perturbations" in result.output
    result = _evaluate(pert, monkeypatch, "--task", "norman-perturbation", "--model", "x",
                       "--predictions", str(garbage))
    assert result.exit_code == 2 and "--values counts or --values log1p" in result.output
    result = _evaluate(pert, monkeypatch, "--task", "norman-perturbation", "--model", "x",
                       "--embeddings", str(garbage), "--values", "log1p")
    assert result.exit_code == 2 and "scores predicted cells" in result.output


def test_the_linear_model_is_the_papers_closed_form() -> None:
    """With both ridges near zero, Y - center = G W P solves as lm.fit(kronecker(t(B), A), vec(Y)) (the R code)."""
    rng = np.random.default_rng(0)
    genes = [f"g{i}" for i in range(40)]
    profiles = rng.normal(size=(12, 40))
    changes = profiles - profiles.mean(axis=0)
    train = [[f"g{i}"] for i in range(12)]
    test = [["g20"], ["g1", "g2"], ["unmeasured"]]
    predicted, embedded = baselines.fit_linear(profiles, changes, genes, train, test, k=4, ridge=1e-10)
    g = baselines._pca_scores(profiles.T, 4)
    b = np.stack([g[i] for i in range(12)], axis=1)
    y = changes.T
    center = y.mean(axis=1, keepdims=True)
    w = np.linalg.lstsq(np.kron(b.T, g), (y - center).flatten(order="F"), rcond=None)[0].reshape(4, 4, order="F")
    expected = [g @ w @ g[20] + center[:, 0], g @ w @ (g[1] + g[2]) + center[:, 0], center[:, 0]]
    assert embedded == [True, True, False]
    np.testing.assert_allclose(predicted, np.vstack(expected), atol=1e-6)
    assert baselines.fit_linear(profiles, changes, genes, [["x"]] * 12, test) is None  # nothing to embed


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), sizes=st.lists(st.integers(2, 30), min_size=2, max_size=6))
def test_replicate_halves_are_disjoint_seeded_and_cover_every_condition(seed: int, sizes: list[int]) -> None:
    conditions = np.repeat(["control", *[f"G{i}" for i in range(len(sizes) - 1)]], sizes)
    genes = pd.Index([f"ENSG{i:011d}" for i in range(3)])
    real = ad.AnnData(sp.csr_matrix(np.ones((len(conditions), 3), dtype=np.float32)), var=pd.DataFrame(index=genes),
                      obs=pd.DataFrame({"perturbation": conditions, "cell_line": "k562"},
                                       index=[f"c{i}" for i in range(len(conditions))]))
    data = PerturbationData(genes=genes, lines=["k562"], real={"k562": real}, train=real, subgroups={},
                            target_gene_map={}, symbols={})
    first, again = (baselines.replicate_entries(data, [seed])[0] for _ in range(2))
    pred, ref = first.preds["k562"], first.reals["k562"]
    assert set(pred.obs_names).isdisjoint(ref.obs_names) and pred.n_obs + ref.n_obs == real.n_obs
    assert list(pred.obs_names) == list(again.preds["k562"].obs_names)
    for c, n in zip(sorted(set(conditions)), pd.Series(conditions).value_counts().sort_index(), strict=True):
        assert (pred.obs["perturbation"] == c).sum() == n // 2
