"""Content matching of eval cells against a corpus, streamed batch by batch in bounded memory.

Exact: an informative eval cell matches a corpus cell with the same 128-bit
fingerprint.

Near (re-published with a gene dropped, counts re-processed, a GENCODE change,
an eval gene filter): candidates share at least ``MIN_SHARED_BANDS`` LSH bands (a band
is 4 identical sketch buckets), then each candidate is verified bucket by bucket over the genes
*both sides measured*. A bucket counts when both its values name genes the
other side measured (or are empty); the pair is a near match when at least
``NEAR_MIN_COMPARED`` buckets are compared and at least ``NEAR_THRESHOLD`` of
them are identical (same gene, same count).

Threshold and false-match rate, measured on real cells (benchmarks/README.md):
among all 1.06e8 pairs of distinct cells of six real datasets above the floor,
no pair's similarity exceeded 0.50, against the 0.9 required; re-published cells
with the most frequently detected gene dropped were all found, and with 3% of
their counts changed by one, 96-99%. The information floor (``MIN_GENES`` = 20
detected genes) sits far above the only exact collisions seen between distinct
real cells (cells with at most 1 detected gene), and a near match needs 16
comparable buckets, about 24 detected genes.

The eval side is small and lives in memory; the corpus side is streamed: peak
memory depends on the eval set and the batch size, never on the corpus size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numba
import numpy as np

from heldout.leakage.fingerprint import EMPTY, N_BANDS, Signatures, band_keys, gene_prefix, probe_matrix

NEAR_THRESHOLD = 0.9
NEAR_MIN_COMPARED = 16
MAX_EXAMPLES = 20  # matched corpus cells named in evidence; reading their ids costs a column read per batch
MIN_SHARED_BANDS = 2  # a near duplicate over the same genes shares >= 5 of 8 bands; one missing gene costs one
MAX_BAND_FANOUT = 64  # a band key shared by more eval cells than this is too common to point at anything
# Prefilter: a blocked Bloom filter, one 64-bit word per key holding three of its bits, so a corpus row costs
# nine memory reads, not eighteen. Sized at <= 4 distinct keys per word: 2^18 words (2 MiB) for 900k distinct
# keys (100k eval cells sharing none), 1 MiB for the ~400k of 100k real Baron cells. ~0.5% of other keys pass
# it; a row is looked up in the radix buckets only when lane 0 or MIN_SHARED_BANDS bands pass (~0.5% of rows).
KEYS_PER_WORD = 4
FILTER_WORD_BITS = (10, 24)  # 8 KiB to 128 MiB
_BAND_SPREAD = 0x9E3779B97F4A7C15  # odd: band keys times this are the filter's keys (band_index_keys)
RADIX_BITS = (4, 22)  # buckets per lane of the exact lookup behind the filter: ~1 key each, <= 16 MiB a lane
Pairs = tuple[np.ndarray, np.ndarray]  # (eval rows, corpus rows)


def isin_sorted(values: np.ndarray, sorted_set: np.ndarray | None) -> np.ndarray:
    """``np.isin`` against an already sorted array (None means: every value is in)."""
    if sorted_set is None:
        return np.ones(values.shape, dtype=bool)
    if len(sorted_set) == 0:
        return np.zeros(values.shape, dtype=bool)
    idx = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[idx] == values


@dataclass(frozen=True, eq=False)
class CorpusBatch:
    """A slice of a corpus: one dataset's cells, their exact fingerprints' lane 0 and band keys.

    The rest of each cell's signature is fetched only for the rows that need it (lane 1 of the exact fingerprint
    for lane-0 matches, sketches for candidates, cell ids for evidence), so a recorded manifest is read at 40
    bytes per cell, not 360.
    """

    dataset_id: str
    probe: np.ndarray  # (n, PROBE_WIDTH) uint64: exact lane 0, then the uint32 band keys (fingerprint.probe_matrix)
    exact_lane1: Callable[[np.ndarray], np.ndarray]  # rows -> lane 1 of their exact fingerprints (uint64)
    cell_ids: Callable[[np.ndarray], np.ndarray]  # rows -> corpus cell ids (str), for evidence examples
    sketches: Callable[[], np.ndarray]  # -> (n, SKETCH_BUCKETS) uint64 of the whole batch
    genes: np.ndarray | None = None  # sorted gene prefixes the dataset measured (None: unknown, assume all)

    @staticmethod
    def of(dataset_id: str, sig: Signatures, cell_ids: np.ndarray, genes: np.ndarray | None = None) -> CorpusBatch:
        """A batch of signatures held in memory (a live scan, a test)."""
        return CorpusBatch(dataset_id=dataset_id, probe=probe_matrix(sig.exact[:, 0], band_keys(sig.sketch)),
                           exact_lane1=lambda rows: sig.exact[rows, 1], cell_ids=lambda rows: cell_ids[rows],
                           sketches=lambda: sig.sketch, genes=genes)


@dataclass(eq=False)
class ContentHits:
    """Per eval cell: matched exactly, matched nearly, and one corpus cell it matched."""

    exact: np.ndarray
    near: np.ndarray
    examples: dict[int, str] = field(default_factory=dict)
    corpus_cells: int = 0
    candidates: int = 0  # pairs verified bucket by bucket

    @property
    def any(self) -> np.ndarray:
        return self.exact | self.near


@numba.njit(cache=True, nogil=True)
def _lower(values, lo, hi, x):  # noqa: ANN001, ANN202
    """The first position in values[lo:hi] (sorted) whose value is not below x."""
    while lo < hi:
        mid = (lo + hi) // 2
        if values[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True)
def _in_sorted(values, lo, hi, x):  # noqa: ANN001, ANN202
    """Whether x is in values[lo:hi] (sorted)."""
    at = _lower(values, lo, hi, x)
    return at < hi and values[at] == x


@numba.njit(cache=True, nogil=True)
def _verify(ev_sketch, e_rows, cv_sketch, c_rows, gene_set, a_vals, a_off, b_vals, b_off, compared, same):  # noqa: ANN001, ANN202
    """Per pair: buckets compared and identical, over the genes both sides measured.

    A bucket is skipped when the eval value names a gene the corpus did not measure
    (``a``: per eval gene set) or the corpus value a gene the eval data did not (``b``).
    """
    empty = np.uint64(0xFFFFFFFFFFFFFFFF)
    shift = np.uint64(24)
    for i in range(len(e_rows)):
        e, c = e_rows[i], c_rows[i]
        g = gene_set[e]
        n_cmp = 0
        n_same = 0
        for k in range(ev_sketch.shape[1]):
            ev = ev_sketch[e, k]
            cv = cv_sketch[c, k]
            if ev == empty and cv == empty:
                continue
            if ev != empty and a_off[g + 1] > a_off[g] and _in_sorted(a_vals, a_off[g], a_off[g + 1],
                                                                       (ev >> shift) << shift):
                continue
            if cv != empty and b_off[g + 1] > b_off[g] and _in_sorted(b_vals, b_off[g], b_off[g + 1],
                                                                       (cv >> shift) << shift):
                continue
            n_cmp += 1
            if ev == cv:
                n_same += 1
        compared[i] = n_cmp
        same[i] = n_same


@numba.njit(cache=True, nogil=True, inline="always")
def _key_bits(v):  # noqa: ANN001, ANN202
    """A key's three bits within its filter word (bits 0-17 of the key; the word comes from the top bits)."""
    one, low = np.uint64(1), np.uint64(63)
    return (one << (v & low)) | (one << ((v >> np.uint64(6)) & low)) | (one << ((v >> np.uint64(12)) & low))


