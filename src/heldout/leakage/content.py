"""Content evidence: join eval cells against a corpus with cells (a recorded manifest or a live Census scan).

The audit never rescans what is recorded: a corpus whose card points at a
manifest is read from it (verified by sha256, pinned by the card); a Census
filter without one is ``unresolved`` unless the audit is asked to ``--rescan``,
which streams the Census through the same join.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from heldout._files import sha256_file
from heldout.cards.model import Corpus, Documentation
from heldout.corpora.manifest import CorpusReader, definition_sha256
from heldout.errors import HeldoutError
from heldout.leakage import conditions
from heldout.leakage.evidence import CorpusEvidence, EvalData, common_fields, special_donor, unresolved
from heldout.leakage.fingerprint import MIN_GENES, Signatures
from heldout.leakage.matching import CorpusBatch, EvalIndex, isin_sorted, match_corpus
from heldout.leakage.universe import GeneUniverse

LIVE_BLOCK_CELLS = 50_000


class CorpusView(Protocol):
    description: str
    census_version: str | None
    dataset_ids: frozenset[str]
    collection_ids: frozenset[str]
    donors: pd.DataFrame  # dataset_id, donor_id
    conditions: frozenset[str] | None  # dataset::LINE|perturbation (heldout.leakage.conditions), if recorded
    universe: GeneUniverse

    def batches(self) -> Iterator[CorpusBatch]: ...


class ManifestView:
    """A recorded manifest as a corpus view."""

    def __init__(self, reader: CorpusReader) -> None:
        self.reader = reader
        m = reader.manifest
        self.census_version = m.source.census_version
        where = f"Census {m.source.kind} {m.source.census_version}" if m.source.census_version else \
            f"{len(m.source.inputs)} {m.source.kind} file(s)"
        self.description = f"recorded manifest ({m.n_cells:,} cells from {where}, recorded {m.created[:10]})"
        self.dataset_ids, self.collection_ids = reader.dataset_ids, reader.collection_ids
        self.donors, self.universe, self.conditions = reader.donors, reader.universe, reader.conditions

    def batches(self) -> Iterator[CorpusBatch]:
        return self.reader.batches()


class LiveCensusView:
    """A Census filter streamed now (``--rescan``): the same join, no recording."""

    def __init__(self, corpus: Corpus, obs_filter: str, mirror_root: str | Path | None) -> None:
        from heldout.census import resolve_census
        from heldout.sources import CensusSource

        q = corpus.census
        self.resolved = resolve_census(q.version, source=q.source, mirror_root=mirror_root)
        self.census_version = self.resolved.version
        self.source = CensusSource(self.resolved, q.organism.value, obs_filter)
        obs = self.source.obs()
        self.description = f"live scan of Census {q.source} {self.resolved.version} ({len(obs):,} cells)"
        self.dataset_ids = frozenset(obs["dataset_id"])
        info = self.source.datasets()
        self.collection_ids = frozenset(c for c in info["collection_id"] if c)
        self.donors = obs[["dataset_id", "donor_id"]].drop_duplicates()
        self.conditions = None  # Census cells carry no perturbation design
        self.universe = GeneUniverse.from_feature_ids(self.source.measured_genes())

    def batches(self) -> Iterator[CorpusBatch]:
        from heldout.leakage.fingerprint import gene_keys, signatures

        obs = self.source.obs()
        keys = gene_keys(self.source.var()["feature_id"].to_numpy())
        start = 0
        try:
            for block in self.source.blocks(LIVE_BLOCK_CELLS):
                sig = signatures(block, keys)
                rows = obs.iloc[start:start + block.shape[0]]
                start += block.shape[0]
                for dataset, idx in rows.groupby("dataset_id").indices.items():
                    yield CorpusBatch.of(dataset, sig.take(idx), rows["cell_id"].to_numpy()[idx],
                                         self.universe.genes_of(dataset))
        finally:
            self.source.close()


def open_view(corpus: Corpus, *, model: str, project_root: Path | None, mirror_root: str | Path | None,
              rescan: bool) -> CorpusView | str:
    """The corpus's cells, or why they cannot be had (a reason string for an unresolved evidence)."""
    if corpus.manifest and not rescan:
        return _manifest_view(corpus, model, project_root)
    if corpus.documented_as is Documentation.recorded:
        return _manifest_view(corpus, model, project_root)
    if corpus.census is None:
        return "no Census to scan"
    if not rescan:
        return (f"not recorded: record it once with `heldout corpus record --model {model} --corpus {corpus.name}`, "
                "or audit with --rescan to scan the Census now")
    obs_filter = corpus.census.obs_value_filter if corpus.documented_as is Documentation.census_filter else \
        "dataset_id in [" + ", ".join(repr(d) for d in corpus.dataset_ids) + "]"
    try:
        return LiveCensusView(corpus, obs_filter, mirror_root)
    except HeldoutError as exc:
        return f"cannot resolve Census {corpus.census.source} {corpus.census.version}: {exc.message}"
    except Exception as exc:  # noqa: BLE001 - a filter the source rejects, a network failure
        return f"Census {corpus.census.source} {corpus.census.version} query failed: {type(exc).__name__}: {exc}"


