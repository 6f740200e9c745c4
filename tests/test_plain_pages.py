"""Zero-copy reads of plain parquet columns: exactly what pyarrow decodes, or nothing (then pyarrow reads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heldout.corpora.plain_pages import open_map, plain_pages
from heldout.leakage.fingerprint import SKETCH_BUCKETS, matrix, write_options


def _table(rows: int, seed: int, *, nullable: bool, null_at: int | None) -> pa.Table:
    rng = np.random.default_rng(seed)
    probe = rng.integers(0, 2**64, (rows, 5), dtype=np.uint64, endpoint=False)
    lane1 = rng.integers(0, 2**64, rows, dtype=np.uint64, endpoint=False)
    mask = None if null_at is None else np.arange(rows) == null_at
    schema = pa.schema([pa.field("cell_id", pa.string(), nullable=nullable),
                        pa.field("probe", pa.binary(40), nullable=nullable),
                        pa.field("exact_lane1", pa.uint64(), nullable=nullable)])
    columns = [pa.array([f"c{i}" for i in range(rows)]),
               pa.FixedSizeBinaryArray.from_buffers(pa.binary(40), rows, [None, pa.py_buffer(probe.tobytes())]),
               pa.array(lane1, mask=mask)]
    return pa.Table.from_arrays(columns, schema=schema)


def _decoded(path: Path, group: int, column: str, width: int) -> np.ndarray:
    return matrix(pq.ParquetFile(path).read_row_group(group, columns=[column]).column(column), width)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 600), seed=st.integers(0, 2**32 - 1), group_rows=st.integers(1, 800),
       page_bytes=st.sampled_from([100, 4000, 1 << 30]), nullable=st.booleans(),
       compression=st.sampled_from(["NONE", "ZSTD", "SNAPPY"]), dictionary=st.booleans(),
       page_version=st.sampled_from(["1.0", "2.0"]), statistics=st.booleans(), with_null=st.booleans())
def test_plain_pages_are_what_pyarrow_decodes_or_none(tmp_path_factory: pytest.TempPathFactory, rows: int,
                                                      seed: int, group_rows: int, page_bytes: int, nullable: bool,
                                                      compression: str, dictionary: bool, page_version: str,
                                                      statistics: bool, with_null: bool) -> None:
    """Whatever the writer's options, a page view holds the bytes pyarrow decodes, or the reader declines.
    It reads the layout heldout writes (plain, uncompressed, v1 pages, no nulls) in any page size, nullable
    or not, with statistics or not."""
    null_at = rows // 2 if with_null and nullable else None
    table = _table(rows, seed, nullable=nullable, null_at=null_at)
    path = tmp_path_factory.mktemp("pages") / "cells.parquet"
    pq.write_table(table, path, row_group_size=group_rows, data_page_size=page_bytes, compression=compression,
                   use_dictionary=dictionary, write_statistics=statistics, data_page_version=page_version)
    parquet, data = pq.ParquetFile(path), open_map(path)
    plain = compression == "NONE" and not dictionary and page_version == "1.0"
    end = 0
    for group in range(parquet.num_row_groups):
        begin, end = end, end + parquet.metadata.row_group(group).num_rows
        for column, width in (("probe", 5), ("exact_lane1", 1)):
            pages = plain_pages(parquet, data, group, column, width)
            has_null = column == "exact_lane1" and null_at is not None and begin <= null_at < end
            assert (pages is not None) == (plain and not has_null)
            if pages is None:
                continue
            starts = [start for start, _ in pages]
            assert starts == sorted(starts) and starts[0] == 0
            assert np.array_equal(np.concatenate([view for _, view in pages]), _decoded(path, group, column, width))
    assert plain_pages(parquet, data, 0, "no_such_column", 1) is None
    assert plain_pages(parquet, data, 0, "probe", 4) is None  # another width than stored
    assert plain_pages(parquet, data, 0, "cell_id", 1) is None  # strings are never read as numbers


def test_the_files_heldout_writes_are_one_view_per_row_group(tmp_path: Path) -> None:
    """``write_options`` keeps each hash column of a row group in one data page, read without a copy."""
    table = _table(70_000, 7, nullable=True, null_at=None)
    path = tmp_path / "cells.parquet"
    pq.write_table(table, path, row_group_size=65_536, **write_options(table.column_names))
    parquet, data = pq.ParquetFile(path), open_map(path)
    assert parquet.num_row_groups == 2
    for group in range(2):
        [(start, view)] = plain_pages(parquet, data, group, "probe", 5)
        assert start == 0 and not view.flags.owndata and not view.flags.writeable  # a view of the mapped file
        assert np.array_equal(view, _decoded(path, group, "probe", 5))
    assert plain_pages(parquet, data, 0, "cell_id", 1) is None  # dictionary-encoded, compressed: pyarrow reads it


@pytest.mark.parametrize("layout", [{}, {"data_page_size": 300, "max_rows_per_page": 5}, {"compression": "zstd"}],
                         ids=["one page per group", "pages start mid-group", "compressed"])
def test_cell_file_batches_hold_the_rows_pyarrow_reads(tmp_path: Path, layout: dict) -> None:
    """Every batch's probes, lane-1 fingerprints, sketches and cell ids are those of its own rows."""
    from heldout.corpora.cell_file import CellFile

    rows, rng = 300, np.random.default_rng(3)
    sketch = rng.integers(0, 2**64, (rows, SKETCH_BUCKETS), dtype=np.uint64, endpoint=False)
    table = _table(rows, 5, nullable=True, null_at=None).append_column(
        "sketch", pa.FixedSizeBinaryArray.from_buffers(pa.binary(8 * SKETCH_BUCKETS), rows,
                                                       [None, pa.py_buffer(sketch.tobytes())]))
    path = tmp_path / "cells.parquet"
    pq.write_table(table, path, row_group_size=64, **(write_options(table.column_names) | layout))
    batches = list(CellFile(path).batches("d", None))
    assert len(batches) > (5 if "max_rows_per_page" in layout else 0) and len(batches) >= 5
    probe = matrix(table.column("probe"), 5)
    lane1, ids = table.column("exact_lane1").to_numpy(), table.column("cell_id").to_pylist()
    at = 0
    for batch in batches:
        n = len(batch.probe)
        picked = np.array([0, n - 1, n // 2])
        assert np.array_equal(batch.probe, probe[at:at + n]) and np.array_equal(batch.sketches(), sketch[at:at + n])
        assert np.array_equal(batch.exact_lane1(picked), lane1[at + picked])
        assert batch.cell_ids(picked) == [ids[at + i] for i in picked]
        at += n
    assert at == rows
