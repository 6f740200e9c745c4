"""The perturbation design a dataset card declares, and how its perturbation-disjoint split is made.

A perturbation dataset is curated like any other (raw counts, Census-schema obs, validated), and its
card adds the design, following scPerturb's and pertpy's obs conventions so a user's data fits:

* ``column``: the file's obs column naming each cell's condition (``perturbation`` in scPerturb/pertpy);
* ``control``: the control label (``control``); ``delimiter``: how combinations are written (``+``);
* ``kind``: CRISPRa, CRISPRi, CRISPRko or drug (scPerturb's ``perturbation_type``);
* ``cell_line_column``: the file's column naming the cell line;
* ``targets``: every target gene symbol with its Ensembl id (checked against GENCODE);
* ``min_cells_per_condition`` / ``min_control_cells``: what validation demands.

Curated obs gain ``perturbation`` (the condition, normalised to ``+``), ``perturbation_type``,
``cell_line``, ``nperts`` and ``target_gene_ids`` (Ensembl ids joined by ``+``).
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

import pydantic

from heldout.cards._base import FrozenRecord

ENSEMBL = r"^ENS[A-Z]*G\d{11}$"
CONTROL = "control"  # the label curated obs use for control cells, whatever the file calls them


class PerturbationKind(enum.StrEnum):
    CRISPRa = "CRISPRa"
    CRISPRi = "CRISPRi"
    CRISPRko = "CRISPRko"
    drug = "drug"


class SplitScheme(enum.StrEnum):
    gears_simulation = "gears_simulation"  # GEARS' get_simulation_split (snap-stanford/GEARS)
    combination = "combination"  # all singles and part of the doubles in train, the other doubles held out
    cross_cell_line = "cross_cell_line"  # perturbations learned in some cell lines, predicted in others


class PerturbationSplit(FrozenRecord):
    """A perturbation-disjoint split: no test condition (in a test cell line) appears in training."""

    scheme: SplitScheme
    seed: int = 1
    train_gene_fraction: Annotated[float, pydantic.Field(gt=0, lt=1)] = 0.75  # gears_simulation
    combo_seen2_train_fraction: Annotated[float, pydantic.Field(gt=0, lt=1)] = 0.75  # gears_simulation
    validation: bool = True  # gears_simulation: a validation set from the train conditions (as GEARS does)
    test_combination_fraction: Annotated[float, pydantic.Field(gt=0, lt=1)] = 0.5  # combination
    train_cell_lines: list[str] = pydantic.Field(default_factory=list)  # cross_cell_line
    control_test_fraction: Annotated[float, pydantic.Field(gt=0, lt=1)] = 0.2  # controls split by cell

    @pydantic.model_validator(mode="after")
    def _scheme_needs(self) -> PerturbationSplit:
        if self.scheme is SplitScheme.cross_cell_line and not self.train_cell_lines:
            msg = "a cross_cell_line split names its train_cell_lines (the others are predicted)"
            raise ValueError(msg)
        return self


class PerturbationDesign(FrozenRecord):
    column: str = "perturbation"
    control: str = "control"
    delimiter: Annotated[str, pydantic.Field(min_length=1, max_length=3)] = "+"
    kind: PerturbationKind
    cell_line_column: str | None = None
    targets: dict[str, Annotated[str, pydantic.Field(pattern=ENSEMBL)]] = pydantic.Field(min_length=1)
    min_cells_per_condition: Annotated[int, pydantic.Field(ge=1)] = 5
    min_control_cells: Annotated[int, pydantic.Field(ge=1)] = 50
    split: PerturbationSplit

    def parse(self, condition: str) -> list[str]:
        """The target symbols of a condition (empty for the control)."""
        return [] if condition == self.control else condition.split(self.delimiter)


DESIGN_COLUMNS = ("perturbation", "perturbation_type", "cell_line", "nperts", "target_gene_ids")
Values = Literal["counts", "log1p_cp10k"]
