"""Run a pandera schema on obs or var: every failure at once, each distinct value checked once.

Categorical columns repeat a few values millions of times, so each value check
runs on the column's distinct values (with their row counts), and each
dataframe check on the distinct combinations of the columns it reads. Numbers
that rarely repeat (per-cell sums and means) are checked row by row instead, and
per-row columns (ids) are checked whole, their uniqueness proven without hashing
where that is cheap. Checks
that depend on the organism or the ontology version (``ontology_term``,
``gencode_feature``) get both before they run. Failures come back as
:class:`heldout.validation.Failure` records with the reason and the fix.
"""

from __future__ import annotations

import copy
import dataclasses

import numba
import numpy as np
import pandas as pd
import pandera.errors
import pandera.pandas as pa

from heldout import ontologies
from heldout.validation import rules
from heldout.validation.report import Failure

CONTEXT_CHECKS = {"ontology_term", "gencode_feature"}
BUILTIN_FIXES = {"str_matches": "match the pattern", "isin": "use one of the allowed values",
                 "greater_than_or_equal_to": "use a non-negative value", "dtype": "store the column with this dtype",
                 "field_uniqueness": "make the values unique", "not_nullable": "fill the missing values"}


@dataclasses.dataclass(frozen=True)
class Context:
    organism: str | None = None  # Census key: homo_sapiens, mus_musculus (None: unknown organism)
    schema_version: str = ontologies.LATEST  # the guide's ontology set
    harmonised: frozenset[str] = frozenset()  # label columns a curation map rewrote on purpose (not term labels)


def with_context(schema: pa.DataFrameSchema, ctx: Context) -> pa.DataFrameSchema:
    """The schema with the organism and ontology version given to the checks that need them."""
    columns = {}
    for name, column in schema.columns.items():
        checks = [_contextual(c, ctx) if c.name in CONTEXT_CHECKS else c for c in column.checks]
        columns[name] = column.set_checks(checks)
    index = schema.index
    if index is not None and any(c.name in CONTEXT_CHECKS for c in index.checks):
        index = index.set_checks([_contextual(c, ctx) if c.name in CONTEXT_CHECKS else c for c in index.checks])
    return pa.DataFrameSchema(columns, checks=schema.checks, index=index, strict=schema.strict, coerce=schema.coerce,
                              name=schema.name)


def _contextual(check: pa.Check, ctx: Context) -> pa.Check:
    stats = dict(check.statistics)
    stats["organism"] = ctx.organism
    if check.name == "ontology_term":
        stats["schema_version"] = ctx.schema_version
    return getattr(pa.Check, check.name)(**stats)


def validate_frame(component: str, schema: pa.DataFrameSchema, frame: pd.DataFrame, ctx: Context) -> list[Failure]:
    """Every failure of ``frame`` against ``schema``: missing columns, values, cross-column rules."""
    schema = with_context(schema, ctx)
    failures = [Failure(component, c, "column present", "<missing>", "", len(frame),
                        reason="the column is missing", fix=f"add {component}[{c!r}]")
                for c, col in schema.columns.items() if c not in frame.columns and col.required]
    present = {c: col for c, col in schema.columns.items() if c in frame.columns}
    per_row = [c for c, col in present.items() if col.unique]
    if per_row or schema.index is not None:
        index_unique = _unique(frame.index)
        columns = {c: _vectorised_str(present[c], frame[c]) for c in per_row}
        columns = {c: _without_unique(col) if _proven_unique(frame[c], frame.index, index_unique) else col
                   for c, col in columns.items()}
        index = schema.index
        if index is not None and all_strings(frame.index):
            index = pa.Index(None, checks=index.checks, nullable=True,  # all str: none missing
                             unique=index.unique and not index_unique, name=index.name)
        elif index is not None and index_unique:
            index = _without_unique(index)
        full = pa.DataFrameSchema(columns, index=index, strict=False)
        failures += _failures(component, full, _plain_strings(frame[per_row]), frame, ctx)
    direct = [c for c in present if c not in per_row and _mostly_distinct(frame[c])]
    if direct:  # numbers that rarely repeat (raw_sum, means): deduplicating them costs more than checking them
        failures += _failures(component, pa.DataFrameSchema({c: present[c] for c in direct}, strict=False),
                              frame[direct], frame, ctx)
    for column in (c for c in present if c not in per_row and c not in direct):
        distinct, n_rows = _distinct_values(frame[column])
        checks = pa.DataFrameSchema({column: present[column]}, strict=False)
        failures += _failures(component, checks, distinct, frame, ctx, n_rows)
    for check in schema.checks:
        failures += _cross(component, check, frame, ctx)
    return failures


