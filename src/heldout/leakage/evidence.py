"""Evidence of overlap between one model corpus and one evaluation dataset.

Three levels are checked and each is reported: dataset ids (and collections),
donors ``(dataset_id, donor_id)``, and cell content (fingerprints of raw count
vectors, see :mod:`heldout.leakage.fingerprint`). Content catches the same
cells re-published under another dataset id, or as non-primary copies.
A corpus that cannot be resolved is ``unresolved`` with the reason: it never
counts as clean.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import tiledbsoma as soma

from heldout.cards.model import Corpus, Documentation
from heldout.census import experiment, open_census
from heldout.errors import HeldoutError
from heldout.leakage.fingerprint import cell_fingerprints, from_columns, gene_keys

Status = Literal["overlap", "clean", "unresolved"]
BLOCK_CELLS = 50_000
DOI_RE = re.compile(r"10\.\d{4,9}/[^\s;,]+", re.IGNORECASE)
ACCESSION_RE = re.compile(r"\b(GSE\d+|E-[A-Z]+-\d+|PMID:?\s*\d+)\b", re.IGNORECASE)


@dataclass(frozen=True, eq=False)
class EvalData:
    """What an audit needs of one evaluation dataset: ids, donors, fingerprints."""

    name: str
    version: str | None
    organism: str
    census_version: str
    dataset_ids: frozenset[str]
    collection_ids: frozenset[str]
    references: frozenset[str]  # normalised DOIs and accessions of the source collections
    donors: frozenset[str]  # "dataset_id::donor_id"
    fingerprints: np.ndarray  # (n_cells, 2) uint64


@dataclass(frozen=True)
class CorpusEvidence:
    corpus: str
    role: str
    documented_as: str
    status: Status
    reason: str
    dataset_ids: tuple[str, ...] = ()
    donors: tuple[str, ...] = ()
    cells: int | None = None
    cell_fraction: float | None = None
    sources: tuple[str, ...] = field(default_factory=tuple)


def normalise_reference(text: str) -> set[str]:
    """DOIs (lower case, no prefix) and accessions (GSE..., E-MTAB-..., PMID) found in ``text``."""
    found = {m.group(0).lower().rstrip(".") for m in DOI_RE.finditer(text)}
    found |= {re.sub(r"\s+", "", m.group(0)).upper().replace("PMID", "PMID:").replace("::", ":")
              for m in ACCESSION_RE.finditer(text)}
    return found


def eval_from_tables(*, name: str, version: str | None, organism: str, census_version: str,
                     sources: list[dict], fingerprints: pd.DataFrame) -> EvalData:
    refs: set[str] = set()
    for src in sources:
        refs |= normalise_reference(f"{src.get('collection_doi', '')} {src.get('citation', '')}")
    return EvalData(
        name=name, version=version, organism=organism, census_version=census_version,
        dataset_ids=frozenset(fingerprints["dataset_id"].astype(str)),
        collection_ids=frozenset(s["collection_id"] for s in sources if s.get("collection_id")),
        references=frozenset(refs),
        donors=frozenset((fingerprints["dataset_id"].astype(str) + "::" + fingerprints["donor_id"].astype(str))),
        fingerprints=from_columns(fingerprints))


class FingerprintMatcher:
    """Exact membership of fingerprints in an eval set: lane-0 prefilter, then both lanes."""

    def __init__(self, eval_fps: np.ndarray) -> None:
        self.eval = pd.DataFrame({"a": eval_fps[:, 0], "b": eval_fps[:, 1], "i": np.arange(len(eval_fps))})
        self.lane0 = np.unique(eval_fps[:, 0])

    def matches(self, fps: np.ndarray) -> np.ndarray:
        """Indices of eval cells whose fingerprint occurs in ``fps``."""
        cand = fps[np.isin(fps[:, 0], self.lane0)]
        if not len(cand):
            return np.zeros(0, dtype=np.int64)
        hits = self.eval.merge(pd.DataFrame({"a": cand[:, 0], "b": cand[:, 1]}).drop_duplicates(), on=["a", "b"])
        return hits["i"].to_numpy()


def scan_query_for_fingerprints(query: soma.ExperimentAxisQuery, eval_fps: np.ndarray,
                                block_cells: int = BLOCK_CELLS) -> np.ndarray:
    """Bool mask over eval cells: True where the query's cells contain the same counts.

    Streams X in row blocks; memory is bounded by the block, not the corpus size.
    """
    var = query.var(column_names=["soma_joinid", "feature_id"]).concat().to_pandas().sort_values("soma_joinid")
    keys = gene_keys(var["feature_id"].to_numpy())
    matcher = FingerprintMatcher(eval_fps)
    found = np.zeros(len(eval_fps), dtype=bool)
    for csr, _ in query.X("raw").blockwise(axis=0, size=block_cells, eager=True).scipy():
        found[matcher.matches(cell_fingerprints(csr, keys))] = True
    return found


def _census_evidence(corpus: Corpus, evals: list[EvalData], mirror_root: str | Path | None,
                     obs_filter: str, common: dict) -> list[CorpusEvidence]:
    """One scan of the corpus for all eval datasets: ids, donors and content at once."""
    q = corpus.census
    same = [d for d in evals if d.organism == q.organism.value]
    out: dict[str, CorpusEvidence] = {
        d.name: CorpusEvidence(status="clean", reason=f"corpus is {q.organism.value}, the eval data {d.organism}: "
                               "different Census experiments", **common) for d in evals if d not in same}
    if same:
        for name, evidence in _scan_census(corpus, same, mirror_root, obs_filter, common).items():
            out[name] = evidence
    return [out[d.name] for d in evals]


def _scan_census(corpus: Corpus, evals: list[EvalData], mirror_root: str | Path | None, obs_filter: str,
                 common: dict) -> dict[str, CorpusEvidence]:
    q = corpus.census
    try:
        with open_census(q.version, source=q.source, mirror_root=mirror_root) as census:
            exp = experiment(census, q.organism.value)
            obs = exp.obs.read(value_filter=obs_filter, column_names=["soma_joinid", "dataset_id", "donor_id"]
                               ).concat().to_pandas()
            all_fps = np.concatenate([d.fingerprints for d in evals])
            found = np.zeros(len(all_fps), dtype=bool)
            if len(obs):
                coords = soma.AxisQuery(coords=(obs["soma_joinid"].to_numpy(),))
                with exp.axis_query("RNA", obs_query=coords) as query:
                    found = scan_query_for_fingerprints(query, all_fps)
    except HeldoutError as exc:
        reason = f"cannot resolve Census {q.source} {q.version}: {exc.message}"
        return {d.name: CorpusEvidence(status="unresolved", reason=reason, **common) for d in evals}
    except Exception as exc:  # noqa: BLE001 - a filter the source rejects, a network failure
        reason = f"Census {q.source} {q.version} query failed: {type(exc).__name__}: {exc}"
        return {d.name: CorpusEvidence(status="unresolved", reason=reason, **common) for d in evals}
    corpus_ids = set(obs["dataset_id"].astype(str))
    corpus_donors = set(obs["dataset_id"].astype(str) + "::" + obs["donor_id"].astype(str))
    proxy = f" (standing in for {q.proxy_for})" if q.proxy_for else ""
    out, start = {}, 0
    for d in evals:
        hit = found[start:start + len(d.fingerprints)]
        start += len(d.fingerprints)
        ids, donors, n = sorted(corpus_ids & d.dataset_ids), sorted(corpus_donors & d.donors), int(hit.sum())
        reason = (f"{len(obs)} corpus cells in Census {q.source} {q.version}{proxy}: {len(ids)} shared dataset(s), "
                  f"{len(donors)} shared donor(s), {n} of {len(hit)} eval cells with identical counts")
        out[d.name] = CorpusEvidence(status="overlap" if (ids or donors or n) else "clean", reason=reason,
                                     dataset_ids=tuple(ids), donors=tuple(donors), cells=n,
                                     cell_fraction=n / max(len(hit), 1), **common)
    return out


def evidence_for(corpus: Corpus, evals: list[EvalData], *,
                 mirror_root: str | Path | None = None) -> list[CorpusEvidence]:
    """Evidence of one corpus against several eval datasets (one Census scan for all)."""
    common = {"corpus": corpus.name, "role": corpus.role.value, "documented_as": corpus.documented_as.value,
              "sources": tuple(s.ref for s in corpus.sources)}
    if corpus.documented_as is Documentation.census_filter:
        return _census_evidence(corpus, evals, mirror_root, corpus.census.obs_value_filter, common)
    if corpus.documented_as is Documentation.dataset_ids and corpus.census is not None and corpus.dataset_ids:
        listed = ", ".join(repr(d) for d in corpus.dataset_ids)
        found = _census_evidence(corpus, evals, mirror_root, f"dataset_id in [{listed}]", common)
        if all(e.status != "unresolved" for e in found):  # content checked through the named Census
            return found
    return [corpus_evidence(corpus, d, mirror_root=mirror_root) for d in evals]


def corpus_evidence(corpus: Corpus, data: EvalData, *, mirror_root: str | Path | None = None) -> CorpusEvidence:
    """Compare one corpus with one eval dataset at every level its documentation allows."""
    common = {"corpus": corpus.name, "role": corpus.role.value, "documented_as": corpus.documented_as.value,
              "sources": tuple(s.ref for s in corpus.sources)}
    kind = corpus.documented_as
    if kind is Documentation.census_filter:
        return _census_evidence(corpus, [data], mirror_root, corpus.census.obs_value_filter, common)[0]
    if kind is Documentation.dataset_ids:
        ids = sorted((set(corpus.dataset_ids) & data.dataset_ids) | (set(corpus.collection_ids) & data.collection_ids))
        status: Status = "overlap" if ids else "clean"
        return CorpusEvidence(status=status, reason=f"{len(ids)} of the listed dataset/collection ids are "
                              "the eval data's (id level only: no content check without a Census)",
                              dataset_ids=tuple(ids), **common)
    if kind is Documentation.accessions:
        listed = set().union(*(normalise_reference(a) or {a.lower()} for a in corpus.accessions))
        shared = sorted(listed & data.references)
        if shared:
            return CorpusEvidence(status="overlap", reason=f"eval source accessions in the corpus list: "
                                  f"{', '.join(shared)}", **common)
        if corpus.complete:
            return CorpusEvidence(status="clean", reason=f"none of the eval source accessions "
                                  f"({', '.join(sorted(data.references)) or 'none recorded'}) is listed", **common)
        return CorpusEvidence(status="unresolved", reason="the corpus accession list held here is incomplete "
                              "(complete: false), so absence proves nothing", **common)
    if kind is Documentation.date_cutoff:
        if data.census_version <= corpus.cutoff_date:
            return CorpusEvidence(status="overlap", reason=f"eval data was public in Census {data.census_version}, "
                                  f"before the corpus cut-off {corpus.cutoff_date}", **common)
        return CorpusEvidence(status="unresolved", reason=f"eval data is from Census {data.census_version}, after the "
                              f"cut-off {corpus.cutoff_date}; when its datasets were first public is unknown",
                              **common)
    return CorpusEvidence(status="unresolved", reason="the corpus is documented in prose only", **common)
