"""Dataset cards (the declared spec) and dataset locks (what curation resolved).

A card lives in ``registry/datasets/<name>.yaml`` and is written by people. A
lock is written by ``heldout curate`` next to the h5ad: the concrete Census
version, dataset ids, counts and hashes. They are different records on purpose.
"""

from __future__ import annotations

import ast
import enum
from pathlib import Path
from typing import Annotated, Literal

import pydantic

from heldout.cards._base import FrozenRecord, load_card
from heldout.cards.perturbation import PerturbationDesign, Values
from heldout.errors import CardError, unknown_choice
from heldout.identifiers import Identifier, IdKind

CARD_SCHEMA_VERSION = 1
NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$"
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
SplitName = Literal["train", "validation", "test"]
SPLIT_NAMES: tuple[SplitName, ...] = ("train", "validation", "test")
OrthologPolicy = Literal["one2one_high_confidence", "one2one", "one2many_sum"]


class Organism(enum.StrEnum):
    homo_sapiens = "homo_sapiens"
    mus_musculus = "mus_musculus"


class PrimaryDataPolicy(enum.StrEnum):
    primary_only = "primary_only"  # adds `is_primary_data == True` to the filter
    all_cells = "all_cells"


class SpecialDonorPolicy(enum.StrEnum):
    own_group = "own_group"  # each (dataset, 'unknown'|'pooled'|'na') is one group of its own
    exclude = "exclude"  # such cells get no split


SPECIAL_DONOR_IDS = ("pooled", "unknown", "na")


class CensusSpec(FrozenRecord):
    source: Literal["mirror", "census"] = "mirror"
    version: Annotated[str, pydantic.Field(pattern=DATE_PATTERN)]
    organism: Organism
    obs_value_filter: str
    var_value_filter: str | None = None

    @pydantic.field_validator("obs_value_filter", "var_value_filter")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        return filter_parses(value)


def filter_parses(value: str | None) -> str | None:
    """A SOMA value filter must at least be a Python expression."""
    if value is not None:
        try:
            ast.parse(value, mode="eval")
        except SyntaxError as exc:
            msg = f"value filter does not parse: {exc.msg} at column {exc.offset}"
            raise ValueError(msg) from None
    return value


class ValueMap(FrozenRecord):
    """A Census column filled per cell from a column of the file, value by value (e.g. cell line -> CVCL id)."""

    column: str
    values: dict[str, str] = pydantic.Field(min_length=1)


class ObsMapping(FrozenRecord):
    """How a file outside the Census fills the Census obs columns curation needs."""

    columns: dict[str, str] = pydantic.Field(default_factory=dict)  # Census column: column of the file's obs
    values: dict[str, str] = pydantic.Field(default_factory=dict)  # Census column: one value for every cell
    maps: dict[str, ValueMap] = pydantic.Field(default_factory=dict)  # Census column: per-cell value map


class ExternalSource(FrozenRecord):
    """Cells from outside the Census: an h5ad file (path or URL, pinned by sha256) or any SOMA experiment."""

    kind: Literal["h5ad", "soma"]
    uri: str  # h5ad: a path (relative to the project) or an http(s)/s3 URL; soma: an experiment URI
    sha256: Annotated[str, pydantic.Field(pattern=r"^[0-9a-f]{64}$")] | None = None  # required for h5ad
    organism: Organism
    obs_value_filter: str = "soma_joinid >= 0"  # every cell of the source
    obs: ObsMapping = pydantic.Field(default_factory=ObsMapping)
    genes: Literal["auto", "id", "symbol"] = "auto"  # how var names identify genes
    values: Values = "counts"  # what X (or raw.X) holds; log1p_cp10k: counts are recovered exactly
    gene_column: str | None = None  # var column holding the gene ids/symbols (default: the var index)
    measurement: str = "RNA"  # soma: the measurement and X layer holding raw counts
    layer: str = "raw"
    max_lost_count_fraction: Annotated[float, pydantic.Field(ge=0, le=1)] = 0.10
    dataset_title: str = ""
    collection_doi: str = ""

    @pydantic.field_validator("obs_value_filter")
    @classmethod
    def _parses(cls, value: str) -> str:
        return filter_parses(value)  # type: ignore[return-value]

    @pydantic.model_validator(mode="after")
    def _pinned(self) -> ExternalSource:
        if self.kind == "h5ad" and not self.sha256:
            msg = "an h5ad source must pin its sha256 (run `sha256sum FILE` and add `sha256: <hex>`)"
            raise ValueError(msg)
        return self


