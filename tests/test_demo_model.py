"""The demo's real model: trained from a release, its corpora recorded, released, audited from elsewhere.

This is what `make demo` does, on the session registry (cloned, so other tests' releases are untouched).
The audit must show all four tiers on real pairings, each from evidence, and the recorded corpora must
come back through the release verified.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from heldout._files import sha256_file
from heldout.cli import cli
from heldout.project import Project
from tests.helpers import run_ok


@pytest.fixture(scope="module")
def released(registry: Project, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("demo")
    clone = base / "registry"
    run_ok(base, "git", "clone", "-q", str(registry.root), str(clone))
    run_ok(clone, "dvc", "pull", "-q")
    run_ok(clone, "python", "-m", "heldout.demo.pancreas_typist", "train", "--registry", ".", "--release", "v1",
           "--out", str(base / "model"))
    for corpus, role, file in (("encoder-cells", "pretraining", "pretraining.h5ad"),
                               ("labelled-cells", "task_training", "task_training.h5ad")):
        run_ok(clone, "heldout", "corpus", "record", "--model", "pancreas-typist", "--corpus", corpus, "--role", role,
               str(base / "model" / file))
    run_ok(clone, "python", "-m", "heldout.demo.perturbation_ridge", "train", "--registry", ".", "--release", "v1",
           "--dataset", "norman-2019", "--out", str(base / "perturbation-model"))
    run_ok(clone, "heldout", "corpus", "record", "--model", "perturbation-ridge", "--corpus", "norman-training",
           "--role", "task_training", str(base / "perturbation-model" / "task_training.h5ad"))
    run_ok(clone, "git", "add", "-A")
    run_ok(clone, "git", "commit", "-qm", "pancreas-typist, perturbation-ridge")
    run_ok(clone, "heldout", "release", "v3")
    return clone


def test_demo_audit_shows_every_tier_from_evidence(released: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HELDOUT_CACHE", str(tmp_path / "cache"))  # nothing cached: everything fetched and verified
    monkeypatch.delenv("HELDOUT_PROJECT", raising=False)
    result = CliRunner().invoke(cli, ["audit", "--release", "v3", "--registry", str(released),
                                      "--json", "audit.json", "--report", "audit.md"])
    assert result.exit_code == 0, result.output
    rows = {(r["model"], r["dataset"]): r for r in json.loads(Path("audit.json").read_text())}
    typist = {d: r for (m, d), r in rows.items() if m == "pancreas-typist"}
    assert typist["glioma-tirosh2016"]["tier"] == "YELLOW" and typist["pbmc-blood"]["tier"] == "YELLOW"
    assert typist["baron-pancreas-human"]["tier"] == "RED"
    assert typist["baron-pancreas-human"]["splits"]["test"] == "GREEN"  # the held-out donor was never seen
    assert typist["baron-pancreas-mouse"]["tier"] == typist["mouse-brain-10k"]["tier"] == "GREEN"
    assert rows[("transcriptformer", "pbmc-blood")]["tier"] == "GRAY"
    assert {r["tier"] for r in rows.values()} == {"GREEN", "YELLOW", "RED", "GRAY"}
    red = typist["baron-pancreas-human"]["evidence"][1]
    assert red["corpus"] == "labelled-cells" and len(red["donors"]) == 3 and red["exact_cells"] > 1000
    assert "recorded manifest" in red["reason"]
    assert "### pancreas-typist x baron-pancreas-human: RED" in Path("audit.md").read_text()
    assert rows[("gears-norman", "norman-2019")]["tier"] == "RED"  # task-trained on Norman's perturbations
    ridge = rows[("perturbation-ridge", "norman-2019")]  # decided by perturbation condition: donors are all "na"
    assert ridge["tier"] == "RED" and "18 of the shared datasets' 34 perturbation conditions" in ridge["evidence"][0]["reason"]
    assert ridge["splits"]["validation"] == "RED" and ridge["splits"]["test"] == "RED"  # test holds K562 controls
    assert rows[("perturbation-ridge", "mcfaline-figueroa-2023")]["tier"] == "GREEN"


def test_the_demo_perturbation_model_is_green_on_held_out_conditions(released: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Trained on release v1's Norman training conditions: scored beside the baselines; GEARS is refused."""
    monkeypatch.chdir(released)
    monkeypatch.delenv("HELDOUT_PROJECT", raising=False)
    model = released.parent / "perturbation-model"
    pred = tmp_path / "norman.h5ad"
    run_ok(released, "python", "-m", "heldout.demo.perturbation_ridge", "predict", "--model", str(model),
           "--registry", ".", "--dataset", "norman-2019@v3", "--out", str(pred))
    args = ["evaluate", "--task", "norman-perturbation", "--release", "v3", "--predictions", str(pred),
            "--values", "log1p", "--results", str(tmp_path / "results"), "--workers", "1"]
    result = CliRunner().invoke(cli, [*args, "--model", "perturbation-ridge"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "results" / "results.jsonl").read_text().splitlines()[-1])
    assert record["tier"] == "GREEN" and record["dataset_tiers"] == {"norman-2019": "RED"}
    assert {"control", "mean", "additive", "technical_replicate"} <= set(record["roles"])
    refused = CliRunner().invoke(cli, [*args, "--model", "gears-norman"])
    assert refused.exit_code == 9 and "RED" in refused.output
    report = CliRunner().invoke(cli, ["report", "--results", str(tmp_path / "results"), "--out",
                                      str(tmp_path / "report.html")])
    assert report.exit_code == 0, report.output
    page = (tmp_path / "report.html").read_text()
    assert "norman-perturbation" in page and "technical_replicate" in page and "unseen_single" in page


def test_released_corpora_are_verified_when_pulled(released: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from heldout.pull import materialize_corpora

    monkeypatch.setenv("HELDOUT_CACHE", str(tmp_path / "cache"))
    root = materialize_corpora("v3", released)
    manifest = root / "corpora" / "pancreas-typist" / "labelled-cells" / "manifest.yaml"
    assert manifest.exists() and (manifest.parent / "data" / "donors.parquet").exists()
    donors_sha = sha256_file(manifest.parent / "data" / "donors.parquet")
    [cached] = [p for p in (tmp_path / "cache" / "objects").rglob("*") if p.is_file() and p.name == donors_sha]
    with open(cached, "r+b") as fh:  # corrupt the cached object behind one parquet file
        fh.write(b"corrupt")
    for target in (root / "corpora").rglob("*.parquet"):
        target.unlink()
    again = materialize_corpora("v3", released)  # the corrupt object is fetched again and verified
    assert manifest.exists() and all(p.stat().st_size for p in (again / "corpora").rglob("*.parquet"))
    assert sha256_file(cached) == cached.name  # content-addressed: the object is whole again


def test_the_demo_leaves_its_registry_clean_and_the_next_release_works(released: Path) -> None:
    """Every file heldout writes inside a registry is tracked, ignored by the scaffold, or removed."""
    run_ok(released, "heldout", "audit", "--model", "pancreas-typist")  # reads corpora: writes .verified.json
    assert list((released / "corpora").rglob(".verified.json"))  # the cache exists ...
    assert run_ok(released, "git", "status", "--porcelain", "--untracked-files=all") == ""  # ... and is ignored
    run_ok(released, "heldout", "release", "v4", "--allow-unchanged")
    assert run_ok(released, "git", "status", "--porcelain", "--untracked-files=all") == ""
    assert (released / "registry" / "releases" / "croissant" / "v4" / "glioma-tirosh2016.json").is_file()
