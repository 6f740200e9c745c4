"""Rendering of library results for the terminal (rich). No logic lives here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table

from heldout.validation import ValidationReport

console = Console(highlight=False, soft_wrap=True)

MAX_ROWS = 50


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    out = Table(title=title, title_justify="left")
    for col in columns:
        out.add_column(col)
    for row in rows:
        out.add_row(*(str(v) for v in row))
    console.print(out)


def validation_report(report: ValidationReport) -> None:
    if report.ok:
        console.print(f"[green]valid[/]: {report.target} ({report.n_cells} cells x {report.n_genes} genes)")
        return
    failures = report.failures
    table(f"{len(failures)} validation failure(s) in {report.target}",
          ["component", "column", "check", "failure case", "index"],
          ((f.component, f.column, f.check, f.failure_case, f.index) for f in failures[:MAX_ROWS]))
    if len(failures) > MAX_ROWS:
        console.print(f"... and {len(failures) - MAX_ROWS} more (use --json for all).")


def key_values(title: str, pairs: Iterable[tuple[str, object]]) -> None:
    table(title, ["field", "value"], pairs)
