"""Published corpus lists, recorded like cell manifests: immutable, sha256-pinned, with provenance.

A list is a folder ``corpora/lists/<name>/`` holding the source files as they
were published (a supplementary table's accession extract, a Census release's
dataset table) and ``list.yaml``: where each file came from (repository, commit,
path), its sha256 and its own row count, whether the list is a model's complete
published list (only a complete list can prove absence), and the licence.
``heldout corpus record-list`` writes it; model cards point at ``list.yaml`` and
pin its sha256, as they pin a recorded manifest.

Two kinds of list are read:

* an **accession list** (:class:`AccessionIndex`): per-sample rows (project, sample, cells) and
  per-project rows (project, PMIDs/DOIs), e.g. scFoundation's Supplementary Data 1 and 2;
* a **Census release table** (:class:`ReleaseTable`): the ``census_info/datasets`` table of one Census
  release (dataset and collection ids, DOIs, titles, cell counts).
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

import pydantic

import heldout
from heldout._files import atomic_path, sha256_file, write_text_atomic
from heldout.cards._base import FrozenRecord, parse_card
from heldout.cards.dataset import DATE_PATTERN, NAME_PATTERN
from heldout.errors import ChecksumMismatch, HeldoutError, UsageError
from heldout.identifiers import Identifier, IdKind, parse_identifier, parse_identifiers

LISTS = Path("corpora") / "lists"
RECORD = "list.yaml"


class ListFileKind(enum.StrEnum):
    samples = "samples"  # project, sample, cells per row
    projects = "projects"  # project, PMIDs/DOIs per row
    census_datasets = "census_datasets"  # a Census release's census_info/datasets table


COLUMNS = {  # the columns each kind needs, in the order the reader maps them
    ListFileKind.samples: ("project", "sample", "cells"),
    ListFileKind.projects: ("project", "references"),
    ListFileKind.census_datasets: ("dataset_id", "collection_id", "collection_name", "collection_doi",
                                   "dataset_title", "dataset_total_cell_count"),
}


class ListFile(FrozenRecord):
    path: str  # inside the list folder
    kind: ListFileKind
    sha256: Annotated[str, pydantic.Field(pattern=r"^[0-9a-f]{64}$")]
    rows: int
    columns: dict[str, str] = pydantic.Field(default_factory=dict)  # heldout's name -> the file's column
    source: str  # repository@commit:path, or a URL with its date


class CorpusList(FrozenRecord):
    """``list.yaml``: a recorded corpus list."""

    schema_version: Literal[1] = 1
    name: Annotated[str, pydantic.Field(pattern=NAME_PATTERN)]
    description: str
    complete: bool  # the model's complete published list: absence from it proves absence
    census_version: Annotated[str, pydantic.Field(pattern=DATE_PATTERN)] | None = None  # release tables
    citation: str
    license: str
    files: list[ListFile] = pydantic.Field(min_length=1)
    counts: dict[str, int] = pydantic.Field(default_factory=dict)  # identifiers by kind, cells
    recorded: str
    heldout_version: str


class Rows(list):
    """The rows of a list file as dicts of strings, with its header (the csv module: no pandas to import)."""

    def __init__(self, rows: list[dict[str, str]], columns: list[str]) -> None:
        super().__init__(rows)
        self.columns = columns

    def column(self, name: str) -> list[str]:
        return [row[name] for row in self]


def _table(path: Path) -> Rows:
    """A CSV/TSV with ``#`` comment lines first (CRLF or LF), every value a string."""
    text = path.read_text(encoding="utf-8")
    body = [line for line in text.splitlines() if not line.startswith("#")]
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".txt") else ","
    reader = csv.DictReader(body, delimiter=delimiter)
    rows = [{k: (v or "") for k, v in row.items()} for row in reader]
    return Rows(rows, list(reader.fieldnames or []))


