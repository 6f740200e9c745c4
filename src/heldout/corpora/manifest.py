"""Corpus manifest records, their layout on disk, and a verified reader that streams them for audits."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Literal

import pandas as pd
import pydantic

from heldout._files import read_yaml, sha256_file, write_json_atomic
from heldout.cards._base import FrozenRecord, parse_card
from heldout.cards.model import CorpusRole
from heldout.corpora.cell_file import CellFile
from heldout.errors import ChecksumMismatch, HeldoutError
from heldout.leakage.matching import CorpusBatch
from heldout.leakage.universe import GeneUniverse

MANIFEST = "manifest.yaml"
DATA = "data"


class InputFile(FrozenRecord):
    path: str
    sha256: str
    size: int


class CorpusSource(FrozenRecord):
    kind: Literal["census", "mirror", "h5ad", "soma"]
    census_version: str | None = None
    organism: str | None = None
    obs_value_filter: str | None = None
    uri: str | None = None
    inputs: list[InputFile] = pydantic.Field(default_factory=list)


class DataFile(FrozenRecord):
    path: str  # relative to the corpus folder
    sha256: str
    size: int
    dataset_id: str | None = None  # for cell files: whose cells
    n_cells: int = 0


class DatasetEntry(FrozenRecord):
    dataset_id: str
    dataset_title: str = ""
    collection_id: str = ""
    collection_doi: str = ""
    citation: str = ""
    n_cells: int
    n_informative: int
    n_donors: int


class CorpusManifest(FrozenRecord):
    """One recorded corpus of one model card. Never rewritten: re-recording makes a new one."""

    schema_version: Literal[1] = 1
    model: str
    corpus: str
    role: CorpusRole
    definition_sha256: str | None = None  # sha256 of the card's corpus definition (None: recorded files)
    source: CorpusSource
    created: str
    heldout_version: str
    signature: dict[str, int]  # sketch buckets, bands, information floor
    n_cells: int
    n_informative: int
    n_donors: int
    datasets: list[DatasetEntry]
    files: list[DataFile]


def safe_name(dataset_id: str) -> str:
    """A folder name for a dataset id (ids like 'h5ad:1f2e...' are not path-safe everywhere)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", dataset_id)


def corpus_dir(root: Path, model: str, corpus: str) -> Path:
    return root / "corpora" / model / corpus


def definition_sha256(definition: dict) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()


def read_manifest(path: Path) -> CorpusManifest:
    if not path.exists():
        msg = f"No corpus manifest at {path}."
        raise HeldoutError(msg, hint="Record it with `heldout corpus record`, or pull the release that has it.")
    return parse_card(read_yaml(path), CorpusManifest, source=path)


def _verified(folder: Path, record: DataFile) -> Path:
    """The file of ``record``, checked against its sha256 (once per size and mtime: cached)."""
    from heldout.untrusted.paths import resolve_inside

    path = resolve_inside(folder, record.path, f"corpus file of {folder / MANIFEST}")  # stays in the corpus folder
    if not path.exists():
        msg = f"Corpus file {path} is missing."
        raise HeldoutError(msg, hint="Fetch the corpus data with `dvc pull`, or pull the release that has it.")
    cache_path = folder / ".verified.json"
    try:
        cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    except json.JSONDecodeError:
        cache = {}
    stat = path.stat()
    stamp = [stat.st_size, stat.st_mtime_ns, record.sha256]
    if cache.get(record.path) == stamp:
        return path
    actual = sha256_file(path)
    if actual != record.sha256:
        msg = f"Corpus file {path} has sha256 {actual}, its manifest says {record.sha256}."
        raise ChecksumMismatch(msg, hint="The file was changed after recording; fetch it again (`dvc pull`) "
                                         "or record the corpus anew.")
    cache[record.path] = stamp
    write_json_atomic(cache_path, cache)
    return path


class CorpusReader:
    """A recorded corpus, verified file by file, read in bounded memory."""

    def __init__(self, manifest_path: Path) -> None:
        self.manifest_path = manifest_path
        self.folder = manifest_path.parent
        self.manifest = read_manifest(manifest_path)
        for record in self.manifest.files:
            _verified(self.folder, record)

    def _file(self, name: str) -> Path:
        record = next((f for f in self.manifest.files if f.path == f"{DATA}/{name}"), None)
        if record is None:
            msg = f"{self.manifest_path} lists no {DATA}/{name}."
            raise HeldoutError(msg, hint="The manifest is incomplete; record the corpus again.")
        return self.folder / record.path

    @cached_property
    def dataset_ids(self) -> frozenset[str]:
        return frozenset(d.dataset_id for d in self.manifest.datasets)

    @cached_property
    def collection_ids(self) -> frozenset[str]:
        return frozenset(d.collection_id for d in self.manifest.datasets if d.collection_id)

    @cached_property
    def donors(self) -> pd.DataFrame:
        """dataset_id, donor_id, n_cells of every donor in the corpus."""
        return pd.read_parquet(self._file("donors.parquet"))

    @cached_property
    def conditions(self) -> frozenset[str] | None:
        """``dataset::LINE|perturbation`` of every perturbation condition, when the cells carried a design."""
        from heldout.leakage import conditions

        if not any(f.path == f"{DATA}/{conditions.FILE}" for f in self.manifest.files):
            return None
        return conditions.keys(pd.read_parquet(self._file(conditions.FILE)))

    @cached_property
    def universe(self) -> GeneUniverse:
        return GeneUniverse.read(self._file("genes.parquet"))

    def batches(self) -> Iterator[CorpusBatch]:
        """The corpus's cells, batch by batch (:class:`heldout.corpora.cell_file.CellFile`)."""
        universe = self.universe
        for record in self.manifest.files:
            if record.dataset_id is not None:
                yield from CellFile(self.folder / record.path).batches(record.dataset_id,
                                                                      universe.genes_of(record.dataset_id))
