"""Release-table evidence: is the eval data in the Census release a corpus was drawn from?

The eval dataset's CELLxGENE dataset or collection ids and its DOI (from its
card's ``identifiers``) are looked up in the recorded ``census_info/datasets``
table of the release the corpus names (``release_table:`` on the card). When the
exact build the model used is gone (a weekly build), the card's query uses the
nearest LTS release and says so (``proxy_for``), and so does the evidence.

* Found: the release holds the dataset. The corpus is a filter over a release
  (and, with a stand-in LTS, over a superset of the real build), so presence
  proves only **possible** exposure; it counts as seen.
* Not found: absence is proven only when the source had an identifier the table
  can hold (a DOI or a CELLxGENE id). A source with none is inconclusive.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from heldout.cards.model import Corpus
from heldout.identifiers import IdKind
from heldout.leakage.evidence import EvalData

CHECKABLE = (IdKind.doi, IdKind.cellxgene_id)


@dataclass
class TableVerdict:
    seen: np.ndarray
    undecided: np.ndarray
    lines: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)


def release_table_verdict(corpus: Corpus, data: EvalData, loaded: object, at_risk: np.ndarray) -> TableVerdict:
    """Per cell among ``at_risk``: seen (its source is in the table), undecided, or (neither) absent."""
    table = loaded.release  # type: ignore[attr-defined]
    record = loaded.record  # type: ignore[attr-defined]
    verdict = TableVerdict(np.zeros(data.n, bool), np.zeros(data.n, bool))
    where = f"{record.files[0].path} (sha256 {record.files[0].sha256[:12]}...)"
    for dataset_id in sorted(set(data.dataset_of_cell[at_risk].tolist())):
        cells = at_risk & (data.dataset_of_cell == dataset_id)
        title = data.title_of(dataset_id)
        ids = data.identifiers_of(dataset_id)
        keys = [k for k in (ids.keys() if ids else []) if k.kind in CHECKABLE]
        if not keys:
            verdict.undecided |= cells
            note = f" ({ids.note})" if ids is not None and ids.note else ""
            verdict.lines.append(f"'{title}' has no DOI or CELLxGENE id to look up in Census {record.census_version}"
                                 f"{note}")
            continue
        found = {str(k): table.lookup(k) for k in keys}
        hits = {k: rows for k, rows in found.items() if rows}
        if hits:
            verdict.seen |= cells
            for key, rows in hits.items():
                verdict.examples.append(f"{key} -> {where} rows {', '.join(str(i + 1) for i, _ in rows[:5])}: "
                                        f"{'; '.join(r['dataset_title'] for _, r in rows[:3])}")
            verdict.lines.append(f"'{title}' is in Census {record.census_version} ({', '.join(hits)}): possible "
                                 "exposure")
        else:
            verdict.lines.append(f"'{title}' is not in Census {record.census_version} ({', '.join(found)} looked up "
                                 f"in {where}, {len(table.table)} datasets)")
    return verdict