def _proven_unique(values: pd.Series, index: pd.Index, index_unique: bool) -> bool:
    """Uniqueness known without hashing the column again: strictly increasing integers (soma_joinid), or
    the very values of an index already known unique (observation_joinid of a curated file). Otherwise
    pandera checks it and reports each duplicate."""
    if pd.api.types.is_integer_dtype(values.dtype):
        v = values.to_numpy()
        return len(v) < 2 or bool((v[1:] > v[:-1]).all())
    if not index_unique or len(values) != len(index) or values.hasnans:
        return False
    return bool((values.to_numpy(dtype=object) == index.to_numpy(dtype=object)).all())


def _without_unique(column: pa.Column | pa.Index) -> pa.Column | pa.Index:
    out = copy.copy(column)
    out.unique = False
    return out


def _mostly_distinct(values: pd.Series, sample: int = 10_000) -> bool:
    """A numeric column whose first ``sample`` values are mostly distinct: checked row by row, not per value."""
    if not pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype) \
            or len(values) <= sample:
        return False
    return len(pd.unique(values.to_numpy()[:sample])) > sample // 2


def all_strings(values: pd.Series | pd.Index | np.ndarray) -> bool:
    """Every value is a str (pandas' C type inference: what pandera's per-element str check decides).

    A Series is inferred from its array: ``infer_dtype(series)`` probes the Series for attributes,
    and each miss makes pandas look the name up in the index, which hashes a 1M-id index (0.2 s).
    """
    if isinstance(values, pd.Series):
        if isinstance(values.dtype, pd.CategoricalDtype):
            return False
        values = values.to_numpy()
    return pd.api.types.infer_dtype(values, skipna=False) == "string"


def _vectorised_str(column: pa.Column, values: pd.Series) -> pa.Column:
    """A per-row str column whose values are all strings needs no per-element dtype check (1M rows: ~1 s)
    and no search for missing values (none is a str)."""
    if str(column.dtype) == "str" and all_strings(values):
        return pa.Column(None, checks=column.checks, nullable=True, unique=column.unique,
                         required=column.required, name=column.name)
    return column


def _unique(index: pd.Index) -> bool:
    """Whether an index's values all differ. Strings are hashed to 64 bits first (pandas' hash_array,
    then a sort: 1M ids in ~0.27 s, against ~0.4-0.5 s for ``is_unique``'s hash table); only equal
    hashes, a duplicate or a collision, send it to the exact check."""
    if index.dtype != object or len(index) < 2:
        return bool(index.is_unique)
    hashes = pd.util.hash_array(index.to_numpy(), categorize=False)
    hashes.sort()
    return True if not (hashes[1:] == hashes[:-1]).any() else bool(index.is_unique)


