"""Leakage tiers from recorded corpora: every documentation kind, per-split tiers, content evidence on real cells."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import anndata as ad
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from heldout.cards.model import ModelCard, load_model_card
from heldout.cli import cli
from heldout.corpora.manifest import read_manifest
from heldout.corpora.model_corpora import record_model_corpora
from heldout.curation import artifact_paths, curate
from heldout.leakage.audit import audit, eval_from_curated, markdown_report
from heldout.leakage.fingerprint import (
    MIN_GENES,
    band_keys,
    cell_fingerprints,
    gene_keys,
    signatures,
)
from heldout.leakage.matching import EvalIndex, match_corpus
from heldout.leakage.tiers import Tier
from heldout.mirror import sources
from heldout.mirror.assemble import dataset_id_for
from heldout.mirror.build import build_mirror
from heldout.project import Project
from heldout.splits import split_dataset
from tests.conftest import make_project

FIXTURES = Path(__file__).parent / "data" / "models"
REPO = Path(__file__).resolve().parents[1]
EVAL_NAMES = ("glioma-tirosh2016", "pbmc-blood", "mouse-brain-10k", "baron-pancreas-human")


@pytest.fixture(scope="module")
def leak(tmp_path_factory: pytest.TempPathFactory, mirror_root: Path) -> Project:
    """A project with the fixture model cards, their Census corpora recorded, and every eval set curated."""
    project = make_project(tmp_path_factory.mktemp("leak"))
    for card in FIXTURES.glob("*.yaml"):
        shutil.copy(card, project.registry / "models" / card.name)
    for name in EVAL_NAMES:
        curate(name, project=project, mirror_root=mirror_root, progress=False)
        split_dataset(name, project=project)
    for model in ("mirror-brain-pretrained", "mirror-glioma-finetuned"):
        record_model_corpora(model, project=project, mirror_root=mirror_root, partition_cells=1500)
    return project


@pytest.fixture(scope="module")
def evals(leak: Project) -> dict:
    return {n: eval_from_curated(leak, n) for n in EVAL_NAMES}


def _card(project: Project, name: str) -> ModelCard:
    return load_model_card(name, project.registry)


def _tiers(project: Project, model: str, evals: dict, mirror_root: Path, **kw: object) -> dict[str, Tier]:
    results = audit([_card(project, model)], list(evals.values()), mirror_root=mirror_root,
                    project_root=project.root, **kw)
    return {r.dataset: r.tier for r in results}


def test_recorded_census_corpus_decides_with_three_levels(leak: Project, evals: dict, mirror_root: Path) -> None:
    glioma, blood, mouse, baron = audit([_card(leak, "mirror-brain-pretrained")], list(evals.values()),
                                        mirror_root=mirror_root, project_root=leak.root)
    assert glioma.tier is Tier.YELLOW and blood.tier is Tier.GREEN and baron.tier is Tier.GREEN
    assert mouse.tier is Tier.GREEN
    [ev] = glioma.evidence
    assert ev.dataset_ids == (dataset_id_for("oligodendroglioma-tirosh2016"),)
    assert len(ev.donors) == 5 and ev.exact_cells == 184 and ev.cells == 184
    assert "recorded manifest" in ev.reason and ev.levels["exact"] == "checked"
    assert glioma.splits == {"train": "YELLOW", "validation": "YELLOW", "test": "YELLOW"}


def test_task_training_overlap_is_red(leak: Project, evals: dict, mirror_root: Path) -> None:
    tiers = _tiers(leak, "mirror-glioma-finetuned", evals, mirror_root)
    assert tiers["glioma-tirosh2016"] is Tier.RED
    assert tiers["pbmc-blood"] is Tier.YELLOW and tiers["baron-pancreas-human"] is Tier.YELLOW
    assert tiers["mouse-brain-10k"] is Tier.GREEN  # a human corpus has no mouse cells


def test_unrecorded_census_corpus_is_gray_unless_rescanned(leak: Project, evals: dict, mirror_root: Path) -> None:
    card = _card(leak, "mirror-brain-pretrained")
    bare = card.model_copy(update={"corpora": [c.model_copy(update={"manifest": None, "manifest_sha256": None})
                                               for c in card.corpora]})
    [result] = audit([bare], [evals["glioma-tirosh2016"]], mirror_root=mirror_root, project_root=leak.root)
    assert result.tier is Tier.GRAY and "not recorded" in result.reason and "--rescan" in result.reason
    [live] = audit([bare], [evals["glioma-tirosh2016"]], mirror_root=mirror_root, project_root=leak.root, rescan=True)
    [recorded] = audit([card], [evals["glioma-tirosh2016"]], mirror_root=mirror_root, project_root=leak.root)
    assert live.tier is recorded.tier is Tier.YELLOW
    assert (live.evidence[0].seen == recorded.evidence[0].seen).all() and "live scan" in live.evidence[0].reason


def test_a_changed_manifest_or_definition_is_gray(leak: Project, evals: dict, mirror_root: Path,
                                                  tmp_path: Path) -> None:
    card = _card(leak, "mirror-brain-pretrained")
    corpus = card.corpora[0]
    tampered = corpus.model_copy(update={"manifest_sha256": "0" * 64})
    [r1] = audit([card.model_copy(update={"corpora": [tampered]})], [evals["glioma-tirosh2016"]],
                 mirror_root=mirror_root, project_root=leak.root)
    assert r1.tier is Tier.GRAY and "does not match the sha256 the model card pins" in r1.reason
    census = corpus.census.model_copy(update={"obs_value_filter": "tissue == 'blood'"})
    stale = corpus.model_copy(update={"census": census})
    [r2] = audit([card.model_copy(update={"corpora": [stale]})], [evals["glioma-tirosh2016"]],
                 mirror_root=mirror_root, project_root=leak.root)
    assert r2.tier is Tier.GRAY and "stale manifest" in r2.reason
    # a data file edited after recording is caught by its sha256
    copy = tmp_path / "copy"
    shutil.copytree(leak.root / "corpora", copy / "corpora")
    donors = next((copy / "corpora" / "mirror-brain-pretrained").rglob("donors.parquet"))
    donors.write_bytes(donors.read_bytes()[:-8] + b"tampered")
    [r3] = audit([card], [evals["glioma-tirosh2016"]], mirror_root=mirror_root, project_root=copy)
    assert r3.tier is Tier.GRAY and "sha256" in r3.reason


def test_list_kinds_cutoff_and_prose(leak: Project, evals: dict, mirror_root: Path) -> None:
    for model, expected in (("listed-datasets", Tier.YELLOW), ("accession-list", Tier.YELLOW)):
        tiers = _tiers(leak, model, evals, mirror_root)
        assert tiers["glioma-tirosh2016"] is expected and tiers["pbmc-blood"] is Tier.GREEN
    partial = _card(leak, "accession-list")
    partial = partial.model_copy(update={"corpora": [partial.corpora[0].model_copy(update={"complete": False})]})
    results = audit([partial], [evals["pbmc-blood"]], mirror_root=mirror_root, project_root=leak.root)
    assert results[0].tier is Tier.GRAY and "incomplete" in results[0].reason
    assert set(_tiers(leak, "cutoff-model", evals, mirror_root).values()) == {Tier.YELLOW}
    prose = load_model_card("transcriptformer", REPO / "registry")
    result = audit([prose], [evals["pbmc-blood"]], mirror_root=mirror_root, project_root=leak.root)[0]
    assert result.tier is Tier.GRAY and "prose only" in result.reason
    real = load_model_card("scvi-census", REPO / "registry")  # real Census, not recorded: never GREEN offline
    assert audit([real], [evals["glioma-tirosh2016"]], mirror_root=mirror_root, project_root=leak.root,
                 rescan=True)[0].tier is Tier.GRAY


def test_training_files_recorded_give_red_for_the_dataset_and_green_for_held_out_donors(
        leak: Project, evals: dict, mirror_root: Path, tmp_path: Path) -> None:
    """A classifier trained on the train+validation donors of Baron human: the test donor was never seen."""
    h5ad = artifact_paths(leak, "baron-pancreas-human").h5ad
    adata = ad.read_h5ad(h5ad)
    split = evals["baron-pancreas-human"].split
    adata[np.isin(split, ["train", "validation"])].write_h5ad(tmp_path / "train.h5ad")
    project = make_project(tmp_path / "user")
    [rec] = record_model_corpora("pancreas-classifier", corpus="train", role="task_training", project=project,
                                 inputs=[tmp_path / "train.h5ad"])
    assert rec.manifest.source.kind == "h5ad" and rec.manifest.n_donors == 3
    card = load_model_card("pancreas-classifier", project.registry)  # created by the recording, pinned
    assert card.corpora[0].manifest_sha256 and card.corpora[0].documented_as.value == "recorded"
    [result] = audit([card], [evals["baron-pancreas-human"]], mirror_root=mirror_root, project_root=project.root)
    assert result.tier is Tier.RED, result.reason
    assert result.splits == {"train": "RED", "validation": "RED", "test": "GREEN"}
    test_ev = next(e for e in result.evidence)
    assert test_ev.exact_cells == int(np.isin(split, ["train", "validation"]).sum())


def _republished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, drop_top_gene: bool) -> tuple[Path, str]:
    """A new mirror version holding glioma patient MGH53's cells under a new dataset id, donor name, non-primary."""

    def republished() -> sources.SourceDataset:
        ds = sources.load_oligodendroglioma()
        keep = (ds.obs["donor_id"] == "Tirosh2016-MGH53").to_numpy()
        obs = ds.obs[keep].reset_index(drop=True)
        obs["donor_id"], obs["barcode"] = "patient-53", "republished-" + obs["barcode"]
        counts, var = ds.counts[keep], ds.var
        if drop_top_gene:  # a gene a later GENCODE no longer has: gone from the dataset's var
            top = int(np.bincount(counts.indices, minlength=counts.shape[1]).argmax())
            columns = np.delete(np.arange(counts.shape[1]), top)
            counts, var = counts[:, columns], var.iloc[columns].reset_index(drop=True)
        return replace(ds, key="glioma-republished", title="Re-published MGH53 cells", counts=sp.csr_matrix(counts),
                       var=var, obs=obs, primary=False)

    monkeypatch.setitem(sources.SOURCES, "glioma-republished", republished)
    root = tmp_path / "mirror2"
    build_mirror(root, version="2026-01-01", sources=["glioma-republished"], write_h5ads=False)
    return root, "2026-01-01"