def _manifest_view(corpus: Corpus, model: str, project_root: Path | None) -> CorpusView | str:
    from heldout.untrusted.limits import UntrustedInputError, limits
    from heldout.untrusted.paths import regular_file, resolve_inside

    if not corpus.manifest:
        return "its card names no recorded manifest"
    try:  # the card's path stays inside the project, symlinks included, before anything is read
        path = resolve_inside(project_root or Path.cwd(), corpus.manifest, "manifest")
        if path.exists():
            regular_file(path, "manifest", limits().yaml_bytes)
    except UntrustedInputError as exc:
        return f"its manifest path is refused: {exc.message}"
    if not path.exists():
        return f"its recorded manifest {corpus.manifest or '(none named)'} is not here (pull the release, or `dvc pull`)"
    if corpus.manifest_sha256 and sha256_file(path) != corpus.manifest_sha256:
        return (f"the manifest {corpus.manifest} does not match the sha256 the model card pins "
                f"({corpus.manifest_sha256[:12]}...): it was changed after review")
    try:
        reader = CorpusReader(path)
    except HeldoutError as exc:
        return f"its recorded manifest cannot be used: {exc.message}"
    m = reader.manifest
    if (m.model, m.corpus, m.role.value) != (model, corpus.name, corpus.role.value):
        return (f"the manifest at {corpus.manifest} records {m.model}/{m.corpus} ({m.role.value}), not "
                f"{model}/{corpus.name} ({corpus.role.value})")
    if corpus.documented_as is not Documentation.recorded and m.definition_sha256 != definition_sha256(
            corpus.definition()):
        return ("stale manifest: the card's corpus definition changed after it was recorded; record it again "
                f"(`heldout corpus record --model {model} --corpus {corpus.name} --replace`)")
    return ManifestView(reader)


def content_evidence(corpus: Corpus, view: CorpusView, evals: list[EvalData]) -> list[CorpusEvidence]:
    """One join of the corpus against every eval dataset: donors, ids and content, cell by cell."""
    with_sig = [d for d in evals if d.signatures is not None]
    hits = None
    if with_sig:
        sig = Signatures.concat([d.signatures for d in with_sig])  # type: ignore[misc]
        gene_sets = [d.universe.union() if d.universe is not None else None for d in with_sig]
        owner = np.repeat(np.arange(len(with_sig)), [d.n for d in with_sig])
        index = EvalIndex(sig, gene_sets, owner)
        corpus_genes = view.universe.union() if len(view.universe.prefixes) else None
        overlapping = corpus_genes is None or any(g is None or isin_sorted(g, corpus_genes).any() for g in gene_sets)
        hits = match_corpus(index, view.batches() if overlapping else iter(()))
        comparable = index.comparable(corpus_genes)
    donors = set(view.donors["dataset_id"].astype(str) + "::" + view.donors["donor_id"].astype(str))
    out, start = [], 0
    for data in evals:
        rows = slice(start, start + data.n) if data.signatures is not None else None
        if rows is not None:
            start += data.n
        out.append(_one(corpus, view, data, donors, hits, rows, comparable if rows is not None else None))
    return out


