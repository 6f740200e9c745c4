"""Evaluation tells models apart on real data: controls, seeds, scIB metrics, cross-species transfer, reports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from heldout._files import sha256_file
from heldout.cli import cli
from heldout.errors import EvaluationError, UsageError
from heldout.evaluation import metrics
from heldout.evaluation.controls import one_hot
from heldout.evaluation.simple_baseline import simple_embedding
from heldout.evaluation.inputs import load_eval_dataset
from heldout.evaluation.report import html_report, read_records
from heldout.evaluation.run import RESULTS_TABLE, evaluate, recheck_tiers
from heldout.evaluation.tasks import BIO
from heldout.project import Project
from heldout.pull import pull
from heldout.releases import retract_release
from tests.helpers import run_ok

REPO = Path(__file__).resolve().parents[1]


def _embedding_file(registry: Project, names: list[str], tmp: Path, kind: str) -> Path:
    """A per-cell embedding of released datasets: 'pca' (the simple baseline), 'onehot' labels, or 'random'."""
    frames = []
    for name in names:
        adata = ad.read_h5ad(pull(f"{name}@v1", registry=registry.root).path)
        if kind == "pca":
            x = simple_embedding(adata)
        elif kind == "onehot":
            x = adata.obs["cell_type"].astype(str).to_numpy()
        else:
            x = np.random.default_rng(5).standard_normal((adata.n_obs, 8))
        frames.append((adata.obs_names, x))
    if kind == "onehot":
        labels = np.concatenate([x for _, x in frames])
        values = one_hot(labels)
    else:
        values = np.concatenate([x for _, x in frames])
    ids = np.concatenate([np.asarray(i) for i, _ in frames])
    out = tmp / f"{kind}-{'+'.join(names)}.parquet"
    pd.DataFrame(values, index=pd.Index(ids, name="observation_joinid")).rename(columns=str).to_parquet(out)
    return out


@pytest.fixture(scope="module")
def emb(registry: Project, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("emb")
    return {(kind, name): _embedding_file(registry, [name], tmp, kind)
            for kind in ("pca", "onehot", "random")
            for name in ("glioma-tirosh2016", "pbmc-blood", "baron-pancreas-human")}


def _run(registry: Project, task: str, embeddings: Path, model: str, results: Path, **kw: object):  # noqa: ANN202
    from heldout.evaluation.tasks import load_task_card

    names = load_task_card(task, REPO / "registry").dataset_names
    return evaluate(task=task, datasets=[f"{n}@v1" for n in names], model=model, embeddings=embeddings,
                    registry=registry.root, results_dir=results, project=Project(REPO), **kw)


def test_one_hot_labels_score_at_least_095_on_every_bio_metric(registry: Project, emb: dict, tmp_path: Path) -> None:
    result = _run(registry, "glioma-integration", emb[("onehot", "glioma-tirosh2016")], "onehot", tmp_path)
    for metric in BIO:
        assert result.scores["onehot"][metric]["mean"] >= 0.95, (metric, result.scores["onehot"][metric])
    # the same one-hot embedding, rows in another order: only kNN ties among identical points differ
    assert result.scores["oracle"]["total"]["mean"] == pytest.approx(result.scores["onehot"]["total"]["mean"], abs=0.005)
    clusters = _run(registry, "pbmc-clustering", emb[("onehot", "pbmc-blood")], "onehot", tmp_path)
    for metric in ("ari_kmeans", "nmi_kmeans", "ari_leiden", "nmi_leiden"):  # identical points do not score 0
        assert clusters.scores["onehot"][metric]["mean"] >= 0.95, metric
    labels = _run(registry, "baron-annotation", emb[("onehot", "baron-pancreas-human")], "onehot", tmp_path)
    assert labels.scores["onehot"]["logreg_macro_f1"]["mean"] >= 0.95


def test_random_control_is_near_chance_and_a_real_embedding_is_not(registry: Project, emb: dict,
                                                                    tmp_path: Path) -> None:
    clusters = _run(registry, "pbmc-clustering", emb[("pca", "pbmc-blood")], "pca", tmp_path)
    for metric in ("ari_kmeans", "ari_leiden"):
        assert abs(clusters.scores["random"][metric]["mean"]) < 0.03
        assert abs(clusters.scores["shuffled"][metric]["mean"]) < 0.03
    assert clusters.scores["pca"]["ari_kmeans"]["mean"] > 0.3
    glioma = _run(registry, "glioma-annotation", emb[("pca", "glioma-tirosh2016")], "pca", tmp_path)
    # class-balanced classifiers no longer call every cell malignant (was macro-F1 0.446 / accuracy 0.805)
    assert glioma.scores["pca"]["logreg_macro_f1"]["mean"] > 0.9
    assert glioma.scores["pca"]["logreg_macro_f1"]["mean"] == glioma.scores["simple"]["logreg_macro_f1"]["mean"]
    assert glioma.scores["random"]["logreg_macro_f1"]["mean"] < 0.6
    assert glioma.scaled["oracle"]["logreg_macro_f1"] == 1.0
    assert max(glioma.scaled[n]["logreg_macro_f1"] for n in ("random", "shuffled")) == 0.0
    data = load_eval_dataset("glioma-tirosh2016@v1", registry=registry.root)
    tested = set(data.adata.obs["cell_type"].astype(str)[data.split == "test"])
    assert tested == {"malignant cell", "macrophage"}  # the held-out patient has no oligodendrocytes
    assert set(glioma.per_class["pca"]["logreg"]) == tested


def test_majority_class_predictor_is_far_below_a_good_embedding(registry: Project, emb: dict, tmp_path: Path) -> None:
    adata = ad.read_h5ad(pull("baron-pancreas-human@v1", registry=registry.root).path)
    majority = adata.obs["cell_type"].astype(str).value_counts().index[0]
    path = tmp_path / "majority.parquet"
    pd.DataFrame({"observation_joinid": adata.obs_names, "prediction": majority}).to_parquet(path)
    result = evaluate(task="baron-annotation", datasets=["baron-pancreas-human@v1"], model="majority-model",
                      predictions=path, registry=registry.root, results_dir=tmp_path, project=Project(REPO))
    pca = _run(registry, "baron-annotation", emb[("pca", "baron-pancreas-human")], "pca", tmp_path)
    assert result.scores["majority-model"]["predicted_macro_f1"]["mean"] < 0.1
    assert pca.scores["pca"]["logreg_macro_f1"]["mean"] > 0.6
    assert result.scores["oracle"]["predicted_macro_f1"]["mean"] == 1.0
    assert any("below the shuffled control" in f or "below the majority control" in f for f in result.flags) \
        or result.scaled["majority-model"]["predicted_macro_f1"] <= 0.0


def test_a_model_below_the_negative_control_is_flagged(registry: Project, emb: dict, tmp_path: Path) -> None:
    result = _run(registry, "glioma-annotation", emb[("random", "glioma-tirosh2016")], "noise", tmp_path)
    assert result.flags and all("below the" in f for f in result.flags)
    assert result.scaled["noise"]["logreg_macro_f1"] <= 0.05


def test_seeds_vary_what_they_should_and_identical_seeds_give_identical_results(registry: Project, emb: dict,
                                                                                tmp_path: Path) -> None:
    first = _run(registry, "glioma-annotation", emb[("pca", "glioma-tirosh2016")], "pca", tmp_path)
    again = _run(registry, "glioma-annotation", emb[("pca", "glioma-tirosh2016")], "pca", tmp_path)
    assert first.scores == again.scores and first.seeds == [0, 1, 2, 3, 4]
    forest = first.scores["random"]["random_forest_macro_f1"]["values"]
    assert len(forest) == 5 and len(set(forest)) > 1  # the forest's seed varies ...
    assert len(set(first.scores["random"]["logreg_macro_f1"]["values"])) == 1  # ... logistic regression has none


def test_cross_species_transfer_matrix(registry: Project, tmp_path: Path) -> None:
    names = ["baron-pancreas-human", "baron-pancreas-mouse"]
    onehot = _embedding_file(registry, names, tmp_path, "onehot")
    result = _run(registry, "pancreas-transfer", onehot, "onehot", tmp_path)
    cells = {m.split("/")[0] for m in result.scores["onehot"] if m.endswith("/logreg_macro_f1")}
    assert cells == {"human_to_human", "human_to_mouse", "mouse_to_human", "mouse_to_mouse"}
    for cell in cells:
        assert result.scores["onehot"][f"{cell}/logreg_macro_f1"]["mean"] == pytest.approx(1.0)
    simple = result.scores["simple"]  # the joint PCA in human gene space (mouse through the ortholog map)
    assert simple["human_to_human/logreg_macro_f1"]["mean"] > 0.6
    assert simple["human_to_human/logreg_macro_f1"]["mean"] > simple["human_to_mouse/logreg_macro_f1"]["mean"]


def test_result_provenance_and_a_retracted_release(registry: Project, emb: dict, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    run_ok(tmp_path, "git", "clone", "-q", str(registry.root), str(clone))
    retract_release("v1", reason="a typo in a label map", project=Project(clone))
    result = evaluate(task="glioma-annotation", datasets=["glioma-tirosh2016@v1"], model="pca",
                      embeddings=emb[("pca", "glioma-tirosh2016")], registry=clone, results_dir=tmp_path / "r",
                      project=Project(REPO))
    [dataset] = result.datasets
    assert dataset["retracted"] and dataset["retraction"] == "a typo in a label map" and result.retracted
    split = pull("glioma-tirosh2016@v1", registry=clone, artifact="split_assignment").path
    assert dataset["split_sha256"] == sha256_file(split)
    assert result.task_card_sha256 == sha256_file(REPO / "registry" / "tasks" / "glioma-annotation.yaml")
    assert result.tier == "GRAY" and result.model_card_source == "none" and result.heldout_version
    report = CliRunner().invoke(cli, ["report", "--results", str(tmp_path / "r"), "--registry", str(clone),
                                      "--out", str(tmp_path / "r.html")])
    assert report.exit_code == 0, report.output
    page = (tmp_path / "r.html").read_text()
    assert "retracted release: a typo in a label map" in page and "RETRACTED" in report.output


def test_reports_are_self_contained_and_fit_80_columns(registry: Project, emb: dict, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for task, name in (("glioma-annotation", "glioma-tirosh2016"), ("pbmc-clustering", "pbmc-blood")):
        _run(registry, task, emb[("pca", name)], "pca", tmp_path / "res")
    monkeypatch.setenv("COLUMNS", "80")
    result = CliRunner().invoke(cli, ["report", "--results", str(tmp_path / "res"), "--registry",
                                      str(registry.root), "--out", str(tmp_path / "report.html")],
                                env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0, result.output
    table = [line for line in result.output.splitlines() if not line.startswith("wrote ")]  # paths are paths
    assert max(len(line) for line in table) <= 80
    assert "glioma-annotation" in result.output and "pca" in result.output
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and not re.search(r"""src=['"](?!data:)""", page)
    assert "badge" in page and "oracle" in page and "&plusmn;" in page
    assert "| pca | model |" in (tmp_path / "report.md").read_text()
    _screenshot(tmp_path / "report.html", tmp_path / "report.png")


def _screenshot(page: Path, png: Path) -> None:
    """Render the page in headless Chromium (Debian's package) and check the screenshot is not blank."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed here (.ci/run installs it)")
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                    f"--user-data-dir={png.parent / 'chrome-profile'}", "--window-size=1200,1600",
                    f"--screenshot={png}", page.as_uri()], check=True, capture_output=True, timeout=120)
    import matplotlib.image as mpimg

    pixels = mpimg.imread(png)
    assert pixels.shape[0] >= 1000 and pixels[..., :3].std() > 0.05  # text, badges and plots, not a blank page


def test_bad_inputs_are_named(registry: Project, emb: dict, tmp_path: Path) -> None:
    frame = pd.read_parquet(emb[("pca", "glioma-tirosh2016")])
    cases = {
        "missing": (frame.iloc[3:], r"3 of the dataset's 184 cells are missing"),
        "extra": (pd.concat([frame, frame.iloc[:1].rename(index=lambda _: "not-a-cell")]), r"1 ids are not cells"),
        "duplicated": (pd.concat([frame, frame.iloc[:2]]), r"2 cell id\(s\) appear more than once"),
        "nan": (frame.assign(**{"0": np.where(np.arange(len(frame)) == 5, np.nan, frame["0"])}), r"NaN or infinite"),
    }
    for name, (bad, message) in cases.items():
        path = tmp_path / f"{name}.parquet"
        bad.to_parquet(path)
        with pytest.raises(EvaluationError, match=message):
            _run(registry, "glioma-annotation", path, "m", tmp_path)
    with pytest.raises(EvaluationError, match="is defined on glioma-tirosh2016"):
        evaluate(task="glioma-annotation", datasets=["pbmc-blood@v1"], model="m", registry=registry.root,
                 embeddings=emb[("pca", "pbmc-blood")], results_dir=tmp_path, project=Project(REPO))
    with pytest.raises(UsageError, match="Predicted labels can only be scored by annotation"):
        evaluate(task="pbmc-clustering", datasets=["pbmc-blood@v1"], model="m", registry=registry.root,
                 predictions=emb[("pca", "pbmc-blood")], results_dir=tmp_path, project=Project(REPO))
    assert not (tmp_path / RESULTS_TABLE).exists()


def test_leiden_on_identical_points() -> None:
    labels = np.repeat(["a", "b", "c"], 50)
    assert [r["ari_leiden"] for r in metrics.clustering(one_hot(labels), labels, seeds=[0, 1])] == pytest.approx([1.0, 1.0])


def test_diffusion_spectrum_is_exact_and_deterministic_on_identical_points() -> None:
    """kBET's eigen-solve: scib-metrics' random-start ARPACK failed about one run in three on a one-hot graph."""
    import scipy.linalg
    from scib_metrics.utils._diffusion_nn import _compute_transitions

    rng = np.random.default_rng(1)
    spread = _compute_transitions(metrics.exact_neighbors(rng.standard_normal((300, 6)), 30).knn_graph_connectivities)
    values, _ = metrics.top_eigen(spread, 20)
    dense = scipy.linalg.eigvalsh(spread.toarray())
    assert np.allclose(values, np.sort(dense[np.argsort(-np.abs(dense))[:20]])[::-1], atol=1e-5)
    same = _compute_transitions(metrics.exact_neighbors(one_hot(np.repeat(["a"], 2500)), 50).knn_graph_connectivities)
    first, _ = metrics.top_eigen(same, 100)
    for _ in range(3):  # converges every time, to the same spectrum
        values, _ = metrics.top_eigen(same, 100)
        assert values[0] == pytest.approx(1.0, abs=1e-4) and np.allclose(values, first, atol=1e-5)


def test_kbet_with_exact_neighbours_matches_its_definition() -> None:
    """Well-mixed batches accept kBET, separated batches reject it (exact-kNN diffusion neighbours)."""
    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b"], 200)
    x = np.concatenate([rng.normal(0, 1, (200, 5)), rng.normal(8, 1, (200, 5))])
    mixed = np.tile(["d1", "d2"], 200)
    apart = np.where(np.arange(400) % 200 < 100, "d1", "d2")
    x_apart = x + (apart == "d2")[:, None] * 20
    good = metrics.integration_deterministic(x, x, labels, mixed)
    bad = metrics.integration_deterministic(x_apart, x, labels, apart)
    assert good["kbet"] > 0.5 > bad["kbet"] and good["ilisi"] > bad["ilisi"]


def test_recheck_uses_the_release_cards(registry: Project, emb: dict, tmp_path: Path) -> None:
    _run(registry, "glioma-annotation", emb[("pca", "glioma-tirosh2016")], "transcriptformer", tmp_path)
    records = read_records(tmp_path / RESULTS_TABLE)
    [(key, recheck)] = recheck_tiers(records, project=Project(REPO), registry=registry.root).items()
    assert key == ("transcriptformer", "glioma-tirosh2016@v1", "glioma-annotation")
    assert recheck.tier == "GRAY" and recheck.card_source == "registry"
    html_report(records, {key: recheck}, tmp_path / "x.html")
    assert json.dumps(records[0]["evidence"])  # evidence stored as plain JSON


def test_forest_bootstrap_is_capped_on_large_training_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond FOREST_BOOTSTRAP_MAX training cells each tree draws that many cells: still seeded and accurate."""
    from sklearn.ensemble import RandomForestClassifier

    seen: list[object] = []
    real_fit = RandomForestClassifier.fit

    def spy(self, x, y, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen.append(self.max_samples)
        return real_fit(self, x, y, *args, **kwargs)

    monkeypatch.setattr(RandomForestClassifier, "fit", spy)
    monkeypatch.setattr(metrics, "FOREST_BOOTSTRAP_MAX", 200)
    rng = np.random.default_rng(3)
    labels = np.repeat(["a", "b", "c"], 400)
    x = one_hot(labels) * 4 + rng.standard_normal((1200, 3))
    train = np.arange(1200) % 4 != 0
    first = metrics.classify(x[train], labels[train], x[~train], "random_forest", seed=1)
    again = metrics.classify(x[train], labels[train], x[~train], "random_forest", seed=1)
    small = metrics.classify(x[train][:150], labels[train][:150], x[~train], "random_forest", seed=1)
    assert seen == [200, 200, None]  # capped above the limit, the standard bootstrap below it
    assert (first == again).all() and (first == labels[~train]).mean() > 0.9
    assert small.shape == first.shape


def test_leiden_is_scib_metrics_leiden() -> None:
    """Resolutions x seeds as independent tasks give exactly scib-metrics' Leiden NMI/ARI per seed."""
    import scib_metrics

    from heldout.evaluation import leiden

    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(c, 1.0, (80, 4)) for c in (0.0, 1.5, 3.0)])
    labels = np.repeat(["a", "b", "c"], 80)
    graph = metrics.exact_neighbors(x, 15).knn_graph_connectivities
    done = []
    ours = leiden.scores(graph, labels, [0, 1, 7], on_task=lambda: done.append(1))
    assert len(done) == 3 * len(leiden.RESOLUTIONS)
    for seed, values in zip([0, 1, 7], ours, strict=True):
        reference = scib_metrics.nmi_ari_cluster_labels_leiden(metrics.exact_neighbors(x, 15), labels,
                                                              optimize_resolution=True, seed=seed)
        assert values == {"nmi": pytest.approx(float(reference["nmi"]), abs=0),
                          "ari": pytest.approx(float(reference["ari"]), abs=0)}
    parallel = pytest.MonkeyPatch.context()
    with parallel as patch:  # the worker-process path gives the same numbers
        patch.setattr(leiden, "PARALLEL_MIN", 0)
        assert leiden.scores(graph, labels, [0, 1, 7]) == ours
