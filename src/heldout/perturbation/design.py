"""The design of a perturbation dataset, per cell, and its validation with pandera.

:func:`design_table` turns a source file's obs into heldout's design columns (scPerturb / pertpy
conventions): ``perturbation`` (the condition, targets joined by ``+``, ``control`` for controls),
``perturbation_type``, ``cell_line``, ``nperts`` and ``target_gene_ids``. :func:`validate_design`
checks it with a pandera schema built from the card, and refuses with every problem named:

* the control is present, with at least ``min_control_cells`` cells (in every cell line);
* every condition parses: non-empty targets separated by the card's delimiter, no target twice;
* every target symbol is declared in ``targets`` and maps to that Ensembl id in GENCODE;
* no condition has fewer than ``min_cells_per_condition`` cells.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa

from heldout.cards.perturbation import CONTROL, PerturbationDesign
from heldout.errors import ValidationFailed


def design_table(obs: pd.DataFrame, design: PerturbationDesign, what: str) -> pd.DataFrame:
    """The design columns of every cell of ``obs`` (a source file's obs), with the file's own ``condition``
    string (what :func:`validate_design` checks once the card's cells are selected)."""
    if design.column not in obs.columns:
        msg = f"{what}: obs has no column {design.column!r} (perturbation.column); it has {list(obs.columns)}."
        raise ValidationFailed(msg, hint="Name the obs column that holds each cell's condition.")
    raw = obs[design.column].astype(str).to_numpy()
    targets = [design.parse(c) for c in raw]
    table = pd.DataFrame({
        "condition": raw,
        "perturbation": [CONTROL if c == design.control else "+".join(t) for c, t in zip(raw, targets, strict=True)],
        "perturbation_type": design.kind.value,
        "cell_line": obs[design.cell_line_column].astype(str).to_numpy() if design.cell_line_column else "unknown",
        "nperts": np.array([len(t) for t in targets], dtype=np.int64),
        "target_gene_ids": ["+".join(design.targets.get(g, f"?{g}") for g in t) for t in targets],
    })
    return table


def validate_design(table: pd.DataFrame, design: PerturbationDesign, organism: str, what: str) -> None:
    """Refuse the design of the selected cells (``table``: from :func:`design_table`) if it breaks any rule of
    the module docstring, naming every problem and its fix."""
    from heldout.genes import _symbol_to_id, _unique_symbols

    unique, ambiguous = _unique_symbols(organism)
    gencode = {s: _symbol_to_id(s, unique, ambiguous)[0] for s in design.targets}
    wrong_ids = {s: (i, gencode[s]) for s, i in design.targets.items() if gencode[s] != i}
    counts = table["perturbation"].value_counts()
    per_line = table[table["perturbation"] == CONTROL].groupby("cell_line").size()
    lines = pd.unique(table["cell_line"])
    raw = table["condition"].astype(str).to_numpy()
    table = table.reset_index(drop=True)

    def parses(series: pd.Series) -> pd.Series:
        ok = []
        for value, original in zip(series, raw, strict=True):
            parts = [] if original == design.control else str(original).split(design.delimiter)
            ok.append(original == design.control or (all(p.strip() == p and p for p in parts)
                                                     and len(set(parts)) == len(parts)))
        return pd.Series(ok, index=series.index)

    schema = pa.DataFrameSchema({
        "perturbation": pa.Column(str, checks=[
            pa.Check(parses, element_wise=False, error=f"condition does not parse (targets separated by "
                                                       f"{design.delimiter!r}, none empty or repeated)"),
            pa.Check(lambda s: ~s.str.split("+").apply(lambda t: any(g not in design.targets for g in t if g != CONTROL)),
                     error="condition names a target that perturbation.targets does not declare"),
            pa.Check(lambda s: s.map(counts) >= design.min_cells_per_condition,
                     error=f"condition has fewer than min_cells_per_condition = {design.min_cells_per_condition} "
                           "cells"),
        ]),
        "nperts": pa.Column(int, checks=pa.Check.ge(0)),
    })
    problems = []
    try:
        schema.validate(table, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        for check, group in cases.groupby("check", sort=False):
            values = sorted({str(v) for v in group["failure_case"]})
            problems.append(f"{check}: {', '.join(values[:12])}{' ...' if len(values) > 12 else ''}")
    if CONTROL not in counts.index:
        problems.append(f"no control cells: no cell is labelled {design.control!r} in {design.column!r}")
    for line in lines:
        n = int(per_line.get(line, 0))
        if n < design.min_control_cells:
            problems.append(f"cell line {line!r} has {n} control cells (min_control_cells = {design.min_control_cells})")
    for symbol, (declared, found) in wrong_ids.items():
        problems.append(f"target {symbol} is declared {declared}, but GENCODE {organism} maps it to "
                        f"{found or 'nothing'}")
    if problems:
        msg = f"{what}: the perturbation design does not validate:\n  - " + "\n  - ".join(problems)
        raise ValidationFailed(msg, hint="Fix the card's `perturbation:` block (targets, control, delimiter, "
                                         "minimum cells) or the file's conditions.")