def _corpus_card(project: Project, version: str, obs_filter: str) -> None:
    card = {"schema_version": 1, "name": "republished-reader", "display_name": "x", "family": "test",
            "variants": ["v1"], "organisms": ["homo_sapiens"],
            "corpora": [{"role": "pretraining", "name": "later-census", "documented_as": "census_filter",
                         "census": {"source": "mirror", "version": version, "organism": "homo_sapiens",
                                    "obs_value_filter": obs_filter},
                         "sources": [{"kind": "documentation", "ref": "test"}]}]}
    (project.registry / "models" / "republished-reader.yaml").write_text(yaml.safe_dump(card, sort_keys=False))


@pytest.mark.parametrize("drop_top_gene", [False, True])
def test_republished_cells_found_by_content(leak: Project, evals: dict, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, drop_top_gene: bool) -> None:
    """The same real cells under another dataset id and donor name: ids miss them, content does not.

    With the most frequently detected gene gone from the later dataset, exact fingerprints of the cells
    expressing it differ; the near match, over the genes both sides measured, still finds every cell.
    """
    root, version = _republished(tmp_path, monkeypatch, drop_top_gene=drop_top_gene)
    project = make_project(tmp_path / "p")
    _corpus_card(project, version, "is_primary_data == False")
    record_model_corpora("republished-reader", project=project, mirror_root=root)
    [result] = audit([_card(project, "republished-reader")], [evals["glioma-tirosh2016"]], mirror_root=root,
                     project_root=project.root)
    [ev] = result.evidence
    assert ev.dataset_ids == () and ev.donors == ()
    assert ev.cells == 57 and result.tier is Tier.YELLOW  # every MGH53 cell, and no other
    seen_donors = set(evals["glioma-tirosh2016"].donor_of_cell[ev.seen])
    assert seen_donors == {"Tirosh2016-MGH53"}
    if drop_top_gene:
        assert ev.near_cells == 57 and ev.exact_cells == 0 and "(near)" in ev.examples[0]
    else:
        assert ev.exact_cells == 57 and ev.near_cells == 0


