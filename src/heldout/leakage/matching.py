"""Content matching of eval cells against a corpus, streamed batch by batch in bounded memory.

Exact: an informative eval cell matches a corpus cell with the same 128-bit
fingerprint.

Near (re-published with a gene dropped, counts re-processed, a GENCODE change,
an eval gene filter): candidates share at least one LSH band (4 identical sketch
buckets), then each candidate is verified bucket by bucket over the genes
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

import numpy as np

from heldout.leakage.fingerprint import EMPTY, N_BANDS, Signatures, band_keys, gene_prefix

NEAR_THRESHOLD = 0.9
NEAR_MIN_COMPARED = 16
MAX_BAND_FANOUT = 64  # a band key shared by more eval cells than this is too common to point at anything
BITMAP_BITS = 25  # prefilter: 32 MiB of bools, about 3% false positives for 100k eval cells


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
    """A slice of a corpus: one dataset's cells, their exact fingerprints and band keys.

    Sketches are fetched only for candidate rows (``sketch_rows``), so a recorded
    manifest is read at 16 + 64 bytes per cell, not 350.
    """

    dataset_id: str
    exact: np.ndarray  # (n, 2) uint64
    bands: np.ndarray  # (n, N_BANDS) uint64
    cell_ids: np.ndarray  # (n,) corpus cell ids (str), for evidence examples
    sketch_rows: Callable[[np.ndarray], np.ndarray]  # rows -> (len(rows), SKETCH_BUCKETS) uint64
    genes: np.ndarray | None = None  # sorted gene prefixes the dataset measured (None: unknown, assume all)


@dataclass(eq=False)
class ContentHits:
    """Per eval cell: matched exactly, matched nearly, and one corpus cell it matched."""

    exact: np.ndarray
    near: np.ndarray
    examples: dict[int, str] = field(default_factory=dict)
    corpus_cells: int = 0

    @property
    def any(self) -> np.ndarray:
        return self.exact | self.near


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
        bands = band_keys(sig.sketch[rows])
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
        self.bitmap = np.zeros(1 << BITMAP_BITS, dtype=bool)
        shift = np.uint64(64 - BITMAP_BITS)
        for keys in (self.exact_keys, *self.band_keys):
            self.bitmap[(keys >> shift).astype(np.int64)] = True
        self._shift = shift
        # which genes each eval cell's dataset measured (a list of sorted prefix arrays, one per dataset)
        self.cell_genes = cell_genes or [None]
        self.cell_gene_set = cell_gene_set if cell_gene_set is not None else np.zeros(self.n, dtype=np.int64)

    def _lookup(self, keys: np.ndarray, owners: np.ndarray, probe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(eval rows, corpus rows) of every corpus probe key equal to an indexed key."""
        candidates = np.flatnonzero(self.bitmap[(probe >> self._shift).astype(np.int64)])
        if not len(candidates) or not len(keys):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        values = probe[candidates]
        left = np.searchsorted(keys, values, "left")
        reps = np.searchsorted(keys, values, "right") - left
        hit = reps > 0
        reps, left, corpus = reps[hit], left[hit], candidates[hit]
        offsets = np.arange(int(reps.sum())) - np.repeat(np.cumsum(reps) - reps, reps)
        return owners[np.repeat(left, reps) + offsets], np.repeat(corpus, reps)

    def probe(self, batch: CorpusBatch) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """Exact pairs and near candidates (eval row, corpus row) of one corpus batch."""
        e_rows, c_rows = self._lookup(self.exact_keys, self.exact_rows, batch.exact[:, 0])
        same = self.sig.exact[e_rows, 1] == batch.exact[c_rows, 1]
        exact = (e_rows[same], c_rows[same])
        parts = [self._lookup(self.band_keys[b], self.band_rows[b], batch.bands[:, b]) for b in range(N_BANDS)]
        e_cand = np.concatenate([p[0] for p in parts])
        c_cand = np.concatenate([p[1] for p in parts])
        if len(e_cand):
            pairs = np.unique(np.stack([e_cand, c_cand], axis=1), axis=0)
            e_cand, c_cand = pairs[:, 0], pairs[:, 1]
        return exact, (e_cand, c_cand)

    def similarity(self, eval_rows: np.ndarray, corpus_sketch: np.ndarray,
                   corpus_genes: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(compared buckets, identical buckets) per pair, over genes both sides measured."""
        ev = self.sig.sketch[eval_rows]
        ev_empty, cv_empty = ev == EMPTY, corpus_sketch == EMPTY
        valid = ev_empty | isin_sorted(gene_prefix(ev), corpus_genes)
        corpus_ok = np.ones(ev.shape, dtype=bool)
        sets = self.cell_gene_set[eval_rows]
        for s in np.unique(sets):
            rows = sets == s
            corpus_ok[rows] = isin_sorted(gene_prefix(corpus_sketch[rows]), self.cell_genes[s])
        valid &= cv_empty | corpus_ok
        compared = valid & ~(ev_empty & cv_empty)
        return compared.sum(axis=1), (compared & (ev == corpus_sketch)).sum(axis=1)

    def comparable(self, corpus_genes: np.ndarray | None) -> np.ndarray:
        """Informative eval cells with enough sketch buckets on genes the corpus measured to be near-matched."""
        sketch = self.sig.sketch
        on_measured = (sketch != EMPTY) & isin_sorted(gene_prefix(sketch), corpus_genes)
        return self.informative & (on_measured.sum(axis=1) >= NEAR_MIN_COMPARED)


def match_corpus(index: EvalIndex, batches: Iterable[CorpusBatch]) -> ContentHits:
    """Stream corpus batches through the index; exact and near hits per eval cell."""
    hits = ContentHits(exact=np.zeros(index.n, dtype=bool), near=np.zeros(index.n, dtype=bool))
    for batch in batches:
        hits.corpus_cells += len(batch.exact)
        (e_exact, c_exact), (e_cand, c_cand) = index.probe(batch)
        hits.exact[e_exact] = True
        for e, c in zip(e_exact[:3], c_exact[:3], strict=False):
            hits.examples.setdefault(int(e), f"{batch.dataset_id}:{batch.cell_ids[c]}")
        todo = ~hits.exact[e_cand]
        e_cand, c_cand = e_cand[todo], c_cand[todo]
        if not len(e_cand):
            continue
        compared, same = index.similarity(e_cand, batch.sketch_rows(c_cand), batch.genes)
        near = (compared >= NEAR_MIN_COMPARED) & (same >= NEAR_THRESHOLD * compared)
        hits.near[e_cand[near]] = True
        for e, c in zip(e_cand[near][:3], c_cand[near][:3], strict=False):
            hits.examples.setdefault(int(e), f"{batch.dataset_id}:{batch.cell_ids[c]} (near)")
    hits.near &= ~hits.exact
    return hits