def _one(corpus: Corpus, view: CorpusView, data: EvalData, donors: set[str], hits: object, rows: slice | None,
         comparable: np.ndarray | None) -> CorpusEvidence:
    keys = data.donor_keys
    special = special_donor(data.donor_of_cell)
    donor_hit = np.isin(keys, list(donors)) & ~special
    dataset_hit = np.isin(data.dataset_of_cell, list(view.dataset_ids))
    levels = {"ids": "checked", "donors": "checked"}
    if rows is None or hits is None:
        exact = near = np.zeros(data.n, dtype=bool)
        informative = np.zeros(data.n, dtype=bool)
        can_compare = informative
        levels.update(exact="not possible (the eval release has no content signatures)", near="not possible")
        examples: tuple[str, ...] = ()
    else:
        exact, near = hits.exact[rows], hits.near[rows]  # type: ignore[attr-defined]
        informative = data.signatures.informative  # type: ignore[union-attr]
        can_compare = comparable[rows]  # type: ignore[index]
        levels.update(exact="checked", near=f"checked for {int(can_compare.sum()):,} of "
                      f"{int(informative.sum()):,} informative cells (the rest share too few measured genes)")
        mine = sorted((i, ref) for i, ref in hits.examples.items() if rows.start <= i < rows.stop)  # type: ignore[attr-defined]
        examples = tuple(f"{data.cell_ids[i - rows.start]} -> {ref}" for i, ref in mine[:3])
    if view.conditions is not None and data.condition_of_cell is not None:  # perturbation cells decide by condition
        by_condition = dataset_hit & conditions.seen(data.dataset_of_cell, data.condition_of_cell, view.conditions)
        seen = donor_hit | exact | near | by_condition
        levels["conditions"] = (f"checked: {len(set(data.condition_of_cell[by_condition]))} of the shared datasets' "
                                f"{len(set(data.condition_of_cell[dataset_hit]))} perturbation conditions (cell line "
                                f"and perturbation) are in the corpus")
    else:
        undecidable = dataset_hit & special & ~(informative & can_compare)
        seen = donor_hit | exact | near | undecidable
    if view.census_version and data.census_version and view.census_version != data.census_version:
        levels["versions"] = (f"corpus from Census {view.census_version}, eval data from Census {data.census_version}: "
                              "ids and donors compared across versions; content over the genes both measured")
    shared = sorted(view.dataset_ids & data.dataset_ids)
    n_exact, n_near = int((exact & informative).sum()), int((near & ~exact).sum())
    reason = (f"{view.description}: {len(shared)} shared dataset(s), {len(set(keys[donor_hit]))} shared donor(s), "
              f"{n_exact} exact and {n_near} near content matches among {int(informative.sum())} informative eval "
              f"cells ({data.n - int(informative.sum())} below the floor of {MIN_GENES} genes)")
    if "conditions" in levels:
        reason += f"; {levels['conditions'].removeprefix('checked: ')}"
    status = "overlap" if seen.any() else "clean"
    return CorpusEvidence(status=status, reason=reason, seen=seen, dataset_ids=tuple(shared),  # type: ignore[arg-type]
                          donors=tuple(sorted(set(keys[donor_hit]))), exact_cells=n_exact, near_cells=n_near,
                          uninformative=int(data.n - informative.sum()), comparable=int(can_compare.sum()),
                          levels=levels, examples=examples, **common_fields(corpus))


def evidence_with_cells(corpus: Corpus, evals: list[EvalData], *, model: str, project_root: Path | None,
                        mirror_root: str | Path | None, rescan: bool) -> list[CorpusEvidence] | None:
    """Content-level evidence when the corpus has cells to compare; None when its kind has none."""
    if corpus.documented_as not in (Documentation.census_filter, Documentation.dataset_ids, Documentation.recorded):
        return None
    if corpus.documented_as is Documentation.dataset_ids and corpus.census is None and not corpus.manifest:
        return None  # a plain id list: id-level evidence
    view = open_view(corpus, model=model, project_root=project_root, mirror_root=mirror_root, rescan=rescan)
    if isinstance(view, str):
        if corpus.documented_as is Documentation.dataset_ids and not corpus.manifest:
            return None  # the list itself still decides at id level
        return [unresolved(corpus, view) for _ in evals]
    return content_evidence(corpus, view, evals)