def _legacy_band_hashes(sketch: np.ndarray) -> np.ndarray:
    """The 64-bit band hashes manifests stored before 2026-11-30 (the documented formula, in numpy)."""
    from heldout.leakage import fingerprint as fp

    grouped = sketch.reshape(len(sketch), fp.N_BANDS, fp.BUCKETS_PER_BAND)
    with np.errstate(over="ignore"):
        acc = np.full((len(sketch), fp.N_BANDS), np.uint64(0x243F6A8885A308D3), dtype=np.uint64)
        for i in range(fp.BUCKETS_PER_BAND):
            z = (acc ^ grouped[:, :, i]) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x9E3779B97F4A7C15)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            acc = z ^ (z >> np.uint64(31))
    acc[(grouped == fp.EMPTY).all(axis=2)] = 0
    return acc


def _rewrite_cell_files(folder: Path, rewrite: Callable) -> None:
    """Rewrite a recorded corpus's cell files (``rewrite(table, path)``), with the manifest's checksums to match."""
    import pyarrow.parquet as pq

    from heldout._files import sha256_file

    manifest = yaml.safe_load((folder / "manifest.yaml").read_text())
    for record in manifest["files"]:
        if record.get("dataset_id"):
            path = folder / record["path"]
            rewrite(pq.read_table(path), path)
            record["sha256"], record["size"] = sha256_file(path), path.stat().st_size
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    (folder / ".verified.json").unlink(missing_ok=True)