def record_list(root: Path, name: str, files: list[tuple[Path, ListFileKind, str, dict[str, str]]], *,
                description: str, complete: bool, citation: str, license: str,
                census_version: str | None = None, replace: bool = False) -> Path:
    """Copy ``files`` (path, kind, source, column map) into ``corpora/lists/NAME/`` and write ``list.yaml``."""
    folder = root / LISTS / name
    if (folder / RECORD).exists() and not replace:
        msg = f"Corpus list {name!r} is already recorded at {folder / RECORD}; recorded lists are immutable."
        raise UsageError(msg, hint="Pass --replace to record it anew (model cards pinning it must be updated).")
    checked = []  # every file is read and checked before anything is written
    for path, kind, source, columns in files:
        table = _table(path)
        mapping = {k: columns.get(k, k) for k in COLUMNS[kind]}
        missing = [c for c in mapping.values() if c not in table.columns]
        if missing:
            msg = f"{path}: a {kind.value} file needs columns {list(mapping.values())}; {missing} are missing " \
                  f"(it has {list(table.columns)})."
            raise UsageError(msg, hint="Map the file's columns with --column NAME=FILE_COLUMN.")
        checked.append((path, kind, source, mapping, len(table)))
    records = []
    for path, kind, source, mapping, rows in checked:
        target = folder / path.name
        with atomic_path(target) as tmp:
            shutil.copyfile(path, tmp)
        records.append(ListFile(path=path.name, kind=kind, sha256=sha256_file(target), rows=rows,
                                columns=mapping, source=source))
    record = CorpusList(name=name, description=description, complete=complete, census_version=census_version,
                        citation=citation, license=license, files=records, counts={},
                        recorded=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                        heldout_version=heldout.__version__)
    loaded = LoadedList(record, folder)
    record = record.model_copy(update={"counts": loaded.counts()})
    import yaml

    write_text_atomic(folder / RECORD, yaml.safe_dump(record.to_dict(), sort_keys=False, allow_unicode=True))
    return folder / RECORD


@dataclass
class LoadedList:
    record: CorpusList
    folder: Path
    verified: bool = field(default=False)

    def table(self, kind: ListFileKind) -> Rows | None:
        """The rows of every file of ``kind``, with heldout's column names."""
        files = [f for f in self.record.files if f.kind is kind]
        if not files:
            return None
        rows: list[dict[str, str]] = []
        for f in files:
            rows += [{ours: row[theirs] for ours, theirs in f.columns.items()} for row in _table(self.folder / f.path)]
        return Rows(rows, list(files[0].columns))

    @cached_property
    def accessions(self) -> AccessionIndex | None:
        samples, projects = self.table(ListFileKind.samples), self.table(ListFileKind.projects)
        return AccessionIndex(samples, projects) if samples is not None or projects is not None else None

    @cached_property
    def release(self) -> ReleaseTable | None:
        table = self.table(ListFileKind.census_datasets)
        return ReleaseTable(table) if table is not None else None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        if self.accessions is not None:
            out.update(self.accessions.counts())
        if self.release is not None:
            table = self.release.table
            out.update({"datasets": len(table), "collections": len(set(table.column("collection_id"))),
                        "datasets without collection_doi": sum(1 for r in table if not r["collection_doi"])})
        return out


def load_list(root: Path, path: str, *, sha256: str | None = None) -> LoadedList:
    """A recorded list named by a card (relative to ``root``): confined, its record and every file verified."""
    from heldout.untrusted.limits import limits
    from heldout.untrusted.paths import regular_file, resolve_inside
    from heldout.untrusted.yaml_input import read_yaml_file

    record_path = resolve_inside(root, path, "corpus list")
    if not record_path.exists():
        msg = f"The corpus list {path} is not here (looked in {root})."
        raise HeldoutError(msg, hint="Record it with `heldout corpus record-list`, or pull the release that has it.")
    regular_file(record_path, "corpus list", limits().yaml_bytes)
    if sha256 and sha256_file(record_path) != sha256:
        msg = f"The corpus list {path} does not match the sha256 the model card pins ({sha256[:12]}...)."
        raise ChecksumMismatch(msg, hint="It was changed after review; record it again and update the card.")
    record = parse_card(read_yaml_file(record_path), CorpusList, source=record_path)
    folder = record_path.parent
    for f in record.files:
        file = resolve_inside(folder, f.path, f"file of corpus list {record.name}")
        regular_file(file, f"file of corpus list {record.name}", limits().file_bytes)
        if sha256_file(file) != f.sha256:
            msg = f"{file} does not match its sha256 in {record_path}."
            raise ChecksumMismatch(msg, hint="Restore the file as recorded, or record the list again.")
    return LoadedList(record, folder, verified=True)


class ListCache:
    """Recorded corpus lists of one project root, loaded and verified once per audit or lookup."""

    def __init__(self, root: Path | None) -> None:
        self.root = root or Path.cwd()
        self._loaded: dict[tuple[str, str | None], LoadedList] = {}

    def get(self, path: str, sha256: str | None) -> LoadedList:
        key = (path, sha256)
        if key not in self._loaded:
            self._loaded[key] = load_list(self.root, path, sha256=sha256)
        return self._loaded[key]


@dataclass(frozen=True)
class AccessionHit:
    """What a list holds for one identifier: the projects, samples and cells it names."""

    key: Identifier
    projects: tuple[str, ...]
    samples: tuple[str, ...]
    cells: int | None
    rows: tuple[int, ...]  # row numbers in the list's files (samples rows, else projects rows)