@numba.njit(cache=True, nogil=True, inline="always")
def _may_hold(words, shift, v):  # noqa: ANN001, ANN202
    bits = _key_bits(v)
    return np.uint32((words[v >> shift] & bits) == bits)


def bloom_words(keys: np.ndarray) -> tuple[np.ndarray, np.uint64]:
    """The blocked Bloom filter of ``keys`` (uniform 64-bit hashes): its words and the shift to a word index."""
    want = max(1, int(np.ceil(len(np.unique(keys)) / KEYS_PER_WORD)))
    word_bits = int(np.clip(int(np.ceil(np.log2(want))), *FILTER_WORD_BITS))
    shift = np.uint64(64 - word_bits)
    words = np.zeros(1 << word_bits, dtype=np.uint64)
    _fill(words, shift, np.ascontiguousarray(keys, dtype=np.uint64))
    return words, shift


@numba.njit(cache=True, nogil=True)
def _fill(words, shift, keys):  # noqa: ANN001, ANN202
    for v in keys:
        words[v >> shift] |= _key_bits(v)


def radix_table(keys: np.ndarray, key_off: np.ndarray) -> tuple[np.ndarray, np.uint64]:
    """Per lane, where each run of keys sharing their top bits starts (``keys`` sorted within each lane).

    A key that passes the filter is then looked up in its bucket, about one key long, with one or two
    memory reads instead of a binary search's ~17 (they cost ~40% of a join before this table).
    """
    longest = int(np.diff(key_off).max()) if len(key_off) > 1 else 0
    bits = int(np.clip(int(np.ceil(np.log2(max(longest, 1)))), *RADIX_BITS))
    shift = np.uint64(64 - bits)
    bounds = np.arange((1 << bits) + 1, dtype=np.uint64)
    offsets = np.int32 if len(keys) < 2**31 else np.int64  # 4 bytes a bucket keeps the table in cache
    table = np.empty((len(key_off) - 1, len(bounds)), dtype=offsets)
    for lane in range(len(key_off) - 1):
        lo, hi = key_off[lane], key_off[lane + 1]
        table[lane] = lo + np.searchsorted(keys[lo:hi] >> shift, bounds, side="left")
    return table, shift


