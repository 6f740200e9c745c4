"""One recorded cell file (one dataset's cells of a corpus), read in batches for a join.

A batch is one data page of the probe column: a numpy view of the memory-mapped file when the column is plain
(:mod:`heldout.corpora.plain_pages`), otherwise the row group decoded by pyarrow. Files heldout writes hold one
page per row group (``fingerprint.write_options``); files written before the 40-byte probe are converted as they
are read. The rest of a row's signature (lane 1 of the exact fingerprint, the sketch, the cell id) is read per
row group, only when a batch of it needs one.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from heldout.corpora.plain_pages import open_map, plain_pages
from heldout.errors import HeldoutError
from heldout.leakage.fingerprint import LEGACY_PROBE_WIDTH, PROBE_WIDTH, SKETCH_BUCKETS, legacy_probe, matrix
from heldout.leakage.matching import CorpusBatch


class CellFile:
    """A corpus cell file, checked to be one heldout wrote (the caller has verified its sha256)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.parquet = pq.ParquetFile(path, memory_map=True)
        self.legacy = _is_legacy(self.parquet, path)
        self.data = open_map(path)

    def batches(self, dataset_id: str, genes: np.ndarray | None) -> Iterator[CorpusBatch]:
        for group in range(self.parquet.num_row_groups):
            rows = _RowGroup(self, group)
            for start, probe in rows.probe_pages():
                yield rows.batch(dataset_id, genes, start, probe)


class _RowGroup:
    """A row group's columns, each read once and only when asked for."""

    def __init__(self, file: CellFile, group: int) -> None:
        self.file = file
        self.group = group

    def _read(self, column: str) -> pa.ChunkedArray:
        return self.file.parquet.read_row_group(self.group, columns=[column], use_threads=False).column(column)

    def _pages(self, column: str, width: int) -> list[tuple[int, np.ndarray]]:
        """(first row, (n, width) uint64 matrix) per data page: views of the file, or one pyarrow decoding."""
        pages = plain_pages(self.file.parquet, self.file.data, self.group, column, width)
        return pages if pages is not None else [(0, matrix(self._read(column), width))]

    def _matrix(self, column: str, width: int) -> np.ndarray:
        views = [view for _, view in self._pages(column, width)]
        return views[0] if len(views) == 1 else np.concatenate(views)

    def batch(self, dataset_id: str, genes: np.ndarray | None, start: int, probe: np.ndarray) -> CorpusBatch:
        """The batch of rows ``start``.. of this row group; its callables take rows of the batch."""
        end = start + len(probe)
        return CorpusBatch(dataset_id=dataset_id, probe=probe, genes=genes,
                           exact_lane1=lambda at: self.lane1[start + at],
                           cell_ids=lambda at: self.cell_ids(start + at),
                           sketches=lambda: self.sketch[start:end])

    def probe_pages(self) -> list[tuple[int, np.ndarray]]:
        """(first row, probe matrix) per batch of this row group."""
        if self.file.legacy:
            probe, self.lane1 = legacy_probe(matrix(self._read("probe"), LEGACY_PROBE_WIDTH))
            return [(0, probe)]
        return self._pages("probe", PROBE_WIDTH)

    @cached_property
    def lane1(self) -> np.ndarray:
        return self._matrix("exact_lane1", 1)[:, 0]

    @cached_property
    def sketch(self) -> np.ndarray:
        return self._matrix("sketch", SKETCH_BUCKETS)

    def cell_ids(self, rows: np.ndarray) -> list[str]:
        return self._read("cell_id").take(rows).to_pylist()


def _is_legacy(parquet: pq.ParquetFile, path: Path) -> bool:
    """Whether a cell file has the legacy 80-byte probes; refused when it is no corpus cell file at all."""
    schema = parquet.schema_arrow
    legacy = "exact_lane1" not in schema.names
    width = 8 * (LEGACY_PROBE_WIDTH if legacy else PROBE_WIDTH)
    wanted = {"probe", "sketch", "cell_id"} | (set() if legacy else {"exact_lane1"})
    probe = schema.field("probe").type if "probe" in schema.names else None
    if not wanted <= set(schema.names) or getattr(probe, "byte_width", None) != width:
        msg = (f"Corpus file {path} is not a cell file heldout wrote: it needs columns {sorted(wanted)} with "
               f"{width}-byte probes, and has {schema.names} (probe: {probe}).")
        raise HeldoutError(msg, hint="Record the corpus with `heldout corpus record`; do not edit its files.")
    return legacy
