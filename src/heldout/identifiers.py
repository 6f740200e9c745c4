"""Public identifiers of single-cell data, parsed and normalised the way corpus lists write them.

Corpus lists spell one accession many ways: ``GEO-GSE133344``, ``GSE133344``,
``DISCO-E-MTAB-9492``, ``AE-E-MTAB-11536``, ``31067475 || 33521016``,
``doi:10.1016/j.jhep.2020.05.039``, ``https://doi.org/10.1038/...``. Each is
parsed into an :class:`Identifier` (a kind and a canonical value), so a dataset
card's ``GSE133344`` meets a list's ``GEO-GSE133344``. A value that is none of
the known kinds is kept as ``other``: it can never match, so evidence that
rests on it is inconclusive.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass


class IdKind(enum.StrEnum):
    geo_series = "geo_series"
    geo_sample = "geo_sample"
    arrayexpress = "arrayexpress"
    sra_study = "sra_study"
    bioproject = "bioproject"
    hca_project = "hca_project"
    disco_project = "disco_project"
    gsa_human = "gsa_human"
    ega_study = "ega_study"
    single_cell_portal = "single_cell_portal"
    pmid = "pmid"
    doi = "doi"
    cellxgene_id = "cellxgene_id"  # a dataset or collection UUID
    other = "other"


@dataclass(frozen=True, order=True)
class Identifier:
    kind: IdKind
    value: str

    def __str__(self) -> str:
        return self.value if self.kind is not IdKind.pmid else f"PMID:{self.value}"


PATTERNS: tuple[tuple[IdKind, re.Pattern[str]], ...] = (
    (IdKind.geo_series, re.compile(r"^GSE\d+$")),
    (IdKind.geo_sample, re.compile(r"^GSM\d+$")),
    (IdKind.arrayexpress, re.compile(r"^E-[A-Z]{4}-\d+$")),
    (IdKind.sra_study, re.compile(r"^[SED]RP\d+$")),
    (IdKind.bioproject, re.compile(r"^PRJ[NED][A-Z]?\d+$")),
    (IdKind.gsa_human, re.compile(r"^HRA\d+$")),
    (IdKind.ega_study, re.compile(r"^EGA[SD]\d+$")),
    (IdKind.single_cell_portal, re.compile(r"^SCP\d+$")),
    (IdKind.cellxgene_id, re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    (IdKind.pmid, re.compile(r"^\d{1,9}$")),
)
DOI = re.compile(r"^(?:doi:|https?://(?:dx\.)?doi\.org/)?(10\.\d{4,9}/\S+)$", re.IGNORECASE)
PREFIXES = ("GEO-", "AE-", "SRA-", "DISCO-", "HCA-", "PMID:", "PMID", "GEO:")
SEPARATORS = re.compile(r"\s*(?:\|\||;|,)\s*")


@functools.lru_cache(maxsize=65536)
def parse_identifier(text: str) -> Identifier:
    """One identifier, normalised (never raises: an unknown shape is ``other``)."""
    raw = text.strip().strip('"').strip()
    doi = DOI.match(raw)
    if doi:
        return Identifier(IdKind.doi, doi.group(1).lower().rstrip("."))
    upper = raw.upper()
    if upper.startswith("HCA-"):
        return Identifier(IdKind.hca_project, raw[4:].lower())
    disco = upper.startswith("DISCO-")
    rest = raw
    for prefix in PREFIXES:
        if upper.startswith(prefix):
            upper, rest = upper[len(prefix):].strip(), raw[len(prefix):].strip()
            break
    for kind, pattern in PATTERNS:
        if pattern.match(upper if kind is not IdKind.cellxgene_id else upper.lower()):
            return Identifier(kind, upper if kind is not IdKind.cellxgene_id else upper.lower())
    if disco:
        return Identifier(IdKind.disco_project, rest)
    return Identifier(IdKind.other, raw)


def parse_identifiers(text: str) -> list[Identifier]:
    """Every identifier in a cell of a list: ``31067475 || 33521016``, ``a; b``; empty for an empty cell."""
    if text is None or not str(text).strip() or str(text).strip().lower() == "nan":
        return []
    parts = [p for p in SEPARATORS.split(str(text).strip()) if p.strip()]
    return [parse_identifier(p) for p in parts]