@numba.njit(cache=True, nogil=True)
def _probe_kernel(probe, bands, words, shift, keys, radix, radix_shift, owners,  # noqa: ANN001, ANN202
                  min_shared, start, mark, shared, exact_e, exact_c, n_exact, cand_e, cand_c, n_cand):
    """One pass over a corpus batch from row ``start``: exact pairs and near candidates.

    ``probe`` is a batch's probe matrix and ``bands`` the same memory as uint32 (band b of row i at [i, 2 + b]).
    Key 0 of ``keys``/``owners`` (bucketed per lane by ``radix``) is the exact lane 0, keys 1.. the bands, as
    :func:`band_index_keys`. Each row first tests its nine keys against the blocked Bloom filter of the indexed
    keys without branches, so the memory reads overlap. Only the rare rows that pass are looked up in their
    bucket: those whose lane 0 passes, and those with ``min_shared`` passing bands (a single band, true or a
    false positive, cannot make a candidate; this drops ~7 in 8 lookups, measured). An (eval row, corpus row)
    pair is an exact pair when lane 0 is equal, and a candidate when ``min_shared`` bands are: bands are counted
    per pair as the row is read (``mark``/``shared``, one slot per eval row), so a corpus row that shares bands
    with many eval rows costs one slot update per shared band, not an output triple to sort.

    Returns (the row to resume from, exact pairs, candidates). The row is ``len(probe)`` when the batch is done;
    before that, an output array was full, the pairs of that row are not counted, and the caller resumes there
    with larger outputs and a fresh ``mark``.
    """
    n_keys = bands.shape[1] - 1  # lane 0, then the bands
    spread = np.uint64(_BAND_SPREAD)
    for i in range(start, probe.shape[0]):
        row = np.int32(i)
        exact = _may_hold(words, shift, probe[i, 0])
        mask, n_bands = exact, np.uint32(0)
        for b in range(1, n_keys):
            hit = _may_hold(words, shift, np.uint64(bands[i, b + 1]) * spread)
            n_bands += hit
            mask |= hit << np.uint32(b)
        if n_bands < min_shared:  # the filter has no false negatives: no eval row shares min_shared bands
            if exact == 0:
                continue
            mask = exact
        row_exact, row_cand = n_exact, n_cand
        for k in range(n_keys):
            if not (mask >> np.uint32(k)) & np.uint32(1):
                continue
            v = probe[i, 0] if k == 0 else np.uint64(bands[i, k + 1]) * spread
            if k > 0 and v == 0:  # an all-empty band
                continue
            bucket = v >> radix_shift
            lo, hi = radix[k, bucket], radix[k, bucket + 1]
            while lo < hi and keys[lo] < v:
                lo += 1
            while lo < hi and keys[lo] == v:
                owner = owners[lo]
                lo += 1
                if k == 0:
                    if n_exact == len(exact_e):
                        return i, row_exact, row_cand
                    exact_e[n_exact] = owner
                    exact_c[n_exact] = i
                    n_exact += 1
                    continue
                if mark[owner] != row:
                    mark[owner] = row
                    shared[owner] = 0
                shared[owner] += np.uint8(1)
                if shared[owner] == min_shared:
                    if n_cand == len(cand_e):
                        return i, row_exact, row_cand
                    cand_e[n_cand] = owner
                    cand_c[n_cand] = i
                    n_cand += 1
    return probe.shape[0], n_exact, n_cand


