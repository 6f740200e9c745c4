"""Evaluation: real metric values, baselines reproduced exactly, RED refused, clear id errors."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from heldout.cli import cli
from heldout.errors import EvaluationError, LeakageRefused
from heldout.evaluation import metrics
from heldout.evaluation.baselines import simple_embedding
from heldout.evaluation.run import RESULTS_TABLE, evaluate
from heldout.project import Project
from heldout.pull import pull
from heldout.splits import split_dataset

FIXTURES = Path(__file__).parent / "data" / "models"


# --- metric values on small known inputs -------------------------------------------------------

def test_label_silhouette_exact_value() -> None:
    x = np.array([[0.0], [1.0], [10.0], [11.0]])
    labels = np.array(["a", "a", "b", "b"])
    # s(0) = 1 - 1/10.5, s(1) = 1 - 1/9.5, symmetric for b; ASW rescaled to (s + 1) / 2
    expected = ((1 - 1 / 10.5) + (1 - 1 / 9.5)) / 2
    values = metrics.integration(x, labels, np.array(["d1", "d2", "d1", "d2"]))
    assert values["asw_label"] == pytest.approx((expected + 1) / 2, abs=1e-12)


def test_batch_silhouette_perfect_mixing_and_full_separation() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 2))
    mixed = metrics.integration(x, np.repeat("t", 200), np.tile(["d1", "d2"], 100))
    assert mixed["asw_batch"] > 0.85  # batches interleaved: |silhouette| small (noise only)
    assert np.isnan(mixed["asw_label"])  # one label: label silhouette is undefined, not 0
    separated = np.concatenate([x[:100] - 50, x[100:] + 50])
    split = metrics.integration(separated, np.repeat("t", 200), np.repeat(["d1", "d2"], 100))
    assert split["asw_batch"] < 0.05  # each batch its own island: |silhouette| ~ 1


def test_annotation_and_clustering_on_separable_blobs() -> None:
    rng = np.random.default_rng(1)
    centres = np.array([[0, 0], [20, 0], [0, 20]])
    labels = np.repeat(["a", "b", "c"], 40)
    x = centres[np.repeat([0, 1, 2], 40)] + rng.standard_normal((120, 2))
    train = np.arange(120) % 2 == 0
    scores = metrics.annotation(x[train], labels[train], x[~train], labels[~train], seed=0)
    assert scores == {"macro_f1": 1.0, "accuracy": 1.0}
    clusters = metrics.clustering(x, labels, seed=0)
    assert clusters["ari_kmeans"] == pytest.approx(1.0) and clusters["nmi_kmeans"] == pytest.approx(1.0)
    assert clusters["ari_leiden"] > 0.9


# --- on a release of the mini-Census ------------------------------------------------------------

@pytest.fixture(scope="module")
def glioma_pca(registry: Project, tmp_path_factory: pytest.TempPathFactory) -> Path:
    adata = ad.read_h5ad(pull("glioma-tirosh2016@v1", registry=registry.root).path)
    out = tmp_path_factory.mktemp("emb") / "pca.parquet"
    frame = pd.DataFrame(simple_embedding(adata, seed=0), index=pd.Index(adata.obs_names, name="observation_joinid"))
    frame.rename(columns=str).to_parquet(out)
    return out


@pytest.mark.parametrize("task", ["glioma-annotation", "glioma-integration"])
def test_simple_baseline_as_a_model_reproduces_it_exactly(curated: Project, registry: Project, glioma_pca: Path,
                                                         tmp_path: Path, task: str) -> None:
    result = evaluate(dataset="glioma-tirosh2016@v1", task=task, model="simple-pca", embeddings=glioma_pca,
                      registry=registry.root, results_dir=tmp_path, project=curated)
    assert result.scores["model"] == result.scores["simple"]
    assert result.dataset_version == "v1" and result.tier == "GRAY" and result.gray_flag
    again = evaluate(dataset="glioma-tirosh2016@v1", task=task, model="simple-pca", embeddings=glioma_pca,
                     registry=registry.root, results_dir=tmp_path, project=curated)
    assert again.scores == result.scores  # deterministic
    if task == "glioma-annotation":
        assert result.scores["random"]["macro_f1"] < result.scores["simple"]["macro_f1"]
        assert result.n_test > 0 and result.n_train > result.n_test
    else:
        assert abs(result.scores["random"]["asw_label"] - 0.5) < 0.05  # random embeddings: silhouette ~ 0
    lines = (tmp_path / RESULTS_TABLE).read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["tier"] == "GRAY"


def test_random_clustering_is_at_chance(curated: Project, tmp_path: Path) -> None:
    split_dataset("pbmc-blood", project=curated)
    adata = ad.read_h5ad(curated.curated / "pbmc-blood.h5ad")
    emb = tmp_path / "pca.npy"
    np.save(emb, simple_embedding(adata))
    (tmp_path / "pca.ids.txt").write_text("\n".join(adata.obs_names))
    result = evaluate(dataset="pbmc-blood@curated", task="pbmc-clustering", model="simple-pca", embeddings=emb,
                      results_dir=tmp_path, project=curated)
    assert result.scores["model"] == result.scores["simple"]
    assert abs(result.scores["random"]["ari_kmeans"]) < 0.02 and result.scores["simple"]["ari_kmeans"] > 0.3


def test_red_pairing_is_refused_and_nothing_written(curated: Project, registry: Project, glioma_pca: Path,
                                                   tmp_path: Path, mirror_root: Path, monkeypatch) -> None:
    monkeypatch.setenv("HELDOUT_PROJECT", str(curated.root))
    split_dataset("glioma-tirosh2016", project=curated)
    result = CliRunner().invoke(cli, [
        "evaluate", "--dataset", "glioma-tirosh2016@curated", "--task", "glioma-annotation",
        "--model", "mirror-glioma-finetuned", "--model-card", str(FIXTURES / "mirror-glioma-finetuned.yaml"),
        "--embeddings", str(glioma_pca), "--results", str(tmp_path), "--mirror", str(mirror_root), "--rescan"])
    assert result.exit_code == LeakageRefused.exit_code, result.output
    assert "is RED" in result.output and "task-training corpus 'glioma-labels'" in result.output
    assert not (tmp_path / RESULTS_TABLE).exists()


def test_mismatched_ids_are_named(curated: Project, glioma_pca: Path, tmp_path: Path) -> None:
    frame = pd.read_parquet(glioma_pca)
    split_dataset("glioma-tirosh2016", project=curated)
    cases = {
        "missing": (frame.iloc[3:], r"3 of the dataset's 184 cells are missing \(e\.g\. "),
        "extra": (pd.concat([frame, frame.iloc[:1].rename(index=lambda _: "not-a-cell")]),
                  r"1 ids are not cells of the dataset \(e\.g\. not-a-cell\)"),
        "duplicated": (pd.concat([frame, frame.iloc[:2]]), r"2 cell id\(s\) appear more than once"),
        "nan": (frame.assign(**{"0": np.where(np.arange(len(frame)) == 5, np.nan, frame["0"])}),
                r"1 cells have NaN or infinite values"),
    }
    for name, (bad, message) in cases.items():
        path = tmp_path / f"{name}.parquet"
        bad.to_parquet(path)
        with pytest.raises(EvaluationError, match=message):
            evaluate(dataset="glioma-tirosh2016@curated", task="glioma-annotation", model="m", embeddings=path,
                     results_dir=tmp_path, project=curated)
    np.save(tmp_path / "no_ids.npy", frame.to_numpy())
    with pytest.raises(EvaluationError, match="without cell ids"):
        evaluate(dataset="glioma-tirosh2016@curated", task="glioma-annotation", model="m",
                 embeddings=tmp_path / "no_ids.npy", results_dir=tmp_path, project=curated)


def test_h5ad_input_and_report(curated: Project, glioma_pca: Path, tmp_path: Path, monkeypatch) -> None:
    split_dataset("glioma-tirosh2016", project=curated)
    frame = pd.read_parquet(glioma_pca)
    emb = ad.AnnData(obs=pd.DataFrame(index=frame.index.astype(str)), obsm={"X_model": frame.to_numpy()})
    emb.write_h5ad(tmp_path / "emb.h5ad")
    monkeypatch.setenv("HELDOUT_PROJECT", str(curated.root))
    runner = CliRunner()
    result = runner.invoke(cli, ["evaluate", "--dataset", "glioma-tirosh2016@curated", "--task", "glioma-annotation",
                                 "--model", "pca-h5ad", "--embeddings", str(tmp_path / "emb.h5ad"),
                                 "--obsm-key", "X_model", "--results", str(tmp_path / "res")])
    assert result.exit_code == 0, result.output
    assert "simple baseline" in result.output and "random baseline" in result.output
    report = runner.invoke(cli, ["report", "--results", str(tmp_path / "res"), "--out", str(tmp_path / "r.html")])
    assert report.exit_code == 0, report.output
    assert "pca-h5ad" in (tmp_path / "r.html").read_text()
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    wrong_key = runner.invoke(cli, ["evaluate", "--dataset", "glioma-tirosh2016@curated", "--task",
                                    "glioma-annotation", "--model", "x", "--embeddings", str(tmp_path / "emb.h5ad"),
                                    "--obsm-key", "X_nope"])
    assert wrong_key.exit_code == EvaluationError.exit_code and "available: X_model" in wrong_key.output
