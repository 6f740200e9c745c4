"""Model cards: what a model's pretraining and task-training corpora are, and how we know.

Each corpus says how it is documented, which decides what an audit can prove:

* ``census_filter``: a Census version + obs filter (resolved to dataset ids,
  donors and cell fingerprints against that version);
* ``dataset_ids``: an explicit list of CELLxGENE dataset / collection ids;
* ``accessions``: external accessions (GEO, DOI, PMID), matched to the eval
  datasets' collection DOIs and citations; ``complete: false`` if the list we
  hold is partial;
* ``date_cutoff``: everything public before a date;
* ``prose``: a description only: never enough to call a pairing GREEN;
* ``recorded``: the exact files a model was trained on, recorded by
  ``heldout corpus record`` into a manifest (ids, donors, cell signatures).

A ``census_filter`` or ``dataset_ids`` corpus can also point at a recorded
manifest (``manifest:``): audits then join against it instead of rescanning
the Census. ``manifest_sha256`` pins the manifest a reviewer approved.

Every claim records its ``sources`` (paper, repository path at a commit).
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Literal

import pydantic

from heldout.cards._base import FrozenRecord, load_card
from heldout.cards.dataset import DATE_PATTERN, NAME_PATTERN, Organism
from heldout.errors import CardError, HeldoutError, unknown_choice


class CorpusRole(enum.StrEnum):
    pretraining = "pretraining"
    task_training = "task_training"  # fine-tuning / supervised training: overlap here is RED


class Documentation(enum.StrEnum):
    census_filter = "census_filter"
    dataset_ids = "dataset_ids"
    accessions = "accessions"
    date_cutoff = "date_cutoff"
    prose = "prose"
    recorded = "recorded"


class CensusQuery(FrozenRecord):
    source: Literal["mirror", "census"] = "census"
    version: Annotated[str, pydantic.Field(pattern=DATE_PATTERN)]
    organism: Organism
    obs_value_filter: str
    proxy_for: str | None = None  # e.g. a weekly build that is gone, approximated by this LTS


class ClaimSource(FrozenRecord):
    kind: Literal["paper", "repository", "model_card", "documentation", "registry"]
    ref: str


RECORDABLE = (Documentation.census_filter, Documentation.dataset_ids, Documentation.recorded)


class Corpus(FrozenRecord):
    role: CorpusRole
    name: str
    documented_as: Documentation
    description: str = ""
    census: CensusQuery | None = None
    dataset_ids: list[str] = pydantic.Field(default_factory=list)
    collection_ids: list[str] = pydantic.Field(default_factory=list)
    accessions: list[str] = pydantic.Field(default_factory=list)
    complete: bool = True  # False: the list we hold is known to be partial
    cutoff_date: Annotated[str, pydantic.Field(pattern=DATE_PATTERN)] | None = None
    labels: list[str] = pydantic.Field(default_factory=list)  # supervised labels (task training)
    sources: list[ClaimSource] = pydantic.Field(min_length=1)
    notes: str = ""
    manifest: str | None = None  # a recorded corpus manifest, relative to the project root
    manifest_sha256: Annotated[str, pydantic.Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    accession_list: str | None = None  # a recorded corpus list (corpora/lists/NAME/list.yaml) of this corpus
    accession_list_sha256: Annotated[str, pydantic.Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    release_table: str | None = None  # census corpora: the recorded dataset table of the Census release drawn from
    release_table_sha256: Annotated[str, pydantic.Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    inherited_from: Annotated[str, pydantic.Field(pattern=NAME_PATTERN)] | None = None  # a model whose corpus
    # this is, taken by reference (AIDO.Cell pretrained on scFoundation's list): the evidence says so
    missing: str = ""  # what the model's authors would need to publish for this corpus to be decided

    @pydantic.field_validator("manifest", "accession_list", "release_table")
    @classmethod
    def _manifest_inside(cls, value: str | None) -> str | None:
        from heldout.untrusted.paths import check_relative

        if value is not None:
            try:
                check_relative(value, "manifest")
            except HeldoutError as exc:
                raise ValueError(exc.message) from None
            if not value.endswith(".yaml"):
                msg = f"{value!r} must name a .yaml file written by `heldout corpus record` or `record-list`"
                raise ValueError(msg)
        return value

    @pydantic.model_validator(mode="after")
    def _fields_match_documentation(self) -> Corpus:
        needed = {
            Documentation.census_filter: ("census", self.census is not None),
            Documentation.dataset_ids: ("dataset_ids or collection_ids", bool(self.dataset_ids or self.collection_ids)),
            Documentation.accessions: ("accessions or accession_list", bool(self.accessions or self.accession_list)),
            Documentation.date_cutoff: ("cutoff_date", self.cutoff_date is not None),
            Documentation.recorded: ("manifest", self.manifest is not None),
        }.get(self.documented_as)
        if needed and not needed[1]:
            msg = f"corpus {self.name!r} is documented_as {self.documented_as.value!r} but has no {needed[0]}"
            raise ValueError(msg)
        if self.manifest is not None and self.documented_as not in RECORDABLE:
            msg = (f"corpus {self.name!r} is documented_as {self.documented_as.value!r}, which has no cells to "
                   f"record; a manifest belongs to {', '.join(d.value for d in RECORDABLE)} corpora")
            raise ValueError(msg)
        return self

    def definition(self) -> dict:
        """What a recorded manifest must have been recorded from (its ``definition_sha256``)."""
        return {"role": self.role.value, "documented_as": self.documented_as.value,
                "census": self.census.to_dict() if self.census else None,
                "dataset_ids": sorted(self.dataset_ids), "collection_ids": sorted(self.collection_ids)}


class ModelCard(FrozenRecord):
    schema_version: Literal[1]
    name: Annotated[str, pydantic.Field(pattern=NAME_PATTERN)]
    display_name: str
    family: str
    variants: list[str] = pydantic.Field(min_length=1)  # checkpoints this card covers
    organisms: list[Organism]
    corpora: list[Corpus] = pydantic.Field(min_length=1)
    notes: str = ""


def models_dir(registry: Path) -> Path:
    return registry / "models"


def list_model_cards(registry: Path) -> list[str]:
    folder = models_dir(registry)
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.exists() else []


def load_model_card(name_or_path: str | Path, registry: Path) -> ModelCard:
    path = Path(name_or_path)
    if path.suffix not in {".yaml", ".yml"}:
        path = models_dir(registry) / f"{name_or_path}.yaml"
        if not path.exists():
            raise unknown_choice("model", str(name_or_path), list_model_cards(registry),
                                 hint=f"Model cards live in {models_dir(registry)}.")
    card = load_card(path, ModelCard, inside=registry if path.parent == models_dir(registry) else None)
    if path.parent == models_dir(registry) and path.stem != card.name:
        msg = f"{path}: name {card.name!r} must match the file name {path.stem!r}."
        raise CardError(msg)
    return card
