"""Issue 26: published models decided from their own public corpus lists, on the real vendored lists.

The lists are the real files in corpora/lists (scFoundation's Supplementary Data 1 and 2 as accession
extracts, the CELLxGENE Census 2023-05-15 dataset table), recorded with their sha256 and provenance.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from heldout.cards.dataset import SourceIdentifiers
from heldout.cards.model import load_model_card
from heldout.cli import cli
from heldout.corpora.lists import ListCache, _table, load_list
from heldout.errors import ChecksumMismatch, UsageError
from heldout.identifiers import Identifier, IdKind, parse_identifier, parse_identifiers
from heldout.leakage.census_filter import FilterNotUnderstood, evaluate
from heldout.leakage.evidence import EvalData, unresolved
from heldout.leakage.published import decide
from heldout.project import Project

REPO = Path(__file__).resolve().parents[1]
SCF = "corpora/lists/scfoundation/list.yaml"
CENSUS = "corpora/lists/census-2023-05-15/list.yaml"
NORMAN = SourceIdentifiers(dataset_title="Norman 2019 K562 CRISPRa", geo_series=["GSE133344"], pmid=["31395745"])
BARON = SourceIdentifiers(dataset_title="Baron 2016", geo_series=["GSE84133"], pmid=["27667365"],
                          doi=["10.1016/j.cels.2016.08.011"])


def eval_data(identifiers: SourceIdentifiers | None, *, organism: str = "homo_sapiens", n: int = 6,
              obs: pd.DataFrame | None = None, title: str | None = None) -> EvalData:
    title = title or (identifiers.dataset_title if identifiers else "a demo library")
    return EvalData(name="eval", version=None, organism=organism, census_version="2025-11-08",
                    cell_ids=np.array([f"c{i}" for i in range(n)]), dataset_of_cell=np.array(["d1"] * n),
                    donor_of_cell=np.array(["x"] * n), sources=({"dataset_id": "d1", "dataset_title": title},),
                    signatures=None, universe=None, identifiers=(identifiers,) if identifiers else (),
                    obs_loader=(lambda: obs) if obs is not None else None)


def decided(model: str, data: EvalData, corpus: int = 0) -> object:
    card = load_model_card(model, REPO / "registry")
    c = card.corpora[corpus]
    return decide(c, card, data, unresolved(c, "nothing listed on the card"), ListCache(REPO))


# ------------------------------------------------------------------ identifiers, on the real files


def test_every_project_id_of_supplementary_data_1_parses_as_its_source_writes_it() -> None:
    projects = pd.unique(pd.Series(_table(REPO / "corpora/lists/scfoundation/data1.csv").column("project_ID")))
    assert len(projects) == 656
    kinds = pd.Series([parse_identifier(p).kind.value for p in projects]).value_counts().to_dict()
    assert kinds["geo_series"] == 444 + 130  # GEO-GSE and DISCO-GSE series
    assert kinds["hca_project"] == 57 and kinds["other"] == 1  # `fetal_immune` cannot be matched to anything
    assert parse_identifier("GEO-GSE133344") == Identifier(IdKind.geo_series, "GSE133344")
    assert parse_identifier("DISCO-E-MTAB-9492") == Identifier(IdKind.arrayexpress, "E-MTAB-9492")
    assert parse_identifier("AE-E-MTAB-11536") == Identifier(IdKind.arrayexpress, "E-MTAB-11536")
    assert parse_identifier("GEO-GSM3906020") == Identifier(IdKind.geo_sample, "GSM3906020")
    refs = {r["Project ID"]: r["pubmed ID"] for r in _table(REPO / "corpora/lists/scfoundation/data2.csv")}
    assert parse_identifiers(refs["GEO-GSE133344"]) == [Identifier(IdKind.pmid, "31395745")]
    assert parse_identifiers(refs["GEO-GSE138709"]) == [Identifier(IdKind.doi, "10.1016/j.jhep.2020.05.039")]
    multi = [r for r in refs.values() if "||" in r]
    assert multi and all(len(parse_identifiers(r)) >= 2 for r in multi)
    assert parse_identifiers("31067475 || 33521016") == [Identifier(IdKind.pmid, "31067475"),
                                                         Identifier(IdKind.pmid, "33521016")]
    assert parse_identifier("https://doi.org/10.1126/Science.AAX4438") == Identifier(IdKind.doi,
                                                                                    "10.1126/science.aax4438")


@given(st.sampled_from(["GSE", "GSM", "E-MTAB-", "SRP", "PRJNA", ""]), st.integers(1, 10**8),
       st.sampled_from(["", "GEO-", "DISCO-", "AE-", "PMID:"]))
def test_normalising_is_idempotent(prefix: str, number: int, source_prefix: str) -> None:
    key = parse_identifier(f"{source_prefix}{prefix}{number}")
    assert parse_identifier(str(key)) == key


# ------------------------------------------------------------------ recorded lists


def test_the_vendored_lists_are_recorded_pinned_and_counted() -> None:
    scf = load_list(REPO, SCF)
    files = {f.path: f for f in scf.record.files}
    assert files["data1.csv"].sha256 == "c0821ab29e94d9a320073846177f717b12108e3d23f0f04d8b2d64fb1361e22d"
    assert files["data2.csv"].sha256 == "014671b8b3264232beeef14d63f8bb8c5e32f35c4d61c1fe47840c07e21dd6e6"
    assert (files["data1.csv"].rows, files["data2.csv"].rows) == (10_747, 522)
    assert "877974525c13310c7817e84d6105821625ce8e54" in files["data1.csv"].source and scf.record.complete
    assert scf.record.counts["cells"] == 55_040_785 and scf.record.counts["projects with references"] == 361
    census = load_list(REPO, CENSUS)
    assert census.record.census_version == "2023-05-15" and census.record.counts == {
        "datasets": 562, "collections": 126, "datasets without collection_doi": 40}
    assert load_model_card("scfoundation", REPO / "registry").corpora[0].accession_list_sha256 == \
        __import__("heldout._files", fromlist=["x"]).sha256_file(REPO / SCF)


def test_a_changed_list_file_or_record_is_refused(tmp_path: Path) -> None:
    shutil.copytree(REPO / "corpora/lists", tmp_path / "corpora/lists")
    data = tmp_path / "corpora/lists/scfoundation/data1.csv"
    data.write_text(data.read_text().replace("GEO-GSE133344", "GEO-GSE000001"))
    with pytest.raises(ChecksumMismatch, match="does not match its sha256"):
        load_list(tmp_path, SCF)
    with pytest.raises(ChecksumMismatch, match="does not match the sha256 the model card pins"):
        load_list(REPO, SCF, sha256="0" * 64)


def test_record_list_cli_records_once_and_refuses_to_overwrite(project: Project, tmp_path: Path) -> None:
    src = REPO / "corpora/lists/scfoundation"
    args = ["corpus", "record-list", "scf-copy", "--complete", "--file", f"samples:{src / 'data1.csv'}",
            "--source", "corpus-checker@877974525c13310c7817e84d6105821625ce8e54:extracts/scfoundation/data1.csv",
            "--column", "samples.project=project_ID", "--column", "samples.sample=sample_ID",
            "--column", "samples.cells=cell_number_reserved", "--description", "d", "--citation", "c",
            "--license", "l"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "10,747" in result.output and "55,040,785" in result.output
    again = CliRunner().invoke(cli, args)
    assert again.exit_code != 0 and "recorded lists are immutable" in again.output
    bad = CliRunner().invoke(cli, [*args[:-12], "--description", "d", "--citation", "c", "--license", "l",
                                   "--replace"])
    assert bad.exit_code != 0 and "needs columns" in bad.output and "project_ID" in bad.output
    assert load_list(project.root, "corpora/lists/scf-copy/list.yaml").record.counts["samples"] == 10_747  # intact
    fresh = CliRunner().invoke(cli, [*args[:2], "half-done", *args[3:-12], "--description", "d", "--citation", "c",
                                     "--license", "l"])
    assert fresh.exit_code != 0 and not (project.root / "corpora/lists/half-done").exists()  # nothing written


# ------------------------------------------------------------------ evidence rules


def test_accession_list_series_and_pmid_both_found_is_seen_with_samples_and_cells() -> None:
    ev = decided("scfoundation", eval_data(NORMAN))
    assert ev.status == "overlap" and ev.cells == 6
    assert "GSE133344 and PMID:31395745 are both in the list (8 samples, 125,081 cells reserved)" in ev.reason
    assert any("GSE133344 -> data1.csv (sha256 c0821ab29e94...)" in e and "GEO-GSM3906020" in e for e in ev.examples)
    aido = decided("aido-cell", eval_data(NORMAN))
    assert aido.status == "overlap" and "the list of scfoundation's card, taken by reference" in aido.reason


def test_one_matching_key_or_no_key_is_inconclusive_and_absence_from_the_complete_list_is_clean() -> None:
    only_series = SourceIdentifiers(dataset_title="x", geo_series=["GSE133344"], pmid=["1"])
    ev = decided("scfoundation", eval_data(only_series))
    assert ev.status == "unresolved" and "only GSE133344 is in the list" in ev.reason
    ev = decided("scfoundation", eval_data(None))
    assert ev.status == "unresolved" and "the card gives no `identifiers:` entry" in ev.reason
    ev = decided("scfoundation", eval_data(BARON))
    assert ev.status == "clean" and "none of GSE84133, PMID:27667365 is in the complete list" in ev.reason
    pmid_only = SourceIdentifiers(dataset_title="x", pmid=["27667365"])
    assert decided("scfoundation", eval_data(pmid_only)).status == "unresolved"  # projects are keyed by series


def test_organism_rule() -> None:
    for model in ("scfoundation", "geneformer-v1", "aido-cell", "scgpt-whole-human"):
        ev = decided(model, eval_data(BARON, organism="mus_musculus"))
        assert ev.status == "clean" and "organism: the corpus holds homo_sapiens cells only" in ev.reason
    assert decided("geneformer-v1", eval_data(BARON)).status == "unresolved"  # human cells, partial list


def test_filter_and_release_table_rules() -> None:
    glioma = pd.DataFrame({"suspension_type": ["cell"] * 6, "disease": ["oligodendroglioma"] * 6})
    ev = decided("scgpt-whole-human", eval_data(BARON, obs=glioma))
    assert ev.status == "clean" and "no eval cell passes the corpus filter" in ev.reason
    assert "the build 2023-05-08 the model used is gone; the LTS 2023-05-15 stands in" in ev.reason
    normal = pd.DataFrame({"suspension_type": ["cell"] * 6, "disease": ["normal"] * 6})
    ev = decided("scgpt-whole-human", eval_data(BARON, obs=normal))
    assert ev.status == "clean" and "'Baron 2016' is not in Census 2023-05-15" in ev.reason
    lupus = SourceIdentifiers(dataset_title="lupus PBMCs", doi=["10.1126/science.abf1970"])
    ev = decided("scgpt-whole-human", eval_data(lupus, obs=normal))
    assert ev.status == "overlap" and "is in Census 2023-05-15" in ev.reason and "possible exposure" in ev.reason
    assert any("datasets_2023-05-15.csv (sha256 a30061e73238...)" in e for e in ev.examples)
    ev = decided("scgpt-whole-human", eval_data(None, obs=normal))
    assert ev.status == "unresolved" and "has no DOI or CELLxGENE id" in ev.reason
    ev = decided("scgpt-whole-human", eval_data(BARON))  # no metadata: nothing to apply the filter to
    assert ev.status == "unresolved" and "Census metadata are not available" in ev.reason


def test_the_filter_is_three_valued_and_never_executed() -> None:
    obs = pd.DataFrame({"nnz": [150, 250], "is_primary_data": [True, False], "disease": ["normal", "normal"]})
    truth = evaluate("is_primary_data == True and nnz >= 200", obs)
    assert truth.true.tolist() == [False, False] and truth.false.tolist() == [False, True]  # 150 may be more
    truth = evaluate("nnz < 200", obs)
    assert truth.false.tolist() == [False, True]
    assert evaluate("tissue_general == 'blood'", obs).false.tolist() == [False, False]  # unknown column
    for hostile in ("__import__('os').system('id')", "disease.__class__ == 1", "(lambda: 1)() == 1"):
        with pytest.raises(FilterNotUnderstood):
            evaluate(hostile, obs)


# ------------------------------------------------------------------ the audit grid and lookup


def test_the_audit_decides_published_models_on_the_bundled_datasets(curated: Project) -> None:
    from heldout.leakage.audit import audit_project

    results = {(r.model, r.dataset): r for r in audit_project(project=curated)}
    mouse = ("mouse-brain-10k", "baron-pancreas-mouse")
    for model in ("geneformer-v1", "aido-cell", "scgpt-whole-human", "scfoundation", "geneformer-v2"):
        for dataset in mouse:
            assert results[(model, dataset)].tier.value == "GREEN", (model, dataset, results[(model, dataset)].reason)
    for dataset in ("glioma-tirosh2016", "baron-pancreas-human"):  # a GEO series and a PMID each
        r = results[("scfoundation", dataset)]
        assert r.tier.value == "GREEN" and "is in the complete list" in r.evidence[0].reason
        assert results[("aido-cell", dataset)].tier.value == "GREEN"
    glioma = results[("scgpt-whole-human", "glioma-tirosh2016")]
    assert glioma.tier.value == "GREEN" and "disease = 'oligodendroglioma'" in glioma.evidence[0].reason
    norman = {m: r for (m, d), r in results.items() if d == "norman-2019"}  # where the two issues meet
    assert norman["gears-norman"].tier.value == norman["scgpt-perturbation-norman"].tier.value == "RED"
    assert norman["scfoundation"].tier.value == "YELLOW" and norman["aido-cell"].tier.value == "YELLOW"
    assert "GSE133344 and PMID:31395745 are both in the list (8 samples, 125,081 cells reserved)" in \
        norman["scfoundation"].evidence[0].reason
    assert norman["gears-adamson"].tier.value == "GREEN"  # trained on another screen
    assert results[("gears-norman", "mcfaline-figueroa-2023")].tier.value == "GREEN"
    gray = [r for r in results.values() if r.tier.value == "GRAY"]
    assert gray and all("would need to publish" in r.reason or "has no" in r.reason or "no recorded" in r.reason
                        for r in gray), [r.reason for r in gray if "would need" not in r.reason][:3]


def test_lookup_names_scfoundation_with_samples_and_cells(project: Project) -> None:
    result = CliRunner().invoke(cli, ["lookup", "GSE133344", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    verdicts = {m["model"]: m["verdict"] for m in data["models"]}
    assert verdicts["scfoundation"] == "seen" and verdicts["aido-cell"] == "seen"
    assert verdicts["transcriptformer"] == "inconclusive"
    [row] = [c for m in data["models"] if m["model"] == "scfoundation" for c in m["corpora"]]
    assert "8 samples" in row["reason"] and "125,081 cells reserved" in row["reason"] and "PMID:31395745" in \
        row["reason"] and "data1.csv (sha256 c0821ab29e94...)" in row["evidence"]
    absent = json.loads(CliRunner().invoke(cli, ["lookup", "GSE84133", "--json"]).output)
    assert {m["model"]: m["verdict"] for m in absent["models"]}["scfoundation"] == "not seen"
    bad = CliRunner().invoke(cli, ["lookup", "not-an-id"])
    assert bad.exit_code == UsageError.exit_code and "is not an identifier heldout knows" in bad.output
