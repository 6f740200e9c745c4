"""Validate a curated dataset (obs, var, X) with the pandera schemas in ``schemas/``.

Validation is lazy: every failure is collected into one :class:`ValidationReport`
rather than stopping at the first. X is never loaded whole: it is summarised
per cell (minimum, non-integer and non-finite counts) in row blocks, and that
summary is what ``schemas/x_cells.yaml`` checks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
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
    index: str


@dataclass(frozen=True)
class ValidationReport:
    target: str
    n_cells: int
    n_genes: int
    failures: tuple[Failure, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.failures

    def raise_for_failures(self) -> None:
        if self.failures:
            checks = sorted({f"{f.component}.{f.column}: {f.check}" for f in self.failures})
            msg = f"{self.target} failed validation with {len(self.failures)} failure(s): " + "; ".join(checks[:8])
            raise ValidationFailed(msg, report=self, hint="Run `heldout validate PATH` for the full report.")


@lru_cache(maxsize=8)
def load_schema(name: str, schemas_dir: str | None = None) -> pa.DataFrameSchema:
    folder = Path(schemas_dir) if schemas_dir else find_project().schemas
    return pa.DataFrameSchema.from_yaml(folder / f"{name}.yaml")


def x_cell_summary(block: sp.csr_matrix, index: Iterable[str]) -> pd.DataFrame:
    """Per-cell min, non-integer count and non-finite count of one CSR row block."""
    block = sp.csr_matrix(block)
    n = block.shape[0]
    rows = np.repeat(np.arange(n), np.diff(block.indptr))
    data = block.data.astype(np.float64)
    finite = np.isfinite(data)
    non_integer = finite & (data != np.round(data))
    stored_min = np.full(n, np.inf)
    np.minimum.at(stored_min, rows[finite], data[finite])
    dense_rows = np.diff(block.indptr) == block.shape[1]  # no implicit zeros in that row
    min_value = np.where(dense_rows, stored_min, np.minimum(stored_min, 0.0))
    return pd.DataFrame({
        "min_value": np.where(np.isinf(min_value), 0.0, min_value),
        "n_non_integer": np.bincount(rows[non_integer], minlength=n).astype(np.int64),
        "n_non_finite": np.bincount(rows[~finite], minlength=n).astype(np.int64),
    }, index=pd.Index(list(index), dtype=str))


def _failures(component: str, schema: pa.DataFrameSchema, frame: pd.DataFrame) -> list[Failure]:
    try:
        schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        return [Failure(component=component, column=str(r.column), check=str(r.check),
                        failure_case=str(r.failure_case), index=str(r.index))
                for r in cases.itertuples(index=False)]
    except pandera.errors.SchemaError as exc:
        return [Failure(component, str(getattr(exc, "column_name", "")), str(exc.check), str(exc), "")]
    return []


def validate_tables(target: str, obs: pd.DataFrame, var: pd.DataFrame, x_summary: pd.DataFrame,
                    x_shape: tuple[int, int], *, schemas_dir: str | None = None) -> ValidationReport:
    """Validate in-memory obs, var and the X summary; return every failure found."""
    failures = _failures("obs", load_schema("obs", schemas_dir), _plain_strings(obs))
    failures += _failures("var", load_schema("var", schemas_dir), _plain_strings(var))
    failures += _failures("X", load_schema("x_cells", schemas_dir), x_summary)
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
            stop = min(start + ROW_BLOCK, adata.n_obs)
            block = adata.X[start:stop]
            parts.append(x_cell_summary(block if sp.issparse(block) else sp.csr_matrix(block),
                                        adata.obs_names[start:stop]))
        summary = pd.concat(parts) if parts else x_cell_summary(sp.csr_matrix((0, adata.n_vars)), [])
        summary.index = summary.index.astype(str)
        if not summary.index.is_unique:  # the obs check reports duplicates; keep X's check about X
            summary = summary.reset_index(drop=True).set_axis(summary.index.astype(str) + "#" +
                                                              pd.RangeIndex(len(summary)).astype(str))
        return validate_tables(str(path), adata.obs, adata.var, summary, tuple(adata.X.shape),
                               schemas_dir=schemas_dir)
    finally:
        adata.file.close()
