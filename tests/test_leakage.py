"""Leakage tiers: every tier, every documentation kind, content-level duplicates, Dask path."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

from heldout.cards.model import ModelCard, load_model_card
from heldout.cli import cli
from heldout.leakage.audit import audit, eval_from_curated, markdown_report
from heldout.leakage.evidence import FingerprintMatcher
from heldout.leakage.fingerprint import cell_fingerprints, gene_keys
from heldout.leakage.tiers import Tier
from heldout.mirror import sources
from heldout.mirror.assemble import dataset_id_for
from heldout.mirror.build import build_mirror
from heldout.project import Project

FIXTURES = Path(__file__).parent / "data" / "models"
REPO = Path(__file__).resolve().parents[1]


def _model(name: str) -> ModelCard:
    return load_model_card(FIXTURES / f"{name}.yaml", REPO / "registry")


@pytest.fixture(scope="module")
def evals(curated: Project) -> dict:
    return {n: eval_from_curated(curated, n) for n in ("glioma-tirosh2016", "pbmc-blood", "mouse-brain-10k")}


def _tiers(model: ModelCard, evals: dict, mirror_root: Path) -> dict[str, Tier]:
    return {r.dataset: r.tier for r in audit([model], list(evals.values()), mirror_root=mirror_root)}


def test_census_filter_yellow_and_green_with_three_levels(evals: dict, mirror_root: Path) -> None:
    [glioma, blood, mouse] = audit([_model("mirror-brain-pretrained")], list(evals.values()), mirror_root=mirror_root)
    assert glioma.tier is Tier.YELLOW
    [ev] = glioma.evidence
    assert ev.dataset_ids == (dataset_id_for("oligodendroglioma-tirosh2016"),)
    assert len(ev.donors) == 5 and ev.cells == 184 and ev.cell_fraction == 1.0
    assert blood.tier is Tier.GREEN and blood.evidence[0].cells == 0
    assert mouse.tier is Tier.GREEN and "different Census experiments" in mouse.evidence[0].reason


def test_task_training_overlap_is_red(evals: dict, mirror_root: Path) -> None:
    tiers = _tiers(_model("mirror-glioma-finetuned"), evals, mirror_root)
    assert tiers["glioma-tirosh2016"] is Tier.RED
    assert tiers["pbmc-blood"] is Tier.YELLOW  # pretrained on blood, not task-trained on it


def test_dataset_id_list(evals: dict, mirror_root: Path) -> None:
    tiers = _tiers(_model("listed-datasets"), evals, mirror_root)
    assert tiers == {"glioma-tirosh2016": Tier.YELLOW, "pbmc-blood": Tier.GREEN, "mouse-brain-10k": Tier.GREEN}


def test_accessions_complete_and_incomplete(evals: dict, mirror_root: Path) -> None:
    model = _model("accession-list")
    assert _tiers(model, evals, mirror_root) == {"glioma-tirosh2016": Tier.YELLOW, "pbmc-blood": Tier.GREEN,
                                                 "mouse-brain-10k": Tier.GREEN}
    partial = model.model_copy(update={"corpora": [model.corpora[0].model_copy(update={"complete": False})]})
    results = audit([partial], list(evals.values()), mirror_root=mirror_root)
    assert [r.tier for r in results] == [Tier.YELLOW, Tier.GRAY, Tier.GRAY]
    assert "incomplete" in results[1].reason


def test_date_cutoff_and_prose(evals: dict, mirror_root: Path) -> None:
    model = _model("cutoff-model")
    assert set(_tiers(model, evals, mirror_root).values()) == {Tier.YELLOW}
    early = model.model_copy(update={"corpora": [model.corpora[0].model_copy(update={"cutoff_date": "2020-01-01"})]})
    result = audit([early], [evals["pbmc-blood"]], mirror_root=mirror_root)[0]
    assert result.tier is Tier.GRAY and "after the cut-off 2020-01-01" in result.reason
    prose = load_model_card("transcriptformer", REPO / "registry")
    result = audit([prose], [evals["pbmc-blood"]], mirror_root=mirror_root)[0]
    assert result.tier is Tier.GRAY and "prose only" in result.reason


def test_unresolvable_claims_are_gray_with_reason(evals: dict, mirror_root: Path) -> None:
    model = _model("mirror-brain-pretrained")
    corpus = model.corpora[0]
    missing = corpus.model_copy(update={"census": corpus.census.model_copy(update={"version": "2023-05-15"})})
    result = audit([model.model_copy(update={"corpora": [missing]})], [evals["glioma-tirosh2016"]],
                   mirror_root=mirror_root)[0]
    assert result.tier is Tier.GRAY
    assert "Unknown mirror Census version '2023-05-15'" in result.reason
    # the shipped real cards point at the real Census: offline they can never be GREEN
    real = load_model_card("scvi-census", REPO / "registry")
    assert audit([real], [evals["glioma-tirosh2016"]], mirror_root=mirror_root)[0].tier is Tier.GRAY


def test_republished_duplicate_caught_by_content(evals: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same cells under a new dataset id, new donor names, non-primary: ids miss it, content does not."""

    def republished() -> sources.SourceDataset:
        ds = sources.load_oligodendroglioma()
        keep = (ds.obs["donor_id"] == "Tirosh2016-MGH53").to_numpy()
        obs = ds.obs[keep].reset_index(drop=True)
        obs["donor_id"] = "patient-53"
        obs["barcode"] = "republished-" + obs["barcode"]
        return replace(ds, key="glioma-republished", title="Re-published MGH53 cells", counts=ds.counts[keep],
                       obs=obs, primary=False)

    monkeypatch.setitem(sources.SOURCES, "glioma-republished", republished)
    root = tmp_path / "mirror2"
    build_mirror(root, version="2026-01-01", sources=["glioma-republished"], write_h5ads=False)
    model = _model("mirror-brain-pretrained")
    corpus = model.corpora[0]
    census = corpus.census.model_copy(update={"version": "2026-01-01", "obs_value_filter": "is_primary_data == False"})
    model = model.model_copy(update={"corpora": [corpus.model_copy(update={"census": census})]})
    [result] = audit([model], [evals["glioma-tirosh2016"]], mirror_root=root)
    [ev] = result.evidence
    assert ev.dataset_ids == () and ev.donors == ()
    assert ev.cells == 57 and result.tier is Tier.YELLOW


