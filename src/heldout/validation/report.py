"""What validation found: failures grouped by check, column and value, with counts, examples and the fix."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from heldout.errors import ValidationFailed


@dataclass(frozen=True)
class Failure:
    component: str  # obs | var | X | shape | file
    column: str
    check: str
    failure_case: str  # the failing value
    index: str  # the first failing row
    n_rows: int = 1  # rows with this same failing value
    reason: str = ""
    fix: str = ""
    suggestions: tuple[str, ...] = ()  # "did you mean" near-miss terms


@dataclass(frozen=True)
class ValidationReport:
    target: str
    n_cells: int
    n_genes: int
    failures: tuple[Failure, ...] = field(default_factory=tuple)
    profile: str = "curated"
    organism: str | None = None
    schema_version: str | None = None  # the file's CELLxGENE schema version (cellxgene profile)
    ontology_version: str = "latest"  # the cellxgene-ontology-guide set the terms were checked against
    counts_from: str = "X"  # where raw counts were read: X or raw.X

    @property
    def summary(self) -> str:
        rows = sum(f.n_rows for f in self.failures)
        checks = len({(f.component, f.column, f.check) for f in self.failures})
        return (f"{len(self.failures)} distinct failing value(s) in {checks} check(s), "
                f"affecting {rows} row(s)")

    @property
    def ok(self) -> bool:
        return not self.failures

    def groups(self) -> dict[tuple[str, str, str], list[Failure]]:
        """Failures by (component, column, check), most rows first within each."""
        out: dict[tuple[str, str, str], list[Failure]] = {}
        for f in self.failures:
            out.setdefault((f.component, f.column, f.check), []).append(f)
        return {k: sorted(v, key=lambda f: -f.n_rows) for k, v in out.items()}

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "ok": self.ok, "summary": self.summary}

    def raise_for_failures(self) -> None:
        if self.failures:
            checks = sorted({f"{f.component}.{f.column}: {f.reason or f.check}" for f in self.failures})
            msg = f"{self.target} failed validation: {self.summary}: " + "; ".join(checks[:8])
            raise ValidationFailed(msg, report=self, hint="Run `heldout validate PATH` for the full report.")
