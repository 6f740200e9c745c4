"""The per-cell signature table a curated dataset ships and audits read, written as cells stream.

One row per cell: ``observation_joinid``, ``dataset_id``, ``donor_id`` and the
columns of :meth:`heldout.leakage.fingerprint.Signatures.columns`. Curation
hands :class:`SignatureTableWriter` each block's signatures as they are
computed; the writer gathers them into row groups and writes each one, then
flushes it to disk, on a thread of its own. The disk works while X streams,
and closing the table only waits for its last row group.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from heldout._files import sync_data
from heldout.leakage.fingerprint import Signatures, write_options

ROW_GROUP_CELLS = 1 << 17  # ~5.5 MB of signatures per row group


def signature_table(cell_ids: np.ndarray, dataset_ids: np.ndarray, donor_ids: np.ndarray,
                    sig: Signatures) -> pa.Table:
    return pa.table({"observation_joinid": pa.array(cell_ids, pa.string()),
                     "dataset_id": pa.array(dataset_ids, pa.string()), "donor_id": pa.array(donor_ids, pa.string()),
                     **sig.columns()})


class SignatureTableWriter:
    """Write the signature table of cells ``cell_ids`` (with their dataset and donor ids) to ``path``.

    Call :meth:`add` with the signatures of consecutive cells, in order, then :meth:`finish`, which
    returns a future that completes when the file is whole and on disk (and raises what any write
    raised). Use it as a context manager: leaving waits for the thread, and stops it on an error.
    """

    def __init__(self, path: str | Path, cell_ids: np.ndarray, dataset_ids: np.ndarray, donor_ids: np.ndarray,
                 *, row_group_cells: int = ROW_GROUP_CELLS) -> None:
        self._path = Path(path)
        self._cells = (cell_ids, dataset_ids, donor_ids)
        self._row_group = max(1, row_group_cells)
        self._parts: list[Signatures] = []
        self._buffered = 0
        self._handed = 0  # rows handed to the thread
        self._groups = 0  # row groups handed to the thread
        self._writer: pq.ParquetWriter | None = None
        self._fd: int | None = None
        self._error: BaseException | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="signature-table")

    def __enter__(self) -> SignatureTableWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._thread.shutdown(wait=True, cancel_futures=exc_type is not None)
        self._close_file()

    def add(self, sig: Signatures) -> None:
        """The signatures of the next ``len(sig)`` cells."""
        self._parts.append(sig)
        self._buffered += len(sig)
        if self._buffered >= self._row_group:
            self._hand_over()

    def finish(self) -> Future:
        """Write what is left, close and fsync the file; the future's result is the number of rows."""
        self._hand_over()
        if self._handed != len(self._cells[0]):
            msg = f"signatures for {self._handed} cells, but the table has {len(self._cells[0])}"
            raise ValueError(msg)
        return self._thread.submit(self._complete)

    def _hand_over(self) -> None:
        if not self._buffered and self._groups:  # nothing new (the first hand-over always writes: the schema)
            self._parts = []
            return
        sig = Signatures.concat(self._parts)
        rows = slice(self._handed, self._handed + len(sig))
        self._parts, self._buffered, self._handed = [], 0, rows.stop
        self._groups += 1
        self._thread.submit(self._write, rows, sig)

    def _write(self, rows: slice, sig: Signatures) -> None:
        if self._error is not None:
            return
        try:
            table = signature_table(*(column[rows] for column in self._cells), sig)
            if self._writer is None:
                self._writer = pq.ParquetWriter(self._path, table.schema, **write_options(table.column_names))
                self._fd = os.open(self._path, os.O_RDONLY)
            self._writer.write_table(table, row_group_size=max(1, len(table)))
            sync_data(self._fd)  # what is written so far, while cells stream
        except BaseException as exc:  # raised by finish()'s future
            self._error = exc

    def _complete(self) -> int:
        if self._error is None:
            try:
                if self._writer is not None:
                    self._writer.close()
                    self._writer = None
                os.fsync(self._fd)  # the footer too (the descriptor stays open until the writer exits)
            except BaseException as exc:
                self._error = exc
        if self._error is not None:
            raise self._error
        return self._handed

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
