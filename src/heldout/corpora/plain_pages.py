"""Zero-copy views of the plain columns heldout writes for joins (probe, exact_lane1, sketch).

pyarrow decodes a column into a new buffer. For a corpus join that copy was the largest cost after the probe
kernel (0.2-0.3 s of a 10M-row join, benchmarks/README.md). The hash columns are written PLAIN, uncompressed and
without nulls (``fingerprint.write_options``), so their values lie in the file exactly as they lie in memory,
after each data page's header and definition levels. :func:`plain_pages` finds them by reading the page headers
(parquet-format's ``PageHeader``, Thrift compact protocol) and returns numpy views of a memory map.

Anything else returns None, and the caller reads the column with pyarrow: a dictionary page, compression, a
data page v2, another encoding, a null value, a nested column, values whose size disagrees with the header, or
a header this reader cannot parse.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

_DATA_PAGE = 0  # PageType.DATA_PAGE (v1)
_PLAIN = 0  # Encoding.PLAIN
_RLE = 3  # Encoding.RLE, the definition levels' encoding
# PageHeader fields read: 1 type, 2 uncompressed_page_size, 3 compressed_page_size, 5 data_page_header
# (1 num_values, 2 encoding, 3 definition_level_encoding)
_PAGE_HEADER = {1: None, 2: None, 3: None, 5: {1: None, 2: None, 3: None}}
_INTEGER_TYPES = (3, 4, 5, 6)  # byte, i16, i32, i64


class _Unreadable(Exception):
    """A header this reader does not handle; the column is read with pyarrow instead."""


def _varint(buf: memoryview, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise _Unreadable


def _zigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def _skip(buf: memoryview, at: int, kind: int) -> int:
    """The position after a value of compact type ``kind`` (skipped unread)."""
    if kind in (1, 2):  # booleans live in the field header
        return at
    if kind == 3:
        return at + 1
    if kind in (4, 5, 6):
        return _varint(buf, at)[1]
    if kind == 7:
        return at + 8
    if kind == 8:
        size, at = _varint(buf, at)
        return at + size
    if kind in (9, 10):  # list, set
        head = buf[at]
        at += 1
        size, element = head >> 4, head & 0x0F
        if size == 15:
            size, at = _varint(buf, at)
        for _ in range(size):
            at = _skip(buf, at, element)
        return at
    if kind == 11:  # map
        size, at = _varint(buf, at)
        if size:
            types = buf[at]
            at += 1
            for _ in range(size):
                at = _skip(buf, _skip(buf, at, types >> 4), types & 0x0F)
        return at
    if kind == 12:
        return _struct(buf, at, {})[1]
    raise _Unreadable


def _struct(buf: memoryview, at: int, wanted: dict) -> tuple[dict, int]:
    """The wanted integer (and nested struct) fields of a compact struct, and the position after it."""
    fields: dict = {}
    last = 0
    while True:
        head = buf[at]
        at += 1
        if head == 0:
            return fields, at
        delta, kind = head >> 4, head & 0x0F
        if delta:
            field = last + delta
        else:
            raw, at = _varint(buf, at)
            field = _zigzag(raw)
        last = field
        if field in wanted and wanted[field] is None and kind in _INTEGER_TYPES:
            if kind == 3:
                fields[field], at = buf[at], at + 1
            else:
                raw, at = _varint(buf, at)
                fields[field] = _zigzag(raw)
        elif field in wanted and wanted[field] is not None and kind == 12:
            fields[field], at = _struct(buf, at, wanted[field])
        else:
            at = _skip(buf, at, kind)


def _all_present(buf: memoryview, at: int, end: int, n_values: int) -> bool:
    """Whether RLE/bit-packed definition levels (bit width 1) in buf[at:end] say every value is present."""
    covered = 0
    while at < end:
        header, at = _varint(buf, at)
        if header & 1:  # a bit-packed run: 8 * (header >> 1) levels, one bit each
            groups = header >> 1
            if any(byte != 0xFF for byte in buf[at:at + groups]):
                return False
            at += groups
            covered += 8 * groups
        else:  # an RLE run: one byte holding the repeated level
            if buf[at] != 1:
                return False
            at += 1
            covered += header >> 1
    return covered >= n_values


def _pages(buf: memoryview, start: int, size: int, row_bytes: int, max_level: int) -> list[tuple[int, int]]:
    """(value offset, number of values) of each data page of a column chunk; raises _Unreadable."""
    at, end, pages = start, start + size, []
    while at < end:
        header, body = _struct(buf, at, _PAGE_HEADER)
        data = header.get(5)
        if header.get(1) != _DATA_PAGE or data is None or data.get(2) != _PLAIN:
            raise _Unreadable
        if header.get(3) is None or header.get(2) != header.get(3):  # no size, or compressed
            raise _Unreadable
        n_values, page_end = data.get(1, -1), body + header[3]
        values = body
        if max_level:
            if data.get(3) != _RLE:
                raise _Unreadable
            length = int.from_bytes(buf[body:body + 4], "little")
            values = body + 4 + length
            if not _all_present(buf, body + 4, values, n_values):
                raise _Unreadable
        if n_values < 0 or page_end > end or page_end - values != n_values * row_bytes:
            raise _Unreadable
        pages.append((values, n_values))
        at = page_end
    return pages


def open_map(path: Path) -> mmap.mmap:
    """A read-only memory map of a file (closed when the last view of it is released)."""
    with path.open("rb") as handle:
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)


def plain_pages(parquet: pq.ParquetFile, data: mmap.mmap, group: int, column: str,
                width: int) -> list[tuple[int, np.ndarray]] | None:
    """(first row, (n, width) uint64 view) per data page of ``column`` in row group ``group``; None when the
    column is not plain, uncompressed and null-free (read it with pyarrow then).

    ``width`` is the value size in 8-byte words (a fixed-size binary of 8 * width bytes, or an int64).
    """
    index = parquet.schema_arrow.get_field_index(column)
    if index < 0:
        return None
    described = parquet.schema.column(index)
    chunk = parquet.metadata.row_group(group).column(index)
    fixed = described.physical_type == "FIXED_LEN_BYTE_ARRAY" and described.length == 8 * width
    if not (fixed or (described.physical_type == "INT64" and width == 1)):
        return None
    if (described.max_repetition_level or described.max_definition_level > 1 or chunk.compression != "UNCOMPRESSED"
            or chunk.dictionary_page_offset is not None):
        return None
    try:
        pages = _pages(memoryview(data), chunk.data_page_offset, chunk.total_compressed_size, 8 * width,
                       described.max_definition_level)
    except (_Unreadable, IndexError):
        return None
    if sum(n for _, n in pages) != chunk.num_values:
        return None
    views, row = [], 0
    for offset, n in pages:
        views.append((row, np.frombuffer(data, dtype=np.uint64, count=n * width, offset=offset).reshape(n, width)))
        row += n
    return views