def band_index_keys(bands: np.ndarray) -> np.ndarray:
    """uint32 band keys as the 64-bit keys the filter and the radix buckets use (x * an odd constant, mod 2^64:
    one multiply in the kernel; equal keys stay equal, 0 stays 0, and the top bits depend on every bit)."""
    return np.asarray(bands, dtype=np.uint64) * np.uint64(_BAND_SPREAD)


def probe_pairs(probe: np.ndarray, words: np.ndarray, shift: np.uint64, keys: np.ndarray, radix: np.ndarray,
                radix_shift: np.uint64, owners: np.ndarray, n_eval: int,
                min_shared: int = MIN_SHARED_BANDS) -> tuple[Pairs, Pairs]:
    """(exact (eval, corpus) pairs on lane 0, candidate pairs sharing ``min_shared`` bands) of one batch.

    Outputs start at one pair per corpus row and grow 4x when full; the kernel resumes at the row it stopped at.
    Candidates come ordered by (eval row, corpus row).
    """
    probe = np.ascontiguousarray(probe, dtype=np.uint64)
    bands = probe.view(np.uint32)
    capacity = max(1024, len(probe))
    exact_e, exact_c, cand_e, cand_c = (np.empty(capacity, np.int64) for _ in range(4))
    shared = np.zeros(n_eval, np.uint8)  # bands shared with the current row: at most N_BANDS
    row = n_exact = n_cand = 0
    while True:
        mark = np.full(n_eval, -1, np.int32)  # 4 + 1 bytes per eval row: 0.5 MB for 100k fits the L2 cache
        row, n_exact, n_cand = _probe_kernel(probe, bands, words, shift, keys, radix, radix_shift, owners, min_shared,
                                             row, mark, shared, exact_e, exact_c, n_exact, cand_e, cand_c, n_cand)
        if row == len(probe):
            order = np.lexsort((cand_c[:n_cand], cand_e[:n_cand]))
            return (exact_e[:n_exact], exact_c[:n_exact]), (cand_e[order], cand_c[order])
        exact_e, exact_c, cand_e, cand_c = (np.concatenate([a, np.empty(3 * len(a), np.int64)])
                                            for a in (exact_e, exact_c, cand_e, cand_c))


