"""Content signatures of cells: exact fingerprints and near-duplicate sketches of raw counts.

Each cell's non-zero ``(Ensembl gene id, integer count)`` pairs give:

* an **exact fingerprint**: a 128-bit multiset hash (each pair mixed with
  splitmix64 into lane 0 and re-mixed into lane 1, lanes summed mod 2^64).
  It does not depend on gene order or on genes the cell does not express, so a
  cell re-published under another dataset id has the same fingerprint;
* a **sketch** for near duplicates: a one-permutation MinHash. Genes fall into
  ``SKETCH_BUCKETS`` buckets by their hash; per bucket the cell keeps the pair
  of its expressed gene with the smallest hash, packed as
  ``gene-hash prefix (40 bits) | count (24 bits)``. Because a bucket's value
  names its gene, two sketches can be compared over the genes *both sides
  measured* only, which is what makes the evidence survive a dropped gene, a
  GENCODE change or an eval card's gene filter;
* ``n_genes`` and ``n_counts``: a cell with fewer than ``MIN_GENES`` detected
  genes is below the information floor and is never content evidence.

One numba pass over a CSR block computes all of it (about 90M non-zeros/s on one
core here; the earlier numpy fingerprint ran at 9M/s and gives identical exact
fingerprints).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numba
import numpy as np
import pyarrow as pa
import scipy.sparse as sp

SKETCH_BUCKETS = 32
BUCKETS_PER_BAND = 4
N_BANDS = SKETCH_BUCKETS // BUCKETS_PER_BAND
EMPTY = np.uint64(2**64 - 1)  # a bucket where the cell expresses no gene
COUNT_BITS = 24
MAX_COUNT = 2**COUNT_BITS - 1
MIN_GENES = 20  # information floor: see docs in heldout.leakage.matching and benchmarks/README.md

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_BAND_SEED = np.uint64(0x243F6A8885A308D3)


def gene_keys(feature_ids: np.ndarray | list[str]) -> np.ndarray:
    """A stable 64-bit key per Ensembl gene id (blake2b), independent of var order."""
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(str(f).encode(), digest_size=8).digest(), "little") for f in feature_ids),
        dtype=np.uint64, count=len(feature_ids))


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` for wide-range integers by sort and neighbour comparison.

    numpy 2.4's plain ``np.unique`` takes a path about 80x slower than this on
    64-bit hashes (10 s instead of 0.13 s for 5M values here).
    """
    ordered = np.sort(values)
    if len(ordered) == 0:
        return ordered
    return ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])]


def gene_prefix(keys: np.ndarray) -> np.ndarray:
    """The part of a gene key a sketch value carries (its top 40 bits, low bits zero)."""
    return (np.asarray(keys, dtype=np.uint64) >> np.uint64(COUNT_BITS)) << np.uint64(COUNT_BITS)


@numba.njit(cache=True, nogil=True, inline="always")
def _mix(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, nogil=True)
def _signature_kernel(indptr, indices, data, keys, exact, sketch, n_genes, n_counts):  # noqa: ANN001, ANN202
    golden = np.uint64(0x9E3779B97F4A7C15)
    lane_seed = np.uint64(0x13198A2E03707344)
    low = np.uint64((1 << 24) - 1)
    shift = np.uint64(24)
    bucket_shift = np.uint64(59)  # top 5 bits of the gene key: 32 buckets
    for row in range(len(indptr) - 1):
        lane0 = np.uint64(0)
        lane1 = np.uint64(0)
        genes = 0
        total = 0.0
        for j in range(indptr[row], indptr[row + 1]):
            value = round(data[j])
            if value <= 0:
                continue
            count = np.uint64(value)
            key = keys[indices[j]]
            pair = _mix((key ^ (count * golden)) + golden)
            lane0 += pair
            lane1 += _mix((pair ^ lane_seed) + golden)
            packed = ((key >> shift) << shift) | (count if count < low else low)
            bucket = np.int64(key >> bucket_shift)
            if packed < sketch[row, bucket]:
                sketch[row, bucket] = packed
            genes += 1
            total += value
        exact[row, 0] = lane0
        exact[row, 1] = lane1
        n_genes[row] = genes
        n_counts[row] = total


