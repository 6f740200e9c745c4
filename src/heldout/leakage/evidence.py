"""Evidence of overlap between one model corpus and one evaluation dataset, cell by cell.

Every kind of documentation marks which eval cells the corpus has *seen*, at the
finest level its documentation allows:

* a recorded manifest, or a Census filter scanned live: a cell is seen when its
  donor ``(dataset_id, donor_id)`` is in the corpus, or its counts match a
  corpus cell exactly or nearly (:mod:`heldout.leakage.matching`); a cell of a
  shared dataset whose donor is ``unknown``/``pooled``/``na`` and whose content
  cannot be compared is counted as seen, since nothing can rule it out;
* a list of dataset or collection ids: every cell of a listed dataset;
* accessions: every cell of a dataset whose collection DOI or citation is listed;
* a date cut-off: every cell, when the eval data were public before it.

Prose, an incomplete list or an unreachable source is ``unresolved``: it never
counts as clean. Because evidence is per cell, the same audit gives the tier of
a whole dataset, of each split, and of exactly the cells a task scores.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np
import pandas as pd

from heldout.cards.dataset import SPECIAL_DONOR_IDS
from heldout.cards.model import Corpus, Documentation
from heldout.leakage.fingerprint import Signatures
from heldout.leakage.universe import GeneUniverse

Status = Literal["overlap", "clean", "unresolved"]
DOI_RE = re.compile(r"10\.\d{4,9}/[^\s;,)]+", re.IGNORECASE)
ACCESSION_RE = re.compile(r"\b(GSE\d+|E-[A-Z]+-\d+|PMID:?\s*\d+)\b", re.IGNORECASE)


@dataclass(frozen=True, eq=False)
class EvalData:
    """What an audit needs of one evaluation dataset, per cell."""

    name: str
    version: str | None
    organism: str
    census_version: str
    cell_ids: np.ndarray  # (n,) str
    dataset_of_cell: np.ndarray  # (n,) str
    donor_of_cell: np.ndarray  # (n,) str
    sources: tuple[dict, ...]  # per source dataset: dataset_id, collection_id, collection_doi, citation
    signatures: Signatures | None  # None: the release predates content signatures
    universe: GeneUniverse | None  # genes the source datasets measured
    split: np.ndarray | None = None  # (n,) split name per cell, when known
    identifiers: tuple = ()  # the card's SourceIdentifiers, one per source dataset (matched by title)
    obs_loader: Callable[[], pd.DataFrame] | None = field(default=None, repr=False)  # Census obs, in cell order
    condition_of_cell: np.ndarray | None = None  # (n,) LINE|perturbation, for perturbation datasets (leakage.conditions)

    @property
    def n(self) -> int:
        return len(self.cell_ids)

    @cached_property
    def obs(self) -> pd.DataFrame | None:
        """The eval cells' Census-schema obs columns (disease, tissue_general, nnz...), in cell order, if known."""
        return self.obs_loader() if self.obs_loader is not None else None

    def identifiers_of(self, dataset_id: str) -> object | None:
        """The card's identifiers entry for source dataset ``dataset_id`` (matched by its title), or None."""
        title = next((s.get("dataset_title", "") for s in self.sources if s.get("dataset_id") == dataset_id), None)
        return next((i for i in self.identifiers if i.dataset_title == title), None) if title else None

    def title_of(self, dataset_id: str) -> str:
        return next((s.get("dataset_title", "") for s in self.sources if s.get("dataset_id") == dataset_id), "") \
            or dataset_id

    @property
    def dataset_ids(self) -> frozenset[str]:
        return frozenset(self.dataset_of_cell.tolist())

    @property
    def donor_keys(self) -> np.ndarray:
        return np.char.add(np.char.add(self.dataset_of_cell.astype(str), "::"), self.donor_of_cell.astype(str))

    def references_of(self, dataset_id: str) -> set[str]:
        """The dataset's DOIs and accessions: from its source's collection DOI and citation, and from the
        card's typed ``identifiers`` (GEO series, PMID, DOI), normalised as :func:`normalise_reference` does."""
        refs: set[str] = set()
        for src in self.sources:
            if src.get("dataset_id") == dataset_id:
                refs |= normalise_reference(f"{src.get('collection_doi', '')} {src.get('citation', '')}")
        ids = self.identifiers_of(dataset_id)
        if ids is not None:
            refs |= {g.upper() for g in ids.geo_series} | {f"PMID:{p}" for p in ids.pmid} | {d.lower() for d in ids.doi}
            refs |= {a.upper() for a in ids.arrayexpress}
        return refs

    def collection_of(self, dataset_id: str) -> str:
        return next((s.get("collection_id", "") for s in self.sources if s.get("dataset_id") == dataset_id), "")