class SplitPolicy(FrozenRecord):
    fractions: dict[SplitName, Annotated[float, pydantic.Field(ge=0, le=1)]] = pydantic.Field(
        default_factory=lambda: {"train": 0.6, "validation": 0.2, "test": 0.2})
    stratify_by: str | None = None
    seed: int = 0
    special_donors: SpecialDonorPolicy = SpecialDonorPolicy.own_group

    @pydantic.field_validator("fractions")
    @classmethod
    def _sum_to_one(cls, value: dict[str, float]) -> dict[str, float]:
        if abs(sum(value.values()) - 1.0) > 1e-6 or "test" not in value:
            msg = f"fractions must include 'test' and sum to 1, got {value}"
            raise ValueError(msg)
        return value


class OrthologSpec(FrozenRecord):
    target_organism: Organism
    policy: OrthologPolicy = "one2one_high_confidence"


UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class SourceIdentifiers(FrozenRecord):
    """The public identifiers of one source dataset of a card (what leakage audits look up in corpus lists)."""

    dataset_title: str  # the source dataset's title, as its Census (or staged source) lists it
    geo_series: list[Annotated[str, pydantic.Field(pattern=r"^GSE\d+$")]] = pydantic.Field(default_factory=list)
    geo_samples: list[Annotated[str, pydantic.Field(pattern=r"^GSM\d+$")]] = pydantic.Field(default_factory=list)
    arrayexpress: list[Annotated[str, pydantic.Field(pattern=r"^E-[A-Z]{4}-\d+$")]] = pydantic.Field(
        default_factory=list)
    sra_study: list[Annotated[str, pydantic.Field(pattern=r"^[SED]RP\d+$")]] = pydantic.Field(default_factory=list)
    pmid: list[Annotated[str, pydantic.Field(pattern=r"^\d{1,9}$")]] = pydantic.Field(default_factory=list)
    doi: list[Annotated[str, pydantic.Field(pattern=r"^10\.\d{4,9}/\S+$")]] = pydantic.Field(default_factory=list)
    cellxgene_collection_id: Annotated[str, pydantic.Field(pattern=UUID_PATTERN)] | None = None
    cellxgene_dataset_ids: list[Annotated[str, pydantic.Field(pattern=UUID_PATTERN)]] = pydantic.Field(
        default_factory=list)
    note: str = ""  # e.g. why a source has no accession

    def keys(self) -> list[Identifier]:
        """Every identifier, normalised (heldout.identifiers)."""
        out = [Identifier(IdKind.geo_series, v) for v in self.geo_series]
        out += [Identifier(IdKind.geo_sample, v) for v in self.geo_samples]
        out += [Identifier(IdKind.arrayexpress, v) for v in self.arrayexpress]
        out += [Identifier(IdKind.sra_study, v) for v in self.sra_study]
        out += [Identifier(IdKind.pmid, v) for v in self.pmid]
        out += [Identifier(IdKind.doi, v.lower()) for v in self.doi]
        ids = [self.cellxgene_collection_id] if self.cellxgene_collection_id else []
        out += [Identifier(IdKind.cellxgene_id, v) for v in [*ids, *self.cellxgene_dataset_ids]]
        return out


