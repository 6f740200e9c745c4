"""Accession-list evidence: is the eval data in a model's published list of accessions?

The eval dataset's identifiers (its card's ``identifiers``: GEO series and
samples, ArrayExpress, SRA, PMID, DOI) are looked up in the recorded list the
corpus names (``accession_list:``), normalised both sides (heldout.identifiers).

* A series (or sample) **and** a publication (PMID or DOI) both found: **seen**. The evidence names the
  matched samples and the cells the list reserves for them.
* Only one of them found, or only a title: **inconclusive**: a series can be re-used by another
  paper, and a paper can deposit several series.
* Nothing found: **clean** only when the list is the model's complete published list and the source has
  a series of a kind the list holds (the list names every project by its series, but not every project's
  publication). A partial list, or a source without such a series, is inconclusive. Kinds of id the list
  does not hold systematically (fewer than 10 keys, e.g. DOIs in a PMID-keyed list) are not evidence.
"""

from __future__ import annotations

import numpy as np

from heldout.cards.model import Corpus
from heldout.identifiers import IdKind
from heldout.leakage.evidence import CorpusEvidence, EvalData, common_fields, unresolved

SERIES = (IdKind.geo_series, IdKind.geo_sample, IdKind.arrayexpress, IdKind.sra_study, IdKind.bioproject)
PUBLICATION = (IdKind.pmid, IdKind.doi)


def accession_evidence(corpus: Corpus, data: EvalData, loaded: object) -> CorpusEvidence:
    record = loaded.record  # type: ignore[attr-defined]
    index = loaded.accessions  # type: ignore[attr-defined]
    files = ", ".join(f"{f.path} (sha256 {f.sha256[:12]}...)" for f in record.files)
    by_reference = f" (the list of {corpus.inherited_from}'s card, taken by reference)" if corpus.inherited_from \
        else ""
    seen, undecided = np.zeros(data.n, bool), np.zeros(data.n, bool)
    lines, examples, matched = [], [], []
    for dataset_id in sorted(data.dataset_ids):
        cells = data.dataset_of_cell == dataset_id
        title = data.title_of(dataset_id)
        ids = data.identifiers_of(dataset_id)
        keys = [k for k in (ids.keys() if ids else []) if k.kind in (*SERIES, *PUBLICATION)]
        if not keys:
            undecided |= cells
            note = f" ({ids.note})" if ids is not None and ids.note else " (the card gives no `identifiers:` entry)"
            lines.append(f"'{title}' has no accession or publication id to look up{note}")
            continue
        hits = {k: index.lookup(k) for k in keys}
        series = [(k, h) for k, h in hits.items() if h and k.kind in SERIES]
        papers = [(k, h) for k, h in hits.items() if h and k.kind in PUBLICATION]
        checked = [k for k in keys if index.checkable(k.kind)]
        unchecked = [str(k) for k in keys if not index.checkable(k.kind)]
        not_here = f" ({', '.join(unchecked)}: kinds of id the list does not hold)" if unchecked else ""
        for key, hit in (*series, *papers):
            cells_text = f", {hit.cells:,} cells reserved" if hit.cells is not None else ""
            samples = f"samples {', '.join(hit.samples[:8])}{' ...' if len(hit.samples) > 8 else ''}" \
                if hit.samples else f"projects {', '.join(hit.projects)}"
            examples.append(f"{key} -> {files}: rows {', '.join(str(r + 1) for r in hit.rows[:8])}: {samples}"
                            f"{cells_text}")
        if series and papers:
            seen |= cells
            matched.append(dataset_id)
            hit = series[0][1]
            lines.append(f"'{title}': {', '.join(str(k) for k, _ in series)} and {', '.join(str(k) for k, _ in papers)}"
                         f" are both in the list ({len(hit.samples)} samples"
                         f"{f', {hit.cells:,} cells reserved' if hit.cells is not None else ''})")
        elif series or papers:
            undecided |= cells
            found = ", ".join(str(k) for k, _ in (*series, *papers))
            lines.append(f"'{title}': only {found} is in the list, not its "
                         f"{'publication' if series else 'series'}: a single matching key is inconclusive")
        elif not record.complete:
            undecided |= cells
            lines.append(f"'{title}': not in the list, but the list is partial, so absence proves nothing")
        elif not any(k.kind in SERIES for k in checked):
            undecided |= cells
            lines.append(f"'{title}': {', '.join(str(k) for k in checked) or 'nothing'} not in the list, but the "
                         f"list names every project by its series and this source has none it can hold{not_here}")
        else:
            lines.append(f"'{title}': none of {', '.join(str(k) for k in checked)} is in the complete list"
                         f"{not_here}")
    reason = f"accession list {record.name}{by_reference}: " + "; ".join(lines)
    fields = common_fields(corpus, files)
    if seen.any():
        return CorpusEvidence(status="overlap", reason=reason, seen=seen, dataset_ids=tuple(matched),
                              examples=tuple(examples[:6]), levels={"accessions": "series and publication matched"},
                              **fields)
    if undecided.any():
        return unresolved(corpus, reason)
    return CorpusEvidence(status="clean", reason=reason, seen=seen, examples=tuple(examples[:6]),
                          levels={"accessions": "complete list checked"}, **fields)
