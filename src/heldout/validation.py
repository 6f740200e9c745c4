"""Validate a curated dataset (obs, var, X) with the pandera schemas in ``schemas/``.

Validation is lazy: every failure is collected into one :class:`ValidationReport`
rather than stopping at the first. X is never loaded whole: it is summarised
per cell (minimum, non-integer and non-finite counts) in row blocks, and that
summary is what ``schemas/x_cells.yaml`` checks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pandera.errors
import pandera.pandas as pa
import scipy.sparse as sp

from heldout.errors import ValidationFailed
from heldout.project import find_project

ROW_BLOCK = 50_000


@dataclass(frozen=True)
class Failure:
    component: str  # obs | var | X | shape
    column: str
    check: str
    failure_case: str
    index: str  # the (first) failing row
    n_rows: int = 1  # rows with this same failing value


@dataclass(frozen=True)
class ValidationReport:
    target: str
    n_cells: int
    n_genes: int
    failures: tuple[Failure, ...] = field(default_factory=tuple)

    @property
    def summary(self) -> str:
        rows = sum(f.n_rows for f in self.failures)
        return f"{len(self.failures)} distinct validation failure(s) affecting {rows} row(s)"

    @property
    def ok(self) -> bool:
        return not self.failures

    def raise_for_failures(self) -> None:
        if self.failures:
            checks = sorted({f"{f.component}.{f.column}: {f.check}" for f in self.failures})
            msg = (f"{self.target} failed validation: {self.summary}: " + "; ".join(checks[:8]))
            raise ValidationFailed(msg, report=self, hint="Run `heldout validate PATH` for the full report.")


@lru_cache(maxsize=8)
def load_schema(name: str, schemas_dir: str | None = None) -> pa.DataFrameSchema:
    folder = Path(schemas_dir) if schemas_dir else find_project().schemas
    return pa.DataFrameSchema.from_yaml(folder / f"{name}.yaml")


def x_cell_summary(block: sp.csr_matrix, first_row: int = 0) -> pd.DataFrame:
    """Per-cell min, non-integer count and non-finite count of one CSR row block (no per-row loop).

    Indexed by row position (``first_row`` onwards); failures are named by cell when reported.
    """
    block = sp.csr_matrix(block)
    indptr, data = block.indptr, block.data
    finite = np.isfinite(data)
    non_integer = finite & (data != np.rint(data))
    n_stored = np.diff(indptr)
    stored_min = np.full(block.shape[0], np.inf)
    rows = np.flatnonzero(n_stored)
    if len(rows):
        stored_min[rows] = np.minimum.reduceat(np.where(finite, data, np.inf), indptr[rows]).astype(np.float64)
    min_value = np.where(n_stored == block.shape[1], stored_min, np.minimum(stored_min, 0.0))

    def per_row(mask: np.ndarray) -> np.ndarray:
        prefix = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
        return prefix[indptr[1:]] - prefix[indptr[:-1]]

    return pd.DataFrame({
        "min_value": np.where(np.isinf(min_value), 0.0, min_value),
        "n_non_integer": per_row(non_integer),
        "n_non_finite": per_row(~finite),
    }, index=pd.RangeIndex(first_row, first_row + block.shape[0]))


def _failures(component: str, schema: pa.DataFrameSchema, frame: pd.DataFrame,
              counts: pd.Series | None = None) -> list[Failure]:
    try:
        schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        return [Failure(component=component, column=str(r.column), check=str(r.check),
                        failure_case=str(r.failure_case), index=str(r.index),
                        n_rows=int(counts.get(r.index, 1)) if counts is not None and r.index in counts.index else 1)
                for r in cases.itertuples(index=False)]
    except pandera.errors.SchemaError as exc:
        return [Failure(component, str(getattr(exc, "column_name", "")), str(exc.check), str(exc), "")]
    return []


def _validate_frame(component: str, schema: pa.DataFrameSchema, frame: pd.DataFrame) -> list[Failure]:
    """Validate ``frame``; each value check runs once per distinct value of its column.

    Categorical columns repeat a few values millions of times: checking each
    distinct value once (and counting its rows) gives the same verdict at a
    fraction of the cost. Unique-flagged columns, missing columns and the
    index are checked on every row.
    """
    per_row = [c for c, col in schema.columns.items() if col.unique or c not in frame.columns]
    full = pa.DataFrameSchema({c: schema.columns[c] for c in per_row}, index=schema.index, strict=False)
    failures = _failures(component, full, _plain_strings(frame[[c for c in per_row if c in frame.columns]]))
    for column in (c for c in schema.columns if c not in per_row):
        distinct, n_rows = _distinct_values(frame[column])
        checks = pa.DataFrameSchema({column: schema.columns[column]}, strict=False)
        for f in _failures(component, checks, distinct, n_rows):
            label = str(frame.index[int(f.index)]) if f.index.isdigit() else f.index
            failures.append(dataclasses.replace(f, index=label))
    return failures


def _distinct_values(column: pd.Series) -> tuple[pd.DataFrame, pd.Series]:
    """One row per distinct value (indexed by the position of its first row) and its row count."""
    if isinstance(column.dtype, pd.CategoricalDtype):  # codes: no string comparisons at all
        codes = pd.Series(column.cat.codes.to_numpy())
    else:
        codes = pd.Series(pd.factorize(column, use_na_sentinel=False)[0])
    first = codes.drop_duplicates()
    n_rows = codes.value_counts().reindex(first.to_numpy()).set_axis(first.index)
    values = column.iloc[first.index.to_numpy()]
    distinct = _plain_strings(values.to_frame(column.name).set_axis(first.index))
    return distinct, n_rows


def validate_tables(target: str, obs: pd.DataFrame, var: pd.DataFrame, x_summary: pd.DataFrame,
                    x_shape: tuple[int, int], *, schemas_dir: str | None = None) -> ValidationReport:
    """Validate in-memory obs, var and the X summary; return every failure found."""
    failures = _validate_frame("obs", load_schema("obs", schemas_dir), obs)
    failures += _validate_frame("var", load_schema("var", schemas_dir), var)
    failures += [dataclasses.replace(f, index=str(obs.index[int(f.index)]) if f.index.isdigit() else f.index)
                 for f in _failures("X", load_schema("x_cells", schemas_dir), x_summary)]
    if x_shape != (len(obs), len(var)):
        failures.append(Failure("shape", "X", "X.shape == (n_obs, n_var)",
                                f"X is {x_shape}, obs x var is {(len(obs), len(var))}", ""))
    return ValidationReport(target=target, n_cells=len(obs), n_genes=len(var), failures=tuple(failures))


def _plain_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """Categoricals of strings validate as str: pandera checks values, not storage."""
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    out.index = out.index.astype(object)
    return out


def write_report(report: ValidationReport, validated: Path, out: Path) -> None:
    """Write ``report`` as JSON with the validated file's sha256 (a release checks both)."""
    from heldout._files import sha256_file, write_json_atomic

    write_json_atomic(out, {**dataclasses.asdict(report), "ok": report.ok, "sha256": sha256_file(validated)})


def validate_h5ad(path: str | Path, *, schemas_dir: str | None = None) -> ValidationReport:
    """Validate a curated h5ad file, streaming X in row blocks (file opened backed)."""
    path = Path(path)
    if not path.exists():
        msg = f"No such file: {path}."
        raise ValidationFailed(msg)
    try:
        adata = ad.read_h5ad(path, backed="r")
    except Exception as exc:  # h5py/anndata raise many types for a damaged file
        msg = f"{path} is not a readable h5ad: {type(exc).__name__}: {exc}"
        raise ValidationFailed(msg) from None
    try:
        parts = []
        for start in range(0, adata.n_obs, ROW_BLOCK):
            block = adata.X[start:min(start + ROW_BLOCK, adata.n_obs)]
            parts.append(x_cell_summary(block if sp.issparse(block) else sp.csr_matrix(block), start))
        summary = pd.concat(parts) if parts else x_cell_summary(sp.csr_matrix((0, adata.n_vars)))
        return validate_tables(str(path), adata.obs, adata.var, summary, tuple(adata.X.shape),
                               schemas_dir=schemas_dir)
    finally:
        adata.file.close()
