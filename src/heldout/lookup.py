"""``heldout lookup KEY``: has any registry model seen this dataset? One identifier in, every corpus decided.

For someone whose dataset is in no registry: a GEO series or sample, an
ArrayExpress id, a PMID, a DOI or a CELLxGENE dataset/collection id is looked up
in every registry model's corpora, each by what it documents:

* a recorded accession list (scFoundation's, AIDO.Cell's by reference): **seen** when the list names the
  key (with the samples and cells it reserves), **not seen** when a complete list does not;
* a Census filter with a recorded release table: the key (a DOI or CELLxGENE id) in the release is
  **inconclusive** (the cells may or may not pass the filter; `heldout audit` decides per cell), absent
  is **not seen**;
* ids and accessions on the card: **seen** when listed, **not seen** when the list is complete;
* prose, date cut-offs, partial lists, keys a corpus cannot hold: **inconclusive**, with the reason.

No cell is read: a lookup takes well under a second (benchmarks/README.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from heldout.cards.model import Corpus, Documentation, ModelCard, list_model_cards, load_model_card
from heldout.errors import HeldoutError, UsageError
from heldout.identifiers import Identifier, IdKind, parse_identifier, parse_identifiers
from heldout.corpora.lists import ListCache
from heldout.project import Project, find_project

Verdict = Literal["seen", "not seen", "inconclusive"]
IN_RELEASE_TABLE = (IdKind.doi, IdKind.cellxgene_id)


@dataclass(frozen=True)
class CorpusLookup:
    model: str
    corpus: str
    role: str
    verdict: Verdict
    reason: str
    evidence: str = ""  # the file (sha256) and rows, when a list decided


@dataclass(frozen=True)
class ModelLookup:
    model: str
    verdict: Verdict
    corpora: tuple[CorpusLookup, ...]


def parse_key(text: str) -> Identifier:
    key = parse_identifier(text)
    if key.kind is IdKind.other:
        msg = f"{text!r} is not an identifier heldout knows."
        raise UsageError(msg, hint="Give a GEO series or sample (GSE133344, GSM3906020), an ArrayExpress id "
                                   "(E-MTAB-9492), a PMID (31395745), a DOI (10.1126/science.aax4438) or a CELLxGENE "
                                   "dataset/collection id (a UUID).")
    return key


class Lookup:
    """The registry's model cards and corpus lists, loaded once; :meth:`key` decides one identifier."""

    def __init__(self, project: Project | None = None) -> None:
        self.project = project or find_project(fallback=True)
        self.lists = ListCache(self.project.root)
        self.cards = [load_model_card(n, self.project.registry) for n in list_model_cards(self.project.registry)]

    def key(self, key: Identifier) -> list[ModelLookup]:
        out = []
        for card in self.cards:
            rows = tuple(_corpus(card, c, key, self.lists) for c in card.corpora)
            verdicts = {r.verdict for r in rows}
            verdict: Verdict = "seen" if "seen" in verdicts else "not seen" if verdicts == {"not seen"} \
                else "inconclusive"
            out.append(ModelLookup(model=card.name, verdict=verdict, corpora=rows))
        return out


def lookup(text: str, *, project: Project | None = None) -> tuple[Identifier, list[ModelLookup]]:
    """Every registry model's verdict on identifier ``text``."""
    key = parse_key(text)
    return key, Lookup(project).key(key)


def _corpus(card: ModelCard, corpus: Corpus, key: Identifier, lists: ListCache) -> CorpusLookup:
    def row(verdict: Verdict, reason: str, evidence: str = "") -> CorpusLookup:
        missing = f". To decide it, the model's authors would need to publish: {corpus.missing.strip()}" \
            if verdict == "inconclusive" and corpus.missing else ""
        return CorpusLookup(model=card.name, corpus=corpus.name, role=corpus.role.value, verdict=verdict,
                            reason=reason + missing, evidence=evidence)

    try:
        if corpus.accession_list:
            return _accession_list(corpus, key, lists, row)
        if corpus.census is not None and corpus.release_table:
            return _release_table(corpus, key, lists, row)
    except HeldoutError as exc:
        return row("inconclusive", f"its recorded list cannot be used: {exc.message}")
    listed = {k for a in corpus.accessions for k in parse_identifiers(a)}
    listed |= {Identifier(IdKind.cellxgene_id, i.lower()) for i in (*corpus.dataset_ids, *corpus.collection_ids)}
    if listed and corpus.documented_as in (Documentation.accessions, Documentation.dataset_ids):
        if key in listed:
            return row("seen", f"{key} is listed on the card")
        if corpus.complete and key.kind in {k.kind for k in listed}:
            return row("not seen", f"{key} is not among the {len(listed)} ids the card lists (complete list)")
        return row("inconclusive", f"{key} is not among the ids the card lists, but the list is "
                                   f"{'partial' if not corpus.complete else 'of other kinds of id'}")
    what = {Documentation.prose: "the corpus is documented in prose only",
            Documentation.date_cutoff: "a date cut-off cannot be checked without the dataset's publication date",
            Documentation.census_filter: "the card names no recorded release table for its Census",
            Documentation.recorded: "a recorded corpus is compared cell by cell: audit the dataset instead"}
    return row("inconclusive", what.get(corpus.documented_as, "nothing on the card can be matched to the key"))


