"""The leakage gate holds: no card file, results file or card field can change a registry model's tier."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from heldout.cards.model import load_model_card
from heldout.cli import cli
from heldout.errors import CardError, LeakageRefused, UsageError
from heldout.evaluation.simple_baseline import simple_embedding
from heldout.evaluation.report import read_records
from heldout.evaluation.run import RESULTS_TABLE, Recheck, recheck_tiers
from heldout.project import Project
from heldout.pull import pull

FIXTURES = Path(__file__).parent / "data" / "models"
REPO = Path(__file__).resolve().parents[1]
GRAY_REGISTRY_MODEL = "geneformer-cellxgene-classifier"  # GRAY: prose pretraining corpus


@pytest.fixture(scope="module")
def embeddings(registry: Project, tmp_path_factory: pytest.TempPathFactory) -> Path:
    adata = ad.read_h5ad(pull("glioma-tirosh2016@v1", registry=registry.root).path)
    out = tmp_path_factory.mktemp("gate") / "pca.parquet"
    pd.DataFrame(simple_embedding(adata, seed=0), index=pd.Index(adata.obs_names, name="observation_joinid")
                 ).rename(columns=str).to_parquet(out)
    return out


def _green_card(tmp_path: Path, name: str) -> Path:
    """A card claiming a model was trained on nothing that could overlap: GREEN if believed."""
    card = {"schema_version": 1, "name": name, "display_name": "claims to be clean", "family": "x",
            "variants": ["v"], "organisms": ["homo_sapiens"],
            "corpora": [{"role": "pretraining", "name": "nothing-relevant", "documented_as": "dataset_ids",
                         "dataset_ids": ["00000000-0000-0000-0000-000000000000"],
                         "sources": [{"kind": "paper", "ref": "self-declared"}]}]}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(card))
    return path


def _evaluate(registry: Project, embeddings: Path, results: Path, *extra: str) -> object:
    return CliRunner().invoke(cli, ["evaluate", "--dataset", "glioma-tirosh2016@v1", "--task", "glioma-annotation",
                                    "--embeddings", str(embeddings), "--registry", str(registry.root),
                                    "--results", str(results), *extra])


def test_registry_model_cannot_be_given_another_card(registry: Project, embeddings: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's bypass: a GRAY registry model plus a GREEN card file must not come out GREEN."""
    monkeypatch.setenv("HELDOUT_PROJECT", str(REPO))
    green = _green_card(tmp_path, GRAY_REGISTRY_MODEL)
    result = _evaluate(registry, embeddings, tmp_path / "res", "--model", GRAY_REGISTRY_MODEL,
                       "--model-card", str(green))
    assert result.exit_code == UsageError.exit_code, result.output
    assert "its leakage tier comes from that card only" in result.output
    assert not (tmp_path / "res").exists()  # nothing recorded


def test_card_named_for_another_model_is_refused(registry: Project, embeddings: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELDOUT_PROJECT", str(REPO))
    mine = _green_card(tmp_path, "my-model")
    result = _evaluate(registry, embeddings, tmp_path / "res", "--model", "someone-else", "--model-card", str(mine))
    assert result.exit_code == UsageError.exit_code and "describes model 'my-model', not 'someone-else'" in result.output
    # a file named innocently but claiming a registry model's name inside
    sneaky = _green_card(tmp_path, GRAY_REGISTRY_MODEL).rename(tmp_path / "innocent.yaml")
    result = _evaluate(registry, embeddings, tmp_path / "res", "--model", GRAY_REGISTRY_MODEL,
                       "--model-card", str(sneaky))
    assert result.exit_code == UsageError.exit_code
    assert not (tmp_path / "res").exists()


def test_user_card_is_audited_under_its_own_name_and_marked(registry: Project, embeddings: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELDOUT_PROJECT", str(REPO))
    mine = _green_card(tmp_path, "my-model")
    result = _evaluate(registry, embeddings, tmp_path / "res", "--model", "my-model", "--model-card", str(mine))
    assert result.exit_code == 0, result.output
    assert "(user-supplied card)" in result.output
    [record] = [json.loads(line) for line in (tmp_path / "res" / RESULTS_TABLE).read_text().splitlines()]
    assert record["model_card_source"] == "user" and record["model_card"]["name"] == "my-model"
    report = CliRunner().invoke(cli, ["report", "--results", str(tmp_path / "res"), "--registry", str(registry.root)])
    assert report.exit_code == 0, report.output
    assert "(user card)" in _table_text(report.output)


def test_audit_refuses_a_user_card_named_like_a_registry_model(curated: Project, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELDOUT_PROJECT", str(curated.root))
    result = CliRunner().invoke(cli, ["audit", "--manifest", str(_green_card(tmp_path, "scvi-census"))])
    assert result.exit_code == UsageError.exit_code and "belongs to a registry model" in result.output


def test_a_tier_written_in_a_card_is_refused(tmp_path: Path) -> None:
    path = _green_card(tmp_path, "my-model")
    card = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**card, "tier": "GREEN"}))
    with pytest.raises(CardError, match="tier: unknown field"):
        load_model_card(path, REPO / "registry")


def test_report_recomputes_tiers_and_ignores_an_edited_results_file(registry: Project, embeddings: Path,
                                                                    tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HELDOUT_PROJECT", str(REPO))
    assert _evaluate(registry, embeddings, tmp_path / "res", "--model", GRAY_REGISTRY_MODEL).exit_code == 0
    table = tmp_path / "res" / RESULTS_TABLE
    [record] = [json.loads(line) for line in table.read_text().splitlines()]
    assert record["tier"] == "GRAY" and record["model_card_source"] == "registry"
    record.update(tier="GREEN", gray_flag=False, model_card_source="user",
                  model_card=yaml.safe_load(_green_card(tmp_path, GRAY_REGISTRY_MODEL).read_text()))
    table.write_text(json.dumps(record) + "\n")  # a submitter edits the file to claim GREEN
    tiers = recheck_tiers(read_records(table), project=Project(REPO), registry=registry.root)
    assert tiers == {(GRAY_REGISTRY_MODEL, "glioma-tirosh2016@v1", "glioma-annotation"): Recheck("GRAY", "registry")}
    report = CliRunner().invoke(cli, ["report", "--results", str(tmp_path / "res"), "--registry", str(registry.root)])
    assert report.exit_code == 0, report.output
    cells = _table_text(report.output)
    assert "GRAY (file claimed GREEN)" in cells and "GREEN" not in cells.replace("claimed GREEN", "")
    assert "user card" not in cells  # the file's claim of a user card is not believed either


def _table_text(output: str) -> str:
    """The words of a rich table, with borders and line folds removed."""
    return " ".join("".join(ch if ch.isalnum() or ch in "()-_.@ " else " " for ch in output).split())


def test_red_is_refused_for_a_user_card_too(curated: Project, registry: Project, embeddings: Path, tmp_path: Path,
                                            mirror_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELDOUT_PROJECT", str(curated.root))
    result = CliRunner().invoke(cli, [
        "evaluate", "--dataset", "glioma-tirosh2016@v1", "--task", "glioma-annotation",
        "--model", "mirror-glioma-finetuned", "--model-card", str(FIXTURES / "mirror-glioma-finetuned.yaml"),
        "--embeddings", str(embeddings), "--registry", str(registry.root), "--results", str(tmp_path / "res"),
        "--mirror", str(mirror_root), "--rescan"])
    assert result.exit_code == LeakageRefused.exit_code, result.output
    assert "(user-supplied card)" in result.output and "is RED" in result.output
    assert not (tmp_path / "res").exists()