@dataclass(frozen=True, eq=False)
class Signatures:
    """Content signatures of n cells."""

    exact: np.ndarray  # (n, 2) uint64
    sketch: np.ndarray  # (n, SKETCH_BUCKETS) uint64
    n_genes: np.ndarray  # (n,) int32: detected genes
    n_counts: np.ndarray  # (n,) float64: total counts

    def __len__(self) -> int:
        return len(self.n_genes)

    @property
    def informative(self) -> np.ndarray:
        """Cells above the information floor: only these are ever content evidence."""
        return self.n_genes >= MIN_GENES

    def take(self, rows: np.ndarray) -> Signatures:
        return Signatures(self.exact[rows], self.sketch[rows], self.n_genes[rows], self.n_counts[rows])

    @staticmethod
    def concat(parts: list[Signatures]) -> Signatures:
        if not parts:
            return Signatures(np.zeros((0, 2), np.uint64), np.zeros((0, SKETCH_BUCKETS), np.uint64),
                              np.zeros(0, np.int32), np.zeros(0, np.float64))
        return Signatures(np.concatenate([p.exact for p in parts]), np.concatenate([p.sketch for p in parts]),
                          np.concatenate([p.n_genes for p in parts]), np.concatenate([p.n_counts for p in parts]))

    def columns(self) -> dict[str, pa.Array]:
        """Arrow columns as stored in fingerprint and corpus files.

        ``probe`` holds what a join reads for every cell, 40 bytes: exact lane 0 (uint64), then the
        ``N_BANDS`` band keys (uint32). ``exact_lane1`` (read only for cells whose lane 0 matched) completes
        the 128-bit exact fingerprint; ``sketch`` holds the 32 bucket values (read only for candidates). The
        hash columns are fixed-size binary or uint64, which parquet stores flat (no list levels): a reader
        views them as uint64 matrices without copying.
        """
        return {"probe": _fixed_binary(probe_matrix(self.exact[:, 0], band_keys(self.sketch))),
                "exact_lane1": pa.array(np.ascontiguousarray(self.exact[:, 1])),
                "sketch": _fixed_binary(self.sketch),
                "n_genes": pa.array(self.n_genes), "n_counts": pa.array(self.n_counts)}

    @staticmethod
    def from_table(table: pa.Table) -> Signatures:
        """Signatures of a stored table, in today's layout or the legacy one (80-byte probes, see
        :data:`LEGACY_PROBE_WIDTH`)."""
        if "exact_lane1" in table.column_names:
            lane0 = matrix(table.column("probe"), PROBE_WIDTH)[:, 0]
            exact = np.stack([lane0, table.column("exact_lane1").to_numpy()], axis=1)
        else:
            exact = np.ascontiguousarray(matrix(table.column("probe"), LEGACY_PROBE_WIDTH)[:, :2])
        return Signatures(exact, matrix(table.column("sketch"), SKETCH_BUCKETS),
                          table.column("n_genes").to_numpy().astype(np.int32, copy=False),
                          table.column("n_counts").to_numpy().astype(np.float64, copy=False))


PROBE_WIDTH = 1 + N_BANDS // 2  # uint64 words per cell in the ``probe`` column: exact lane 0, then uint32 bands
# Tables written before 2026-11-30 stored 80-byte probes: exact lanes 0-1, then the 64-bit band hashes, whose
# top halves are today's band keys (:func:`narrow_band_hashes`); readers convert them (:func:`legacy_probe`).
LEGACY_PROBE_WIDTH = 2 + N_BANDS
PAGE_LIMIT = 1 << 30  # bytes and rows per data page: more than any row group's column holds
HASH_COLUMNS = ("probe", "exact_lane1", "sketch")  # incompressible: stored plain, no dictionary, no statistics


def probe_matrix(lane0: np.ndarray, bands: np.ndarray) -> np.ndarray:
    """(n, PROBE_WIDTH) uint64: exact lane 0, then the (n, N_BANDS) uint32 band keys packed two per word."""
    out = np.empty((len(lane0), PROBE_WIDTH), dtype=np.uint64)
    out[:, 0] = lane0
    out.view(np.uint32)[:, 2:] = bands
    return out


def legacy_probe(old: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(probe matrix, exact lane 1) of a legacy 80-byte probe matrix."""
    return probe_matrix(old[:, 0], narrow_band_hashes(old[:, 2:])), np.ascontiguousarray(old[:, 1])


def narrow_band_hashes(hashes: np.ndarray) -> np.ndarray:
    """64-bit band hashes to band keys: the top 32 bits, except that only an all-empty band (hash 0) is 0."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    keys = (hashes >> np.uint64(32)).astype(np.uint32)
    keys[(keys == 0) & (hashes != 0)] = 1
    return keys


def _fixed_binary(values: np.ndarray) -> pa.FixedSizeBinaryArray:
    """Rows of a uint64 matrix as fixed-size binary values, sharing the matrix's memory (no copy:
    ``tobytes`` copied 130 MB for 410k cells while holding the GIL)."""
    values = np.ascontiguousarray(values, dtype=np.uint64)
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(8 * values.shape[1]), len(values),
                                                [None, pa.py_buffer(values)])