def _ragged(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.concatenate([[0], np.cumsum([len(a) for a in arrays])]).astype(np.int64)
    values = np.concatenate(arrays).astype(np.uint64) if arrays else np.zeros(0, np.uint64)
    return values, offsets


class EvalIndex:
    """The informative eval cells, indexed for exact and band lookups."""

    def __init__(self, sig: Signatures, cell_genes: list[np.ndarray | None] | None = None,
                 cell_gene_set: np.ndarray | None = None) -> None:
        self.sig = sig
        self.n = len(sig)
        self.informative = sig.informative
        rows = np.flatnonzero(self.informative)
        lane0 = sig.exact[rows, 0]
        order = np.argsort(lane0, kind="stable")
        self.exact_keys, self.exact_rows = lane0[order], rows[order]
        bands = band_index_keys(band_keys(sig.sketch[rows]))
        self.band_keys: list[np.ndarray] = []
        self.band_rows: list[np.ndarray] = []
        for b in range(N_BANDS):
            keys, owners = bands[:, b], rows
            keep = keys != 0
            keys, owners = keys[keep], owners[keep]
            order = np.argsort(keys, kind="stable")
            keys, owners = keys[order], owners[order]
            _, counts = np.unique(keys, return_counts=True)
            common = np.repeat(counts > MAX_BAND_FANOUT, counts)
            self.band_keys.append(keys[~common])
            self.band_rows.append(owners[~common])
        self.keys, self.key_off = _ragged([self.exact_keys, *self.band_keys])
        self.words, self.shift = bloom_words(self.keys)
        self.radix, self.radix_shift = radix_table(self.keys, self.key_off)
        self.owners = np.concatenate([self.exact_rows, *self.band_rows]).astype(np.int64)
        # which genes each eval cell's dataset measured (a list of sorted prefix arrays, one per dataset)
        self.cell_genes = cell_genes or [None]
        self.cell_gene_set = cell_gene_set if cell_gene_set is not None else np.zeros(self.n, dtype=np.int64)
        self._differences: dict[int, tuple] = {}

    def probe(self, batch: CorpusBatch) -> tuple[Pairs, Pairs]:
        """Exact pairs, and near candidates (pairs sharing at least MIN_SHARED_BANDS bands)."""
        (e, c), candidates = probe_pairs(batch.probe, self.words, self.shift, self.keys, self.radix,
                                         self.radix_shift, self.owners, self.n)
        if len(e):
            same = self.sig.exact[e, 1] == batch.exact_lane1(c)
            e, c = e[same], c[same]
        return (e, c), candidates

    def _gene_differences(self, corpus_genes: np.ndarray | None) -> tuple:
        """Per eval gene set: genes only the eval side measured, genes only the corpus measured."""
        key = id(corpus_genes)
        if key not in self._differences:
            only_eval, only_corpus = [], []
            for genes in self.cell_genes:
                if genes is None or corpus_genes is None:
                    only_eval.append(np.zeros(0, np.uint64))
                    only_corpus.append(np.zeros(0, np.uint64))
                else:
                    only_eval.append(genes[~isin_sorted(genes, corpus_genes)])
                    only_corpus.append(corpus_genes[~isin_sorted(corpus_genes, genes)])
            self._differences[key] = (*_ragged(only_eval), *_ragged(only_corpus), corpus_genes)
        return self._differences[key]

    def similarity(self, eval_rows: np.ndarray, corpus_sketch: np.ndarray, corpus_rows: np.ndarray,
                   corpus_genes: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(compared buckets, identical buckets) per pair, over genes both sides measured."""
        a_vals, a_off, b_vals, b_off, _ = self._gene_differences(corpus_genes)
        compared = np.zeros(len(eval_rows), dtype=np.int64)
        same = np.zeros(len(eval_rows), dtype=np.int64)
        _verify(self.sig.sketch, eval_rows.astype(np.int64), corpus_sketch, corpus_rows.astype(np.int64),
                self.cell_gene_set.astype(np.int64), a_vals, a_off, b_vals, b_off, compared, same)
        return compared, same

    def comparable(self, corpus_genes: np.ndarray | None) -> np.ndarray:
        """Informative eval cells with enough sketch buckets on genes the corpus measured to be near-matched."""
        sketch = self.sig.sketch
        on_measured = (sketch != EMPTY) & isin_sorted(gene_prefix(sketch), corpus_genes)
        return self.informative & (on_measured.sum(axis=1) >= NEAR_MIN_COMPARED)


def match_corpus(index: EvalIndex, batches: Iterable[CorpusBatch]) -> ContentHits:
    """Stream corpus batches through the index; exact and near hits per eval cell."""
    hits = ContentHits(exact=np.zeros(index.n, dtype=bool), near=np.zeros(index.n, dtype=bool))
    for batch in batches:
        hits.corpus_cells += len(batch.probe)
        (e_exact, c_exact), (e_cand, c_cand) = index.probe(batch)
        hits.exact[e_exact] = True
        if len(e_exact) and len(hits.examples) < MAX_EXAMPLES:
            ids = batch.cell_ids(c_exact[:3])
            for e, cell in zip(e_exact[:3], ids, strict=False):
                hits.examples.setdefault(int(e), f"{batch.dataset_id}:{cell}")
        todo = ~hits.exact[e_cand]
        e_cand, c_cand = e_cand[todo], c_cand[todo]
        if not len(e_cand):
            continue
        hits.candidates += len(e_cand)
        compared, same = index.similarity(e_cand, batch.sketches(), c_cand, batch.genes)
        near = (compared >= NEAR_MIN_COMPARED) & (same >= NEAR_THRESHOLD * compared)
        hits.near[e_cand[near]] = True
        if near.any() and len(hits.examples) < MAX_EXAMPLES:
            ids = batch.cell_ids(c_cand[near][:3])
            for e, cell in zip(e_cand[near][:3], ids, strict=False):
                hits.examples.setdefault(int(e), f"{batch.dataset_id}:{cell} (near)")
    hits.near &= ~hits.exact
    return hits