class AccessionIndex:
    """Per-sample and per-project rows of an accession list, indexed by normalised identifier."""

    def __init__(self, samples: Rows | None, projects: Rows | None) -> None:
        self.samples = samples if samples is not None else Rows([], ["project", "sample", "cells"])
        self.projects = projects if projects is not None else Rows([], ["project", "references"])
        self._by_project: dict[Identifier, list[int]] = defaultdict(list)
        self._by_sample: dict[Identifier, list[int]] = defaultdict(list)
        for i, row in enumerate(self.samples):
            self._by_project[parse_identifier(row["project"])].append(i)
            self._by_sample[parse_identifier(row["sample"])].append(i)
        self._by_reference: dict[Identifier, list[int]] = defaultdict(list)
        self._project_rows: dict[Identifier, list[int]] = defaultdict(list)
        for i, row in enumerate(self.projects):
            self._project_rows[parse_identifier(row["project"])].append(i)
            for ref in parse_identifiers(row["references"]):
                self._by_reference[ref].append(i)

    def counts(self) -> dict[str, int]:
        kinds: dict[str, int] = defaultdict(int)
        for key in set(self._by_project) | set(self._project_rows):
            kinds[f"projects ({key.kind.value})"] += 1
        cells = [_number(c) for c in self.samples.column("cells")]
        return {"samples": len(self.samples), "projects": len(set(self._by_project) | set(self._project_rows)),
                "projects with references": sum(1 for r in self.projects if r["references"].strip()),
                "cells": sum(c for c in cells if c is not None), **dict(sorted(kinds.items()))}

    def keys(self) -> set[Identifier]:
        """Every identifier the list holds: projects, samples and the projects' references."""
        return set(self._by_project) | set(self._by_sample) | set(self._project_rows) | set(self._by_reference)

    @cached_property
    def kinds(self) -> dict[IdKind, int]:
        """How many keys of each kind the list holds (projects, samples and references)."""
        out: dict[IdKind, int] = defaultdict(int)
        for key in self.keys():
            out[key.kind] += 1
        return dict(out)

    def checkable(self, kind: IdKind, at_least: int = 10) -> bool:
        """Whether the list holds keys of ``kind`` systematically (absence of such a key means something)."""
        return self.kinds.get(kind, 0) >= at_least

    @property
    def unresolvable_projects(self) -> list[str]:
        return sorted(k.value for k in set(self._by_project) | set(self._project_rows) if k.kind is IdKind.other)

    def _sample_hit(self, key: Identifier, rows: list[int]) -> AccessionHit:
        part = [self.samples[r] for r in rows]
        cells = [_number(r["cells"]) for r in part]
        return AccessionHit(key=key, projects=tuple(sorted({r["project"] for r in part})),
                            samples=tuple(r["sample"] for r in part),
                            cells=sum(cells) if all(c is not None for c in cells) else None,  # type: ignore[misc]
                            rows=tuple(rows))

    def lookup(self, key: Identifier) -> AccessionHit | None:
        """The list's rows for ``key``: a series or project names its samples; a PMID/DOI names its projects."""
        if key in self._by_sample:
            return self._sample_hit(key, self._by_sample[key])
        if key in self._by_project:
            return self._sample_hit(key, self._by_project[key])
        rows = self._project_rows.get(key) or self._by_reference.get(key)
        if not rows:
            return None
        projects = tuple(sorted({self.projects[r]["project"] for r in rows}))
        sample_rows = [r for p in projects for r in self._by_project.get(parse_identifier(p), [])]
        if sample_rows:
            hit = self._sample_hit(key, sample_rows)
            return AccessionHit(key=key, projects=projects, samples=hit.samples, cells=hit.cells, rows=tuple(rows))
        return AccessionHit(key=key, projects=projects, samples=(), cells=None, rows=tuple(rows))

    def references_of(self, project: str) -> list[Identifier]:
        rows = self._project_rows.get(parse_identifier(project), [])
        return [ref for r in rows for ref in parse_identifiers(self.projects[r]["references"])]


class ReleaseTable:
    """One Census release's dataset table, indexed by dataset id, collection id and collection DOI."""

    def __init__(self, table: Rows) -> None:
        self.table = table
        self._index: dict[Identifier, list[int]] = defaultdict(list)
        for i, row in enumerate(table):
            self._index[Identifier(IdKind.cellxgene_id, row["dataset_id"].lower())].append(i)
            self._index[Identifier(IdKind.cellxgene_id, row["collection_id"].lower())].append(i)
            if row["collection_doi"]:
                self._index[parse_identifier(row["collection_doi"])].append(i)

    def keys(self) -> set[Identifier]:
        """Every identifier the table holds: dataset and collection ids, collection DOIs."""
        return set(self._index)

    def lookup(self, key: Identifier) -> list[tuple[int, dict[str, str]]]:
        """(row number from 0, row) of every dataset the key names (its id, its collection's id or DOI)."""
        return [(i, self.table[i]) for i in self._index.get(key, [])]


def _number(text: str) -> int | None:
    try:
        return int(float(text))
    except (TypeError, ValueError):
        return None