class DatasetCard(FrozenRecord):
    """A curated evaluation dataset, declared."""

    schema_version: Literal[1]
    name: Annotated[str, pydantic.Field(pattern=NAME_PATTERN)]
    description: str
    census: CensusSpec | None = None
    source: ExternalSource | None = None  # instead of census: a file or SOMA experiment outside the Census
    labels: list[str] = pydantic.Field(min_length=1)
    primary_data: PrimaryDataPolicy = PrimaryDataPolicy.primary_only
    license: str
    citation: str
    split: SplitPolicy = pydantic.Field(default_factory=SplitPolicy)
    orthologs: OrthologSpec | None = None
    identifiers: list[SourceIdentifiers] = pydantic.Field(default_factory=list)  # one entry per source dataset
    perturbation: PerturbationDesign | None = None  # a perturbation screen: its design and split

    @pydantic.model_validator(mode="after")
    def _one_split_policy(self) -> DatasetCard:
        if self.perturbation is not None and "split" in self.model_fields_set:
            msg = ("a perturbation card is split by `perturbation.split` (perturbation-disjoint); remove the "
                   "donor `split:` block")
            raise ValueError(msg)
        return self

    @pydantic.model_validator(mode="after")
    def _one_entry_per_source(self) -> DatasetCard:
        titles = [i.dataset_title for i in self.identifiers]
        repeated = sorted({t for t in titles if titles.count(t) > 1})
        if repeated:
            msg = f"identifiers name the dataset(s) {repeated} more than once; give one entry per source dataset"
            raise ValueError(msg)
        return self

    @pydantic.model_validator(mode="after")
    def _one_source(self) -> DatasetCard:
        if (self.census is None) == (self.source is None):
            msg = "name exactly one of `census:` (a Census or mini-Census query) or `source:` (an h5ad or SOMA)"
            raise ValueError(msg)
        return self

    @property
    def organism(self) -> Organism:
        return self.census.organism if self.census else self.source.organism  # type: ignore[union-attr]

    @property
    def var_value_filter(self) -> str | None:
        return self.census.var_value_filter if self.census else None

    @pydantic.model_validator(mode="after")
    def _stratify_is_a_label(self) -> DatasetCard:
        if self.split.stratify_by and self.split.stratify_by not in self.labels:
            msg = f"split.stratify_by {self.split.stratify_by!r} must be one of labels {self.labels}"
            raise ValueError(msg)
        return self

    @property
    def obs_filter(self) -> str:
        """The filter curation sends to the Census (primary policy included)."""
        base = f"({self.census.obs_value_filter if self.census else self.source.obs_value_filter})"  # type: ignore[union-attr]
        return f"{base} and is_primary_data == True" if self.primary_data is PrimaryDataPolicy.primary_only else base


class SourceDataset(FrozenRecord):
    """One Census dataset a curated dataset draws from (what accession audits match)."""

    dataset_id: str
    dataset_title: str = ""
    collection_id: str = ""
    collection_doi: str = ""
    citation: str = ""


class DatasetLock(FrozenRecord):
    """What curation resolved for a card: pinned, hashed, counted."""

    schema_version: Literal[1] = 1
    name: str
    card_sha256: str
    census_source: str  # mirror | census | h5ad | soma
    census_version: str
    organism: str
    obs_value_filter: str
    dataset_ids: list[str]
    sources: list[SourceDataset] = pydantic.Field(default_factory=list)
    n_cells: int
    n_donors: int
    n_genes: int
    h5ad: str
    h5ad_sha256: str
    heldout_version: str
    source_uri: str | None = None  # h5ad/soma sources: where the cells came from ...
    source_sha256: str | None = None  # ... and the h5ad's pinned checksum
    unmapped_genes: int | None = None  # source genes that did not map to GENCODE (listed beside the staged copy)


def registry_root(root: str | Path | None = None) -> Path:
    return Path(root or "registry").resolve()


def card_path(name: str, root: str | Path | None = None) -> Path:
    return registry_root(root) / "datasets" / f"{name}.yaml"


def list_dataset_cards(root: str | Path | None = None) -> list[str]:
    folder = registry_root(root) / "datasets"
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.exists() else []


def load_dataset_card(name_or_path: str | Path, root: str | Path | None = None) -> DatasetCard:
    """Load a card by registry name or by file path."""
    path = Path(name_or_path)
    if path.suffix not in {".yaml", ".yml"}:
        path = card_path(str(name_or_path), root)
        if not path.exists():
            raise unknown_choice("dataset", str(name_or_path), list_dataset_cards(root),
                                 hint=f"Cards live in {registry_root(root) / 'datasets'}.")
    card = load_card(path, DatasetCard, inside=registry_root(root) if path.parent == card_path("x", root).parent
                     else None)
    if path.stem != card.name:
        msg = f"{path}: name {card.name!r} must match the file name {path.stem!r}."
        raise CardError(msg, hint=f"Rename the file to {card.name}.yaml or fix `name:`.")
    return card