def _as_legacy(table: pa.Table, path: Path) -> None:
    """As an older heldout wrote cell files: 80-byte probes (exact lanes 0-1 and the 64-bit band hashes), no
    exact_lane1 column."""
    from heldout.leakage.fingerprint import Signatures, write_options

    sig = Signatures.from_table(table)
    old = np.ascontiguousarray(np.concatenate([sig.exact, _legacy_band_hashes(sig.sketch)], axis=1))
    probe = pa.FixedSizeBinaryArray.from_buffers(pa.binary(80), len(old), [None, pa.py_buffer(old.tobytes())])
    table = table.drop_columns(["exact_lane1"]).set_column(table.schema.get_field_index("probe"), "probe", probe)
    pq.write_table(table, path, row_group_size=2, **write_options(table.column_names))  # several row groups


def _many_pages(table: pa.Table, path: Path) -> None:
    """Today's layout with several data pages per row group (as written before one page per group): each page
    is a batch starting mid-group."""
    from heldout.leakage.fingerprint import write_options

    options = write_options(table.column_names) | {"data_page_size": 400, "max_rows_per_page": 7}
    pq.write_table(table, path, row_group_size=40, **options)


def _for_pyarrow(table: pa.Table, path: Path) -> None:
    """Today's columns in a layout the zero-copy reader declines (compressed), in row groups of several pages."""
    pq.write_table(table, path, row_group_size=5, data_page_size=100, compression="zstd")


def _read_as_views(folder: Path) -> list[bool]:
    """Per cell file: whether its probes are read as views of the file (else decoded by pyarrow)."""
    from heldout.corpora.plain_pages import open_map, plain_pages
    from heldout.leakage.fingerprint import PROBE_WIDTH

    return [plain_pages(pq.ParquetFile(path), open_map(path), 0, "probe", PROBE_WIDTH) is not None
            for path in sorted((folder / "data" / "cells").rglob("*.parquet"))]


@pytest.mark.parametrize("rewrite", [_as_legacy, _many_pages, _for_pyarrow],
                         ids=["80-byte probes", "several pages per row group", "compressed"])
def test_cell_files_in_another_layout_decide_the_same(leak: Project, evals: dict, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, rewrite: Callable) -> None:
    """A released manifest stays usable: 80-byte probes (recorded before the 40-byte probe) are converted as
    read, pages that start mid-group are batches of their own, and columns the zero-copy reader declines are
    decoded by pyarrow. The audit finds the same cells,
    exactly and near (the re-published cells with a gene dropped)."""
    from heldout._files import sha256_file

    root, version = _republished(tmp_path, monkeypatch, drop_top_gene=True)
    project = make_project(tmp_path / "p")
    _corpus_card(project, version, "is_primary_data == False")
    [record] = record_model_corpora("republished-reader", project=project, mirror_root=root)
    glioma = [evals["glioma-tirosh2016"]]
    [today] = audit([_card(project, "republished-reader")], glioma, mirror_root=root, project_root=project.root)
    folder = record.manifest_path.parent
    assert all(_read_as_views(folder))
    _rewrite_cell_files(folder, rewrite)
    assert all(_read_as_views(folder)) == (rewrite is _many_pages)
    card_path = project.registry / "models" / "republished-reader.yaml"
    card = yaml.safe_load(card_path.read_text())
    card["corpora"][0]["manifest_sha256"] = sha256_file(record.manifest_path)  # as reviewed for the old release
    card_path.write_text(yaml.safe_dump(card, sort_keys=False))
    [legacy] = audit([_card(project, "republished-reader")], glioma, mirror_root=root, project_root=project.root)
    assert today.evidence[0].near_cells == 57 and today.tier is Tier.YELLOW
    for a, b in zip(today.evidence, legacy.evidence, strict=True):
        assert (a.seen == b.seen).all() and (a.exact_cells, a.near_cells) == (b.exact_cells, b.near_cells)
        assert a.examples == b.examples
    assert legacy.tier is today.tier