def _failures(component: str, schema: pa.DataFrameSchema, values: pd.DataFrame, frame: pd.DataFrame, ctx: Context,
              counts: pd.Series | None = None) -> list[Failure]:
    try:
        schema.validate(values, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        out = []
        for r in exc.failure_cases.itertuples(index=False):
            position = r.index
            n = int(counts.get(position, 1)) if counts is not None and position in counts.index else 1
            row = str(frame.index[int(position)]) if isinstance(position, int | float) and position == position \
                and counts is not None else str(position)
            column = str(r.column) if r.column is not None else ""
            out.append(_explained(component, column, str(r.check), str(r.failure_case), row, n, schema, ctx))
        return out
    return []


def _explained(component: str, column: str, check: str, value: str, row: str, n: int,
               schema: pa.DataFrameSchema, ctx: Context) -> Failure:
    failure = Failure(component, column, check, value, row, n)
    name = check.split("(")[0]
    if name == "ontology_term" and column in schema.columns:
        stats = next(c.statistics for c in schema.columns[column].checks if c.name == "ontology_term")
        verdict = ontologies.check_term(value, rules.term_rule(stats))
        return dataclasses.replace(failure, check="ontology_term", reason=verdict.reason, fix=verdict.fix,
                                   suggestions=verdict.suggestions)
    if name == "gencode_feature":
        problem = rules.feature_problem(value, ctx.organism, allow_ercc="allow_ercc=True" in check)
        return dataclasses.replace(failure, check="gencode_feature", reason=problem or "",
                                   fix="use unversioned Ensembl gene ids of the pinned GENCODE release")
    fix = next((v for k, v in BUILTIN_FIXES.items() if name.startswith(k)), "")
    return dataclasses.replace(failure, reason=check, fix=fix)


def _cross(component: str, check: pa.Check, frame: pd.DataFrame, ctx: Context) -> list[Failure]:
    stats = dict(check.statistics)
    if check.name == "labels_match":
        stats["pairs"] = {k: v for k, v in stats["pairs"].items() if k not in ctx.harmonised}
    columns = [c for c in dict.fromkeys(rules.cross_columns(check.name, stats)) if c in frame.columns]
    if not columns:
        return []
    first, n_rows = _groups(_combined([_codes(frame[c]) for c in columns]))
    rows = _plain_strings(frame[columns].iloc[first])
    merged: dict[tuple[str, str, str], Failure] = {}  # one failure per (column, value, reason), rows summed
    for column, i, value, reason, fix in rules.cross_problems(check.name, stats, rows,
                                                              organism=ctx.organism,
                                                              schema_version=ctx.schema_version):
        n, key = int(n_rows[i]), (column, value, reason)
        if key in merged:
            merged[key] = dataclasses.replace(merged[key], n_rows=merged[key].n_rows + n)
        else:
            merged[key] = Failure(component, column, check.name, value, str(frame.index[first[i]]), n,
                                  reason=reason, fix=fix)
    return list(merged.values())


def _codes(column: pd.Series) -> np.ndarray:
    """An integer code per row, equal for equal values (categoricals: their codes, no string comparison)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy()
    return pd.factorize(column, use_na_sentinel=False)[0]


def _distinct_values(column: pd.Series) -> tuple[pd.DataFrame, pd.Series]:
    """One row per distinct value (indexed by the position of its first row) and its row count."""
    first, n_rows = _groups(_codes(column))
    distinct = _plain_strings(column.iloc[first].to_frame(column.name).set_axis(first))
    return distinct, pd.Series(n_rows, index=first)


def _groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The position of the first row of each distinct key, in order of appearance, and each key's row count.

    Keys within a small range (categorical codes, combined codes) are counted in one pass without
    hashing; others are numbered by ``pd.factorize`` first. (``drop_duplicates`` + ``value_counts``
    hashed every column twice: 20 columns of 410k rows, 0.2 s.)
    """
    keys = np.asarray(keys)
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    low, high = int(keys.min()), int(keys.max())
    if high - low < max(len(keys), 1 << 16):
        dense, n_keys = keys.astype(np.int64) - low, high - low + 1
    else:
        dense = pd.factorize(keys)[0].astype(np.int64)
        n_keys = int(dense.max()) + 1
    first = np.empty(n_keys, dtype=np.int64)
    counts = np.zeros(n_keys, dtype=np.int64)
    _first_and_counts(dense, first, counts)
    present = np.flatnonzero(counts)
    order = present[np.argsort(first[present], kind="stable")]
    return first[order], counts[order]


@numba.njit(cache=True, nogil=True)
def _first_and_counts(keys, first, counts):  # noqa: ANN001, ANN202
    for i in range(len(keys)):
        k = keys[i]
        if counts[k] == 0:
            first[k] = i
        counts[k] += 1


def _combined(codes: list[np.ndarray]) -> np.ndarray:
    """One int64 key per row for a combination of code columns (each >= -1), equal for equal combinations."""
    key = np.zeros(len(codes[0]), dtype=np.int64)
    stride = 1
    for c in codes:
        span = int(c.max()) + 2 if len(c) else 1
        if stride * span >= 2**62:  # too many combinations for one integer: number the rows' tuples instead
            return pd.MultiIndex.from_arrays(codes).factorize()[0]
        key += (c.astype(np.int64) + 1) * stride
        stride *= span
    return key


def _plain_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """Categoricals of strings validate as str: pandera checks values, not storage."""
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    if not pd.api.types.is_numeric_dtype(out.index.dtype):
        out.index = out.index.astype(object)
    return out
