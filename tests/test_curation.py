"""Curation selects exactly the card's cells, validates, and writes atomically."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import tiledbsoma as soma
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from heldout._files import sha256_file
from heldout.cards.dataset import load_dataset_card
from heldout.census import open_census
from heldout.curation import _strings_natively, _used_categories, artifact_paths, curate
from heldout.leakage.fingerprint import Signatures
from heldout.leakage.universe import GeneUniverse
from heldout.errors import CardError
from heldout.mirror.build import DEFAULT_VERSION
from heldout.project import Project
from heldout.validation import validate_h5ad


@pytest.mark.parametrize("name", ["glioma-tirosh2016", "pbmc-blood", "mouse-brain-10k"])
def test_curated_cells_equal_direct_tiledbsoma_read(curated: Project, mirror_root: Path, name: str) -> None:
    card = load_dataset_card(name, curated.registry)
    h5ad = artifact_paths(curated, name).h5ad
    adata = ad.read_h5ad(h5ad)
    uri = mirror_root / "cell-census" / DEFAULT_VERSION / "soma" / "census_data" / card.census.organism.value
    with soma.Experiment.open(str(uri)) as exp, exp.axis_query(
            "RNA", obs_query=soma.AxisQuery(value_filter=card.obs_filter)) as query:
        direct = query.to_anndata(X_name="raw")
    direct = direct[np.argsort(direct.obs["soma_joinid"].to_numpy())]
    assert adata.obs["soma_joinid"].tolist() == direct.obs["soma_joinid"].tolist()
    assert adata.var_names.tolist() == direct.var["feature_id"].tolist()
    assert (adata.X != direct.X).nnz == 0
    assert validate_h5ad(h5ad).ok
    with h5py.File(h5ad) as f:  # 64-bit row pointers: appending blocks past 2^31 non-zeros must not overflow
        assert f["X/indptr"].dtype == np.int64


def test_lock_records_what_was_resolved(curated: Project) -> None:
    paths = artifact_paths(curated, "glioma-tirosh2016")
    lock_path, fp_path = paths.lock, paths.fingerprints
    lock = yaml.safe_load(lock_path.read_text())
    assert lock["census_version"] == DEFAULT_VERSION and lock["census_source"] == "mirror"
    assert (lock["n_cells"], lock["n_donors"]) == (184, 5)
    assert lock["h5ad_sha256"] == sha256_file(artifact_paths(curated, "glioma-tirosh2016")[0])
    assert "is_primary_data == True" in lock["obs_value_filter"]
    fps = pd.read_parquet(fp_path)
    assert len(fps) == 184 and {"probe", "sketch", "n_genes", "n_counts"} <= set(fps.columns)
    sig = Signatures.from_table(pq.read_table(fp_path))
    assert sig.exact.dtype == np.uint64 and sig.exact.any(axis=1).all() and sig.sketch.shape == (184, 32)
    assert (fps["n_genes"] >= 20).all() and len(fps["probe"].iloc[0]) == 40  # fingerprint lane 0 + 8 uint32 bands
    universe = GeneUniverse.read(paths.genes)  # the genes the source dataset measured
    assert list(universe.measured) == list(fps["dataset_id"].unique()) and universe.measured[fps["dataset_id"][0]].sum() > 8000


def test_label_harmonisation_from_curation_folder(curated: Project) -> None:
    obs = ad.read_h5ad(artifact_paths(curated, "pbmc-blood")[0], backed="r").obs
    assert "unannotated" in set(obs["cell_type"]) and "unknown" not in set(obs["cell_type"])


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 1000])
def test_file_hashes_are_exact_across_read_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    import hashlib

    import heldout._files

    monkeypatch.setattr(heldout._files, "HASH_CHUNK", 64)  # the real chunk is 16 MiB: same code path, small files
    content = np.random.default_rng(size).bytes(size)
    (tmp_path / "f").write_bytes(content)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(content).hexdigest()


def test_curation_is_deterministic(project: Project, mirror_root: Path) -> None:
    first = curate("glioma-tirosh2016", project=project, mirror_root=mirror_root, progress=False)
    digest = sha256_file(first.h5ad)
    second = curate("glioma-tirosh2016", project=project, mirror_root=mirror_root, progress=False)
    assert sha256_file(second.h5ad) == digest
    assert second.lock == first.lock
    # another block size changes the HDF5 chunk layout, never the content
    small = ad.read_h5ad(curate("glioma-tirosh2016", project=project, mirror_root=mirror_root, block_cells=7,
                                progress=False).h5ad)
    big = ad.read_h5ad(artifact_paths(project, "glioma-tirosh2016")[0])
    assert (small.X != big.X).nnz == 0 and small.obs.equals(big.obs)


def _write_card(project: Project, name: str, **changes: object) -> None:
    path = project.registry / "datasets" / "glioma-tirosh2016.yaml"
    data = yaml.safe_load(path.read_text())
    data["name"] = name
    data["census"].update(changes)
    (project.registry / "datasets" / f"{name}.yaml").write_text(yaml.safe_dump(data))


def test_empty_selection_is_refused_and_writes_nothing(project: Project, mirror_root: Path) -> None:
    _write_card(project, "empty-card", obs_value_filter="tissue == 'liver'")
    with pytest.raises(CardError, match="selects no cells"):
        curate("empty-card", project=project, mirror_root=mirror_root, progress=False)
    assert not list(project.root.glob("data/**/empty-card*"))


def test_unknown_filter_column_is_a_card_error(project: Project, mirror_root: Path) -> None:
    _write_card(project, "bad-column", obs_value_filter="tisue == 'brain'")
    with pytest.raises(CardError, match="filter of card 'bad-column' is invalid"):
        curate("bad-column", project=project, mirror_root=mirror_root, progress=False)


def test_invalid_data_is_refused_before_writing(project: Project, mirror_root: Path) -> None:
    # A schema that forbids the data the card selects: curation must refuse and leave nothing.
    schema = project.root / "schemas" / "obs.yaml"
    text = schema.read_text()
    forbid = '        exclude: ["CL:0000255", "CL:0000257", "CL:0000548"]'
    assert forbid in text
    schema.write_text(text.replace(forbid, '        roots: ["CL:0000236"]  # B cells only', 1))
    from heldout.errors import ValidationFailed
    from heldout.validation import load_schema

    load_schema.cache_clear()
    try:
        with pytest.raises(ValidationFailed, match="cell_type_ontology_term_id"):
            curate("glioma-tirosh2016", project=project, mirror_root=mirror_root, progress=False)
    finally:
        load_schema.cache_clear()
    assert not any(path.exists() for path in artifact_paths(project, "glioma-tirosh2016"))
    assert not [p for p in project.curated.iterdir() if p.name.startswith(".")]


def test_open_census_reads_the_same_cells_as_uri(mirror_root: Path) -> None:
    import cellxgene_census

    uri = mirror_root / "cell-census" / DEFAULT_VERSION / "soma"
    with open_census("stable", mirror_root=mirror_root) as a, cellxgene_census.open_soma(uri=str(uri)) as b:
        oa = cellxgene_census.get_obs(a, "Mus musculus", column_names=["soma_joinid"])
        ob = cellxgene_census.get_obs(b, "Mus musculus", column_names=["soma_joinid"])
    assert oa.equals(ob)


def test_cli_missing_or_partial_mirror_is_a_clear_error(project: Project, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from heldout.cli import cli
    from heldout.errors import SourceError

    result = CliRunner().invoke(cli, ["curate", "glioma-tirosh2016", "--mirror", str(tmp_path / "none")])
    assert result.exit_code == SourceError.exit_code
    assert "No mini-Census at" in result.output and "heldout mirror build" in result.output
    assert "Traceback" not in result.output


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(0, 9)), max_size=40), st.integers(1, 12), st.booleans())
def test_unused_categories_are_dropped_as_pandas_drops_them(values: list[int | None], n_categories: int,
                                                            ordered: bool) -> None:
    categories = [f"c{i}" for i in range(n_categories)]
    column = pd.Series(pd.Categorical([None if v is None or v >= n_categories else categories[v] for v in values],
                                      categories=categories, ordered=ordered), index=np.arange(len(values))[::-1])
    pd.testing.assert_series_equal(_used_categories(column), column.cat.remove_unused_categories())


def test_string_columns_written_natively_read_back_as_anndata_writes_them(tmp_path: Path) -> None:
    ids = [f"cell-{i}-é" for i in range(300)]
    obs = pd.DataFrame({"observation_joinid": ids, "n": np.arange(300),
                        "label": pd.Categorical(["a", "b", "c"] * 100)}, index=ids)
    with h5py.File(tmp_path / "native.h5", "w") as f:
        ad.experimental.write_dispatched(f, "obs", obs, callback=_strings_natively)
    with h5py.File(tmp_path / "anndata.h5", "w") as f:
        ad.io.write_elem(f, "obs", obs)
    with h5py.File(tmp_path / "native.h5") as native, h5py.File(tmp_path / "anndata.h5") as plain:
        pd.testing.assert_frame_equal(ad.io.read_elem(native["obs"]), ad.io.read_elem(plain["obs"]))
        for key in ("_index", "observation_joinid"):
            assert native["obs"][key].dtype == plain["obs"][key].dtype
            assert dict(native["obs"][key].attrs) == dict(plain["obs"][key].attrs)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=1, max_size=8), st.integers(1, 100))
def test_signature_table_written_as_cells_stream_equals_the_whole_table(curated: Project, block_sizes: list[int],
                                                                       row_group_cells: int) -> None:
    import tempfile

    from heldout.leakage.signature_table import SignatureTableWriter, signature_table

    whole = pq.read_table(artifact_paths(curated, "glioma-tirosh2016").fingerprints)  # 184 real cells
    sig = Signatures.from_table(whole)
    n = min(sum(block_sizes), whole.num_rows)
    cells = [whole.column(c).to_numpy(zero_copy_only=False)[:n] for c in ("observation_joinid", "dataset_id", "donor_id")]
    edges = np.minimum(np.cumsum([0, *block_sizes]), n)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fp.parquet"
        with SignatureTableWriter(path, *cells, row_group_cells=row_group_cells) as writer:
            for start, stop in zip(edges[:-1], edges[1:]):
                writer.add(Signatures(sig.exact[start:stop], sig.sketch[start:stop], sig.n_genes[start:stop],
                                      sig.n_counts[start:stop]))
            assert writer.finish().result() == n
        written = pq.read_table(path)
        assert written.equals(signature_table(*cells, Signatures(sig.exact[:n], sig.sketch[:n], sig.n_genes[:n],
                                                                 sig.n_counts[:n])))
        assert written.equals(whole.slice(0, n))  # curation's own table, row for row
        groups = pq.ParquetFile(path).metadata.num_row_groups
        assert groups == _groups_written([int(b) for b in np.diff(edges)], row_group_cells)


def _groups_written(blocks: list[int], row_group_cells: int) -> int:
    """Row groups the writer makes: blocks gathered until they reach the row-group size, then the rest."""
    groups, buffered = 0, 0
    for size in blocks:
        buffered += size
        if buffered >= row_group_cells:
            groups, buffered = groups + 1, 0
    return groups + (buffered > 0 or groups == 0)


def test_signature_table_errors_surface_and_count_mismatches_are_refused(curated: Project, tmp_path: Path) -> None:
    from heldout.leakage.signature_table import SignatureTableWriter

    whole = pq.read_table(artifact_paths(curated, "glioma-tirosh2016").fingerprints)
    sig = Signatures.from_table(whole)
    cells = [whole.column(c).to_numpy(zero_copy_only=False) for c in ("observation_joinid", "dataset_id", "donor_id")]
    with SignatureTableWriter(tmp_path / "missing-folder" / "fp.parquet", *cells) as writer:
        writer.add(sig)
        with pytest.raises(OSError, match="missing-folder"):  # raised on the writer's thread, handed over here
            writer.finish().result()
    with SignatureTableWriter(tmp_path / "short.parquet", *cells) as writer:
        writer.add(Signatures(sig.exact[:10], sig.sketch[:10], sig.n_genes[:10], sig.n_counts[:10]))
        with pytest.raises(ValueError, match="signatures for 10 cells, but the table has 184"):
            writer.finish()


def test_flushing_a_growing_file_keeps_its_content_and_reports_flush_errors(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import heldout._files
    from heldout._files import flushed_as_written

    path = tmp_path / "growing"
    chunks = [np.random.default_rng(i).bytes(1 << 16) for i in range(20)]
    with open(path, "wb", buffering=0) as fh, flushed_as_written(path) as flush:
        for chunk in chunks:
            fh.write(chunk)
            flush()
    assert path.read_bytes() == b"".join(chunks)

    def failing_sync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(heldout._files, "sync_data", failing_sync)  # a disk that fails: the writer must hear of it
    with pytest.raises(OSError, match="Input/output error"), open(path, "ab") as fh, flushed_as_written(path) as flush:
        fh.write(b"more")
        flush()