def test_a_cell_file_heldout_did_not_write_is_refused_by_name(leak: Project, tmp_path: Path) -> None:
    """A manifest whose checksums match files of another shape (a hand-made corpus) is refused with the file
    named and what it lacks, not read as garbage or a traceback."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from heldout._files import sha256_file
    from heldout.corpora.manifest import CorpusReader
    from heldout.errors import HeldoutError

    folder = tmp_path / "corpus"
    shutil.copytree(next((leak.root / "corpora" / "mirror-brain-pretrained").glob("*")), folder)
    manifest = yaml.safe_load((folder / "manifest.yaml").read_text())
    record = next(r for r in manifest["files"] if r.get("dataset_id"))
    path = folder / record["path"]
    table = pq.read_table(path)
    short = pa.array([b"\0" * 16] * len(table), pa.binary(16))  # 16-byte probes
    pq.write_table(table.set_column(table.schema.get_field_index("probe"), "probe", short), path)
    record["sha256"], record["size"] = sha256_file(path), path.stat().st_size
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    (folder / ".verified.json").unlink(missing_ok=True)
    with pytest.raises(HeldoutError, match="not a cell file heldout wrote") as info:
        list(CorpusReader(folder / "manifest.yaml").batches())
    assert str(path) in info.value.message and "40-byte probes" in info.value.message


def test_gene_filtered_eval_card_found_against_the_full_corpus(leak: Project, mirror_root: Path) -> None:
    """An eval card keeping only protein-coding genes still carries each cell's full-profile signature."""
    card = leak.registry / "datasets" / "glioma-tirosh2016.yaml"
    data = yaml.safe_load(card.read_text())
    data["name"] = "glioma-coding"
    data["census"]["var_value_filter"] = "feature_type == 'protein_coding'"
    (leak.registry / "datasets" / "glioma-coding.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    result = curate("glioma-coding", project=leak, mirror_root=mirror_root, progress=False)
    full = ad.read_h5ad(artifact_paths(leak, "glioma-tirosh2016").h5ad, backed="r").n_vars
    assert result.lock.n_genes < full
    coding = eval_from_curated(leak, "glioma-coding")
    [r] = audit([_card(leak, "mirror-brain-pretrained")], [coding], mirror_root=mirror_root, project_root=leak.root)
    assert r.evidence[0].exact_cells == 184 and r.tier is Tier.YELLOW


def test_information_poor_cells_are_never_content_evidence(mirror_root: Path) -> None:
    """Empty and 1-UMI real cells (mouse brain 10k) collide with each other but are never matched."""
    ds = sources.load_mouse_brain_10k()
    keys = gene_keys(ds.var["feature_id"])
    sig = signatures(ds.counts, keys)
    poor = np.flatnonzero(sig.n_genes <= 1)
    assert len(poor) >= 3 and len(np.unique(sig.exact[poor], axis=0)) < len(poor)  # real collisions exist
    index = EvalIndex(sig.take(poor))
    corpus = sig.take(poor)
    from heldout.leakage.matching import CorpusBatch

    batch = CorpusBatch.of("same", corpus, np.arange(len(corpus)).astype(str))
    hits = match_corpus(index, [batch])
    assert not hits.any.any() and not index.informative.any()
    assert MIN_GENES == 20


def test_distinct_real_cells_never_match(leak: Project, evals: dict, tmp_path: Path, mirror_root: Path) -> None:
    """Baron human donors 1-3 as a corpus against donor 4, and every other real dataset: no content match."""
    adata = ad.read_h5ad(artifact_paths(leak, "baron-pancreas-human").h5ad)
    donor4 = adata.obs["donor_id"].astype(str) == "Baron2016-human4"
    adata = adata[~donor4.to_numpy()].copy()
    adata.obs["dataset_id"] = "other-study"  # as if another study: only content could link the cells
    adata.write_h5ad(tmp_path / "three-donors.h5ad")
    project = make_project(tmp_path / "u")
    record_model_corpora("three-donors", corpus="c", role="pretraining", project=project,
                         inputs=[tmp_path / "three-donors.h5ad"])
    card = load_model_card("three-donors", project.registry)
    results = audit([card], list(evals.values()), mirror_root=mirror_root, project_root=project.root)
    baron = next(r for r in results if r.dataset == "baron-pancreas-human")
    assert baron.evidence[0].exact_cells == int((~donor4).sum())  # the three donors' own cells, found exactly
    donor4_cells = evals["baron-pancreas-human"].donor_of_cell == "Baron2016-human4"
    assert not baron.evidence[0].seen[donor4_cells].any()  # 450 real cells of the same study: never a match
    for r in results:
        if r.dataset != "baron-pancreas-human":
            assert r.tier is Tier.GREEN and r.evidence[0].exact_cells == 0 and r.evidence[0].near_cells == 0


def test_fingerprints_ignore_gene_order_and_zeros() -> None:
    keys = gene_keys(["ENSG00000000001", "ENSG00000000002", "ENSG00000000003"])
    x = sp.csr_matrix(np.array([[1, 0, 5], [1, 0, 5], [5, 0, 1], [0, 0, 0]], dtype=np.float32))
    fp = cell_fingerprints(x, keys)
    assert (fp[0] == fp[1]).all() and not (fp[0] == fp[2]).all()
    shuffled = cell_fingerprints(sp.csr_matrix(np.array([[5, 1]], dtype=np.float32)), keys[[2, 0]])
    assert (shuffled[0] == fp[0]).all() and (fp[3] == 0).all()


@settings(max_examples=25, deadline=None)
@given(n_keys=st.integers(0, 200_000), seed=st.integers(0, 2**32 - 1))
def test_the_probe_filter_never_drops_a_key_and_rarely_passes_others(n_keys: int, seed: int) -> None:
    """The blocked Bloom filter of the eval keys: no false negatives (a dropped key would hide a match),
    and few false positives at its sizing (each one costs a bucket lookup, never a wrong match)."""
    from heldout.leakage.matching import _may_hold, bloom_words

    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 2**64, size=n_keys, dtype=np.uint64)
    words, shift = bloom_words(keys)
    assert all(_may_hold(words, shift, k) for k in keys[:5000])
    others = rng.integers(0, 2**64, size=20_000, dtype=np.uint64)
    passed = np.mean([_may_hold(words, shift, k) for k in others])
    assert passed < 0.02, passed


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 300), empty=st.floats(0, 1), seed=st.integers(0, 2**32 - 1))
def test_band_keys_are_the_documented_hash_of_their_buckets(n: int, empty: float, seed: int) -> None:
    """The numba band kernel equals the formula stored manifests were written with (numpy, band by band):
    ``acc = splitmix64((acc ^ bucket) * GOLDEN)`` from the seed, 0 for an all-empty band."""
    from heldout.leakage import fingerprint as fp

    rng = np.random.default_rng(seed)
    sketch = rng.integers(0, 2**64, size=(n, fp.SKETCH_BUCKETS), dtype=np.uint64)
    sketch[rng.random(sketch.shape) < empty] = fp.EMPTY
    grouped = sketch.reshape(n, fp.N_BANDS, fp.BUCKETS_PER_BAND)

    def splitmix64(x: np.ndarray) -> np.ndarray:
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))

    with np.errstate(over="ignore"):
        expected = np.full((n, fp.N_BANDS), np.uint64(0x243F6A8885A308D3), dtype=np.uint64)
        for i in range(fp.BUCKETS_PER_BAND):
            expected = splitmix64((expected ^ grouped[:, :, i]) * np.uint64(0x9E3779B97F4A7C15))
    expected[(grouped == fp.EMPTY).all(axis=2)] = 0
    keys = (expected >> np.uint64(32)).astype(np.uint32)  # the top half; 0 only for an all-empty band
    keys[(keys == 0) & (expected != 0)] = 1
    assert band_keys(sketch).dtype == np.uint32 and np.array_equal(band_keys(sketch), keys)
    assert np.array_equal(fp.narrow_band_hashes(expected), keys)  # how legacy 64-bit band hashes are read