@dataclass(frozen=True, eq=False)
class CorpusEvidence:
    """One corpus against one eval dataset: the status, why, and which eval cells it has seen."""

    corpus: str
    role: str
    documented_as: str
    status: Status
    reason: str
    sources: tuple[str, ...] = ()
    dataset_ids: tuple[str, ...] = ()  # eval datasets (or collections) the corpus shares
    donors: tuple[str, ...] = ()  # eval donors ("dataset::donor") the corpus shares
    exact_cells: int | None = None  # eval cells matched exactly by content
    near_cells: int | None = None  # eval cells matched nearly (not exactly)
    uninformative: int | None = None  # eval cells below the information floor
    comparable: int | None = None  # informative eval cells the corpus's genes allow to near-match
    levels: dict[str, str] = field(default_factory=dict)  # ids/donors/exact/near: what was possible
    examples: tuple[str, ...] = ()  # "eval cell -> corpus cell" of a few matches
    seen: np.ndarray | None = field(default=None, repr=False)  # (n_eval,) bool; None when unresolved

    @property
    def cells(self) -> int | None:
        return None if self.seen is None else int(self.seen.sum())

    @property
    def cell_fraction(self) -> float | None:
        return None if self.seen is None else float(self.seen.mean()) if len(self.seen) else 0.0

    def restrict(self, mask: np.ndarray, what: str) -> CorpusEvidence:
        """The same evidence for a subset of the eval cells (a split, or the cells a task scores)."""
        if self.seen is None:
            return self
        seen = self.seen[mask]
        status: Status = "overlap" if seen.any() else "clean"
        return dataclasses.replace(self, status=status, seen=seen,
                                   reason=f"{int(seen.sum())} of the {int(mask.sum())} {what} seen; {self.reason}")

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "seen"}
        return {**out, "cells": self.cells, "cell_fraction": self.cell_fraction}


def normalise_reference(text: str) -> set[str]:
    """DOIs (lower case, no prefix) and accessions (GSE..., E-MTAB-..., PMID) found in ``text``."""
    found = {m.group(0).lower().rstrip(".") for m in DOI_RE.finditer(text)}
    found |= {re.sub(r"\s+", "", m.group(0)).upper().replace("PMID", "PMID:").replace("::", ":")
              for m in ACCESSION_RE.finditer(text)}
    return found


def common_fields(corpus: Corpus, *files: str) -> dict:
    """The fields every evidence of ``corpus`` carries; ``files``: the list files that decided it, named
    after the card's own sources."""
    return {"corpus": corpus.name, "role": corpus.role.value, "documented_as": corpus.documented_as.value,
            "sources": (*(s.ref for s in corpus.sources), *files)}


def unresolved(corpus: Corpus, reason: str) -> CorpusEvidence:
    return CorpusEvidence(status="unresolved", reason=reason, **common_fields(corpus))


def from_seen(corpus: Corpus, seen: np.ndarray, reason: str, **extra: object) -> CorpusEvidence:
    status: Status = "overlap" if seen.any() else "clean"
    return CorpusEvidence(status=status, reason=reason, seen=seen, **common_fields(corpus), **extra)


def listed_evidence(corpus: Corpus, data: EvalData) -> CorpusEvidence:
    """Ids, accessions, a cut-off or prose: evidence without cell content."""
    kind = corpus.documented_as
    if kind in (Documentation.dataset_ids, Documentation.census_filter):
        shared = sorted(set(corpus.dataset_ids) & data.dataset_ids)
        collections = {d for d in data.dataset_ids if data.collection_of(d) in set(corpus.collection_ids)}
        seen = np.isin(data.dataset_of_cell, list(set(shared) | collections))
        return from_seen(corpus, seen, f"{len(shared) + len(collections - set(shared))} of the listed dataset/collection "
                         "ids are the eval data's (id level only: no content check without a recorded manifest or "
                         "a reachable Census)", dataset_ids=tuple(sorted(set(shared) | collections)),
                         levels={"ids": "checked", "donors": "not possible (no donor list)",
                                 "exact": "not possible", "near": "not possible"})
    if kind is Documentation.accessions:
        listed = set().union(*(normalise_reference(a) or {a.lower()} for a in corpus.accessions))
        hit_datasets = [d for d in sorted(data.dataset_ids) if data.references_of(d) & listed]
        if hit_datasets:
            shared = sorted(set().union(*(data.references_of(d) & listed for d in hit_datasets)))
            return from_seen(corpus, np.isin(data.dataset_of_cell, hit_datasets),
                             f"eval source accessions in the corpus list: {', '.join(shared)}",
                             dataset_ids=tuple(hit_datasets), levels={"ids": "accessions checked"})
        if corpus.complete:
            refs = sorted(set().union(*(data.references_of(d) for d in data.dataset_ids)))
            return from_seen(corpus, np.zeros(data.n, dtype=bool), f"none of the eval source accessions "
                             f"({', '.join(refs) or 'none recorded'}) is listed", levels={"ids": "accessions checked"})
        return unresolved(corpus, "the corpus accession list held here is incomplete (complete: false), so absence "
                                  "proves nothing")
    if kind is Documentation.date_cutoff:
        if data.census_version <= (corpus.cutoff_date or ""):
            return from_seen(corpus, np.ones(data.n, dtype=bool), f"eval data was public in Census "
                             f"{data.census_version}, before the corpus cut-off {corpus.cutoff_date}")
        return unresolved(corpus, f"eval data is from Census {data.census_version}, after the cut-off "
                                  f"{corpus.cutoff_date}; when its datasets were first public is unknown")
    return unresolved(corpus, "the corpus is documented in prose only")


def special_donor(donors: np.ndarray) -> np.ndarray:
    return np.isin(donors.astype(str), list(SPECIAL_DONOR_IDS))