def matrix(column: pa.ChunkedArray | pa.Array, width: int) -> np.ndarray:
    """The (n, width) uint64 matrix of a stored fixed-size binary column (zero-copy for one chunk)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = [np.frombuffer(c.buffers()[1], dtype=np.uint64, count=(c.offset + len(c)) * width)[c.offset * width:]
             .reshape(-1, width) for c in chunks]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros((0, width), np.uint64)


def write_options(columns: list[str]) -> dict:
    """pyarrow.parquet.write_table options: hash columns plain and uncompressed, the rest dictionary + zstd.

    One data page per row group (pyarrow cuts pages at 1 MiB or 20,000 rows by default), so a join reads a row
    group's probes as one view of the file (:mod:`heldout.corpora.plain_pages`).
    """
    others = [c for c in columns if c not in HASH_COLUMNS]
    return {"use_dictionary": others, "write_statistics": others, "data_page_size": PAGE_LIMIT,
            "max_rows_per_page": PAGE_LIMIT,
            "compression": {c: "NONE" if c in HASH_COLUMNS else "ZSTD" for c in columns}}


def signatures(block: sp.csr_matrix, keys: np.ndarray) -> Signatures:
    """Signatures of the rows of ``block`` (cells x genes); ``keys[j]`` is :func:`gene_keys` of column j.

    Counts are rounded to integers; zero (and invalid negative) entries contribute nothing.
    """
    block = sp.csr_matrix(block)
    n = block.shape[0]
    exact = np.zeros((n, 2), dtype=np.uint64)
    sketch = np.full((n, SKETCH_BUCKETS), EMPTY, dtype=np.uint64)
    n_genes = np.zeros(n, dtype=np.int32)
    n_counts = np.zeros(n, dtype=np.float64)
    # numba specialises on the block's own dtypes (int32 indices, float32 data): no copies
    _signature_kernel(block.indptr, block.indices, block.data, np.asarray(keys, dtype=np.uint64), exact, sketch,
                      n_genes, n_counts)
    return Signatures(exact, sketch, n_genes, n_counts)


def cell_fingerprints(block: sp.csr_matrix, keys: np.ndarray) -> np.ndarray:
    """The exact fingerprints alone, as an (n, 2) uint64 array."""
    return signatures(block, keys).exact


def band_keys(sketch: np.ndarray) -> np.ndarray:
    """(n, N_BANDS) uint32: one key per group of BUCKETS_PER_BAND sketch buckets (LSH bands).

    Two cells share a band key when those buckets are identical; a candidate for a near match shares at least
    ``MIN_SHARED_BANDS`` bands. A band with an empty bucket still hashes; an all-empty band is 0 and never used
    as a key. Per band: ``acc = splitmix64((acc ^ bucket) * GOLDEN)`` over its buckets from ``_BAND_SEED``, then
    :func:`narrow_band_hashes`. 32 bits are enough: equal keys only make a pair a candidate, which is then
    verified bucket by bucket, and a random key of a 100k-cell eval set is hit by chance once in ~40k bands.
    """
    sketch = np.ascontiguousarray(sketch, dtype=np.uint64).reshape(len(sketch), N_BANDS * BUCKETS_PER_BAND)
    out = np.empty((len(sketch), N_BANDS), dtype=np.uint32)
    _band_kernel(sketch, out)
    return out


@numba.njit(cache=True, nogil=True)
def _band_kernel(sketch, out):  # noqa: ANN001, ANN202
    """band_keys in one pass (numpy needed a dozen temporaries of the whole table: 0.25 s for 410k cells)."""
    for i in range(sketch.shape[0]):
        for b in range(out.shape[1]):
            acc = _BAND_SEED
            empty = True
            for k in range(BUCKETS_PER_BAND):
                v = sketch[i, b * BUCKETS_PER_BAND + k]
                empty = empty and v == EMPTY
                acc = _mix((acc ^ v) * _GOLDEN + _GOLDEN)  # splitmix64 of (acc ^ bucket) * GOLDEN
            top = np.uint32(acc >> np.uint64(32))
            out[i, b] = np.uint32(0) if empty else (top if top != 0 else np.uint32(1))