def test_narrowed_band_keys_are_zero_only_for_empty_bands() -> None:
    from heldout.leakage.fingerprint import narrow_band_hashes

    hashes = np.array([0, 1, 2**32 - 1, 2**32, 2**63 + 5, 2**64 - 1], dtype=np.uint64)
    assert narrow_band_hashes(hashes).tolist() == [0, 1, 1, 1, 2**31, 2**32 - 1]


@settings(max_examples=25, deadline=None)
@given(n_keys=st.integers(0, 3000), n_rows=st.integers(0, 2000), shared=st.floats(0, 1),
       min_shared=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_the_probe_kernel_finds_exactly_the_pairs_a_brute_force_join_finds(
        n_keys: int, n_rows: int, shared: float, min_shared: int, seed: int) -> None:
    """Filter + radix buckets + per-pair band counts: every (eval owner, corpus row) equal on lane 0, and every
    pair equal on at least ``min_shared`` bands, nothing else. Keys are repeated across owners, lane-0 keys
    clustered in one bucket, some band keys are empty (zero); outputs start small, so the kernel resumes after
    growing them."""
    from heldout.leakage.fingerprint import N_BANDS, probe_matrix
    from heldout.leakage.matching import _ragged, band_index_keys, bloom_words, probe_pairs, radix_table

    rng = np.random.default_rng(seed)
    n_eval = 4_000
    exact_pool = rng.integers(1, 2**64, size=max(1, n_keys // 3), dtype=np.uint64)
    exact_pool[: len(exact_pool) // 4] &= np.uint64(0xFFFF)  # many keys sharing their top bits: one crowded bucket
    band_pool = rng.integers(1, 2**32, size=max(1, n_keys // 3), dtype=np.uint32)
    pools = [exact_pool] + [band_pool] * N_BANDS
    lanes, owners = [], []
    for lane, pool in enumerate(pools):
        keys = rng.choice(pool, size=n_keys)  # repeats: one key owned by several eval cells
        keys = keys if lane == 0 else band_index_keys(keys)
        order = np.argsort(keys, kind="stable")
        lanes.append(keys[order])
        owners.append(rng.permutation(n_eval)[:n_keys][order])  # an eval cell has one key per lane, as in an index
    keys, key_off = _ragged(lanes)
    owner = np.concatenate(owners).astype(np.int64)
    words, shift = bloom_words(keys)
    radix, radix_shift = radix_table(keys, key_off)
    lane0 = rng.integers(0, 2**64, size=n_rows, dtype=np.uint64)
    pick = rng.random(n_rows) < shared
    lane0[pick] = rng.choice(exact_pool, size=int(pick.sum()))
    bands = rng.integers(0, 2**32, size=(n_rows, N_BANDS), dtype=np.uint32)
    pick = rng.random(bands.shape) < shared
    bands[pick] = rng.choice(band_pool, size=int(pick.sum()))
    bands[rng.random(bands.shape) < 0.1] = 0  # empty band keys are never looked up
    probe = probe_matrix(lane0, bands)
    (exact_e, exact_c), (cand_e, cand_c) = probe_pairs(probe, words, shift, keys, radix, radix_shift, owner,
                                                       n_eval, min_shared)
    expected_exact, band_counts = [], {}
    for lane in range(1 + N_BANDS):
        column = lane0 if lane == 0 else band_index_keys(bands[:, lane - 1])
        segment = slice(key_off[lane], key_off[lane + 1])
        for row, value in enumerate(column):
            if lane > 0 and value == 0:
                continue
            for e in owner[segment][keys[segment] == value]:
                if lane == 0:
                    expected_exact.append((int(e), row))
                else:
                    band_counts[int(e), row] = band_counts.get((int(e), row), 0) + 1
    assert sorted(zip(exact_e.tolist(), exact_c.tolist(), strict=True)) == sorted(expected_exact)
    expected_candidates = sorted(pair for pair, n in band_counts.items() if n >= min_shared)
    assert list(zip(cand_e.tolist(), cand_c.tolist(), strict=True)) == expected_candidates  # ordered, no repeats


def test_killed_recording_resumes_from_finished_partitions(leak: Project, mirror_root: Path, tmp_path: Path) -> None:
    from tests.helpers import run_cmd

    project = make_project(tmp_path / "resume")
    shutil.copy(FIXTURES / "mirror-glioma-finetuned.yaml", project.registry / "models")
    cmd = ("heldout", "corpus", "record", "--model", "mirror-glioma-finetuned", "--corpus", "mirror-human-all",
           "--partition-cells", "1000", "--mirror", str(mirror_root))
    killed = run_cmd(project.root, *cmd, env={"HELDOUT_CRASH_AT": "after-partition-000000001000-000000002000",
                                              "HELDOUT_PROJECT": str(project.root)})
    assert killed.returncode == -9, killed.stderr
    folder = project.root / "corpora" / "mirror-glioma-finetuned" / "mirror-human-all"
    assert not (folder / "manifest.yaml").exists()  # no manifest for an incomplete recording
    resumed = run_cmd(project.root, *cmd, env={"HELDOUT_PROJECT": str(project.root)})
    assert resumed.returncode == 0, resumed.stderr
    assert re.search(r"resuming: [1-4] of 5 partition\(s\) already recorded", resumed.stdout.replace("\n", " "))
    again = read_manifest(folder / "manifest.yaml")
    reference = read_manifest(leak.root / "corpora" / "mirror-glioma-finetuned" / "mirror-human-all" / "manifest.yaml")
    assert (again.n_cells, again.n_donors, again.n_informative) == (reference.n_cells, reference.n_donors,
                                                                   reference.n_informative)
    assert not list(folder.glob(".staging-*"))


def test_recording_on_a_local_dask_cluster(leak: Project, mirror_root: Path, tmp_path: Path) -> None:
    from dask.distributed import Client, LocalCluster

    project = make_project(tmp_path / "dask")
    shutil.copy(FIXTURES / "mirror-brain-pretrained.yaml", project.registry / "models")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        [rec] = record_model_corpora("mirror-brain-pretrained", project=project, mirror_root=mirror_root,
                                     partition_cells=1000, client=client)
    reference = read_manifest(leak.root / "corpora" / "mirror-brain-pretrained" / "mirror-human-brain" /
                              "manifest.yaml")
    assert rec.manifest.n_cells == reference.n_cells == 184
    cells = {f.sha256 for f in rec.manifest.files if f.dataset_id}
    assert cells == {f.sha256 for f in reference.files if f.dataset_id}  # same bytes, whatever the scheduler


def test_recording_refuses_to_overwrite_and_explains_bad_input(leak: Project, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELDOUT_PROJECT", str(leak.root))
    runner = CliRunner()
    again = runner.invoke(cli, ["corpus", "record", "--model", "mirror-brain-pretrained"])
    assert again.exit_code == 0 and "already recorded from this definition" in again.output
    prose = runner.invoke(cli, ["corpus", "record", "--model", "transcriptformer"])
    assert prose.exit_code == 2 and "Nothing to record" in prose.output and "Traceback" not in prose.output
    missing = runner.invoke(cli, ["corpus", "record", "--model", "x", "--corpus", "c", "--role", "pretraining",
                                  str(tmp_path / "nope.h5ad")])
    assert missing.exit_code == 2 and "not found" in missing.output
    unknown = runner.invoke(cli, ["corpus", "record", "--model", "mirror-brain-pretraned"])
    assert unknown.exit_code == 2 and "Did you mean 'mirror-brain-pretrained'" in unknown.output


def test_audit_cli_report_and_json(leak: Project, mirror_root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HELDOUT_PROJECT", str(leak.root))
    result = CliRunner().invoke(cli, ["audit", "--model", "mirror-glioma-finetuned", "--mirror", str(mirror_root),
                                      "--json", str(tmp_path / "a.json"), "--report", str(tmp_path / "a.md")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "a.json").read_text())
    assert {d["tier"] for d in data} == {"RED", "YELLOW", "GREEN"}
    red = next(d for d in data if d["dataset"] == "glioma-tirosh2016")
    assert red["tier"] == "RED"
    assert red["splits"] == {"train": "RED", "validation": "RED", "test": "RED"}
    assert red["evidence"][1]["exact_cells"] == 184 and "seen" not in red["evidence"][1]
    text = (tmp_path / "a.md").read_text()
    assert "## Evidence per corpus" in text and "evidence levels: ids: checked" in text
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    notes = [line for line in result.output.splitlines() if re.match(r"\[\d+\] ", line)]  # evidence below the table
    assert len(notes) == len({d["reason"] for d in data}) and any("184 exact" in n for n in notes)
    wide = CliRunner().invoke(cli, ["audit", "--model", "mirror-glioma-finetuned", "--mirror", str(mirror_root), "--wide"])
    assert wide.exit_code == 0 and not re.search(r"^\[\d+\] ", wide.output, re.M) and "184 exact" in wide.output


def test_markdown_report_for_real_cards(evals: dict, mirror_root: Path, tmp_path: Path, leak: Project) -> None:
    cards = [load_model_card(n, REPO / "registry") for n in ("scgpt-whole-human", "geneformer-v1")]
    results = audit(cards, list(evals.values()), mirror_root=mirror_root, project_root=leak.root)
    markdown_report(results, tmp_path / "r.md")
    text = (tmp_path / "r.md").read_text()
    assert "scgpt-whole-human" in text and "bowang-lab/scGPT" in text
    assert "| scgpt-whole-human | [GREEN](#scgpt-whole-human-x-glioma-tirosh2016) |" in text  # the grid links ...
    assert '<a id="scgpt-whole-human-x-glioma-tirosh2016"></a>' in text  # ... to the evidence
    assert "no eval cell passes the corpus filter" in text and "**accession list**" in text  # evidence, legend
    page = (tmp_path / "r.html").read_text()
    assert '<th scope="col">glioma-tirosh2016</th>' in page and 'href="#geneformer-v1-x-pbmc-blood"' in page
    assert "<script" not in page and "http://" not in page.replace("http://purl", "")  # self-contained