def test_fingerprints_ignore_gene_order_and_zeros() -> None:
    keys = gene_keys(["ENSG00000000001", "ENSG00000000002", "ENSG00000000003"])
    x = sp.csr_matrix(np.array([[1, 0, 5], [1, 0, 5], [5, 0, 1], [0, 0, 0]], dtype=np.float32))
    fp = cell_fingerprints(x, keys)
    assert (fp[0] == fp[1]).all() and not (fp[0] == fp[2]).all()
    shuffled = cell_fingerprints(sp.csr_matrix(np.array([[5, 1]], dtype=np.float32)), keys[[2, 0]])
    assert (shuffled[0] == fp[0]).all()
    assert FingerprintMatcher(fp[:1]).matches(fp[1:]).tolist() == [0]


def test_partitioned_overlap_on_a_local_dask_cluster(evals: dict, mirror_root: Path) -> None:
    from dask.distributed import Client, LocalCluster

    from heldout.leakage.distributed import partitioned_overlap

    glioma = evals["glioma-tirosh2016"].fingerprints
    pbmc = evals["pbmc-blood"].fingerprints
    probe = np.concatenate([glioma, pbmc])
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        found = partitioned_overlap("2025-11-08", source="mirror", organism="homo_sapiens",
                                    obs_filter="tissue == 'brain'", eval_fps=probe, client=client,
                                    partition_cells=500, mirror_root=mirror_root)
    assert found[: len(glioma)].all() and not found[len(glioma):].any()


def test_audit_cli_outputs(curated: Project, mirror_root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HELDOUT_PROJECT", str(curated.root))
    result = CliRunner().invoke(cli, ["audit", "--manifest", str(FIXTURES / "mirror-glioma-finetuned.yaml"),
                                      "--mirror", str(mirror_root), "--json", str(tmp_path / "a.json"),
                                      "--report", str(tmp_path / "a.md")])
    assert result.exit_code == 0, result.output
    assert "RED" in result.output and "YELLOW" in result.output
    data = json.loads((tmp_path / "a.json").read_text())
    assert {d["tier"] for d in data} == {"RED", "YELLOW", "GREEN"}
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    assert "## Evidence per corpus" in (tmp_path / "a.md").read_text()


def test_markdown_report_for_real_cards(evals: dict, mirror_root: Path, tmp_path: Path) -> None:
    cards = [load_model_card(n, REPO / "registry") for n in ("scgpt-whole-human", "geneformer-v1")]
    results = audit(cards, list(evals.values()), mirror_root=mirror_root)
    markdown_report(results, tmp_path / "r.md")
    text = (tmp_path / "r.md").read_text()
    assert "scgpt-whole-human" in text and "bowang-lab/scGPT" in text