def _accession_list(corpus: Corpus, key: Identifier, lists: ListCache, row) -> CorpusLookup:  # noqa: ANN001
    loaded = lists.get(corpus.accession_list, corpus.accession_list_sha256)  # type: ignore[arg-type]
    record, index = loaded.record, loaded.accessions  # type: ignore[attr-defined]
    by_reference = f" ({corpus.inherited_from}'s list, by reference)" if corpus.inherited_from else ""
    files = ", ".join(f"{f.path} (sha256 {f.sha256[:12]}...)" for f in record.files)
    hit = index.lookup(key)
    if hit is not None:
        cells = f", {hit.cells:,} cells reserved" if hit.cells is not None else ""
        what = f"{len(hit.samples)} samples ({', '.join(hit.samples[:8])}{' ...' if len(hit.samples) > 8 else ''})" \
            if hit.samples else f"projects {', '.join(hit.projects)}"
        refs = sorted({str(r) for p in hit.projects for r in index.references_of(p)})
        pubs = f"; publications of the project: {', '.join(refs)}" if refs else ""
        return row("seen", f"{key} is in list {record.name}{by_reference}: {what}{cells}{pubs}",
                   f"{files} rows {', '.join(str(r + 1) for r in hit.rows[:8])}")
    if not index.checkable(key.kind):
        return row("inconclusive", f"list {record.name}{by_reference} does not hold {key.kind.value} keys "
                                   f"(it holds {', '.join(k.value for k, n in sorted(index.kinds.items()) if n >= 10)})",
                   files)
    if record.complete:
        return row("not seen", f"{key} is not in list {record.name}{by_reference}, the model's complete published "
                               f"list ({record.counts.get('samples', 0):,} samples, "
                               f"{record.counts.get('projects', 0):,} projects)", files)
    return row("inconclusive", f"{key} is not in list {record.name}, which is partial", files)


def _release_table(corpus: Corpus, key: Identifier, lists: ListCache, row) -> CorpusLookup:  # noqa: ANN001
    loaded = lists.get(corpus.release_table, corpus.release_table_sha256)  # type: ignore[arg-type]
    record, table = loaded.record, loaded.release  # type: ignore[attr-defined]
    q = corpus.census
    files = f"{record.files[0].path} (sha256 {record.files[0].sha256[:12]}...)"
    if key.kind not in IN_RELEASE_TABLE:
        return row("inconclusive", f"a Census release table holds DOIs and CELLxGENE ids, not a {key.kind.value}; "
                                   f"give the dataset's DOI or CELLxGENE id")
    rows = table.lookup(key)
    if rows:
        return row("inconclusive", f"{key} is in Census {record.census_version} ({len(rows)} datasets, e.g. "
                                   f"{rows[0][1]['dataset_title']!r}); whether its cells pass the corpus filter "
                                   f"`{q.obs_value_filter}` needs their metadata: `heldout audit` decides per cell",
                   f"{files} rows {', '.join(str(i + 1) for i, _ in rows[:8])}")
    return row("not seen", f"{key} is not in Census {record.census_version}, the release the corpus was drawn from"
                           f"{f' (standing in for {q.proxy_for})' if q.proxy_for else ''}", files)


def to_json(key: Identifier, results: list[ModelLookup]) -> dict:
    return {"key": str(key), "kind": key.kind.value,
            "models": [{"model": m.model, "verdict": m.verdict, "corpora": [asdict(c) for c in m.corpora]}
                       for m in results]}
