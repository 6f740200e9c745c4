"""Rendering of library results for the terminal (rich). No logic lives here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # importing validation pulls in anndata/pandera: keep `heldout --help` fast
    from heldout.validation import ValidationReport

console = Console(highlight=False, soft_wrap=True)

def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    out = Table(title=title, title_justify="left")
    for col in columns:
        out.add_column(col, overflow="fold")
    for row in rows:
        out.add_row(*(str(v) for v in row))
    console.print(out)


def validation_report(report: ValidationReport) -> None:
    if report.ok:
        console.print(f"[green]valid[/]: {report.target} ({report.n_cells} cells x {report.n_genes} genes)")
        return
    groups: dict[tuple[str, str, str], list] = {}
    for f in report.failures:
        groups.setdefault((f.component, f.column, f.check), []).append(f)
    table(f"{report.summary} in {report.target}",
          ["component", "column", "check", "rows", "examples (value @ first row, rows)"],
          ((*key, sum(f.n_rows for f in items),
            "; ".join(f"{f.failure_case!s:.40} @ {f.index} ({f.n_rows})" for f in items[:3]))
           for key, items in groups.items()))


def key_values(title: str, pairs: Iterable[tuple[str, object]]) -> None:
    table(title, ["field", "value"], pairs)
