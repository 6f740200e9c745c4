"""Deciding published models' corpora from what they published: the order of evidence.

For one corpus and one eval dataset, the strongest evidence available decides:

1. **Cells** (heldout.leakage.content): a recorded manifest, or a Census scan, compared cell by cell.
2. **Organism** (heldout.leakage.organism): a corpus of other organisms cannot hold the cells.
3. **Ids and accessions** listed on the card (heldout.leakage.evidence.listed_evidence).
4. For a corpus still unresolved:
   - an **accession list** it names (heldout.leakage.accession_list);
   - a **Census filter** (heldout.leakage.census_filter) applied to the eval cells' own metadata, then the
     **release table** of the Census it was drawn from (heldout.leakage.release_table) for the cells that
     pass. Not for a corpus whose card names a recorded manifest: a manifest that fails its checks
     (changed after review, stale) leaves the pairing GRAY rather than decided by weaker evidence.

A pairing is never better than its weakest required check: cells that no check
rules out and none proves seen leave the corpus unresolved (GRAY), and the
reason says what is missing, ending with what the card says the model's authors
would need to publish (``missing:``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from heldout.cards.model import Corpus, Documentation, ModelCard
from heldout.corpora.lists import ListCache
from heldout.errors import HeldoutError
from heldout.leakage.accession_list import accession_evidence
from heldout.leakage.census_filter import FilterNotUnderstood, evaluate
from heldout.leakage.evidence import CorpusEvidence, EvalData, common_fields, unresolved
from heldout.leakage.organism import organism_evidence
from heldout.leakage.release_table import release_table_verdict


def decide(corpus: Corpus, card: ModelCard, data: EvalData, base: CorpusEvidence, lists: ListCache) -> CorpusEvidence:
    """The evidence that decides ``corpus`` on ``data`` (``base``: what cells, ids or accessions gave)."""
    by_content = base.exact_cells is not None  # a recorded manifest or a scan compared the cells themselves
    by_organism = None if by_content else organism_evidence(corpus, card, data)
    if by_organism is not None:
        return by_organism
    evidence = base
    if corpus.accession_list and not by_content:  # the recorded list outranks the card's own short list
        try:
            evidence = accession_evidence(corpus, data, lists.get(corpus.accession_list, corpus.accession_list_sha256))
        except HeldoutError as exc:
            evidence = unresolved(corpus, f"its accession list cannot be used: {exc.message}")
    elif base.status == "unresolved" and corpus.census is not None and corpus.manifest is None and \
            corpus.documented_as is Documentation.census_filter:  # a named manifest that fails stays unresolved
        evidence = census_evidence(corpus, data, lists, base)
    if evidence.status == "unresolved" and corpus.missing:
        evidence = dataclasses.replace(evidence, reason=f"{evidence.reason}. To decide it, the model's authors would "
                                                        f"need to publish: {corpus.missing}")
    return evidence


def census_evidence(corpus: Corpus, data: EvalData, lists: ListCache, base: CorpusEvidence) -> CorpusEvidence:
    """A Census-filter corpus without recorded cells: the filter on the eval metadata, then the release table."""
    q = corpus.census
    assert q is not None  # noqa: S101 - the caller checks
    stand_in = f" (the build {q.proxy_for} the model used is gone; the LTS {q.version} stands in)" if q.proxy_for \
        else ""
    obs = data.obs
    if obs is None:
        return unresolved(corpus, f"{base.reason}; the eval cells' Census metadata are not available to apply the "
                                  "corpus filter to")
    try:
        truth = evaluate(q.obs_value_filter, obs)
    except FilterNotUnderstood as exc:
        return unresolved(corpus, f"{base.reason}; its filter uses syntax heldout does not evaluate ({exc})")
    at_risk = ~truth.false
    filter_text = f"filter `{q.obs_value_filter}` of Census {q.version}{stand_in}"
    levels = {"filter": f"{int(at_risk.sum())} of {data.n} eval cells pass or may pass"}
    if not at_risk.any():
        example = _failing_example(q.obs_value_filter, obs)
        return CorpusEvidence(status="clean", seen=np.zeros(data.n, bool), levels=levels,
                              reason=f"no eval cell passes the corpus {filter_text}{example}", **common_fields(corpus))
    if not corpus.release_table:
        return unresolved(corpus, f"{base.reason}; {int(at_risk.sum())} eval cells pass (or may pass) the corpus "
                                  f"{filter_text}, and the card names no recorded release table to look their "
                                  "datasets up in")
    try:
        loaded = lists.get(corpus.release_table, corpus.release_table_sha256)
    except HeldoutError as exc:
        return unresolved(corpus, f"its release table cannot be used: {exc.message}")
    verdict = release_table_verdict(corpus, data, loaded, at_risk)
    reason = f"{int(at_risk.sum())} of {data.n} eval cells pass (or may pass) the corpus {filter_text}; " + \
        "; ".join(verdict.lines)
    table_file = loaded.record.files[0]  # type: ignore[attr-defined]
    fields = common_fields(corpus, f"{table_file.path} (sha256 {table_file.sha256[:12]}...)")
    levels["release table"] = "checked"
    if verdict.seen.any():
        return CorpusEvidence(status="overlap", reason=reason, seen=verdict.seen, levels=levels,
                              examples=tuple(verdict.examples[:6]), **fields)
    if verdict.undecided.any():
        return unresolved(corpus, reason)
    return CorpusEvidence(status="clean", reason=reason, seen=np.zeros(data.n, bool), levels=levels, **fields)


def _failing_example(expression: str, obs: object) -> str:
    """A column value that fails the filter, for the reason (e.g. disease = 'oligodendroglioma')."""
    from heldout.leakage.census_filter import columns_of

    for column in columns_of(expression):
        if column in obs.columns:  # type: ignore[attr-defined]
            values = sorted({str(v) for v in obs[column].unique()[:3]})  # type: ignore[index]
            return f" (the eval cells have {column} = {', '.join(repr(v) for v in values)})"
    return ""
