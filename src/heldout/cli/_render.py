"""Rendering of library results for the terminal (rich). No logic lives here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # importing validation pulls in anndata/pandera: keep `heldout --help` fast
    from heldout.validation import ValidationReport


class FreshConsole:
    """A rich Console built at each use. Console() fixes its width from COLUMNS when it is built, so one
    built at import would keep the width of whatever process imported it first (a wide CI terminal)."""

    def __init__(self, **options: object) -> None:
        self._options = options

    def __getattr__(self, name: str) -> object:
        return getattr(Console(**self._options), name)


console = FreshConsole(highlight=False, soft_wrap=True)
NO_WRAP_MAX = 24  # a column whose values are all at most this long is never wrapped

def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]], *,
          keep: Sequence[str] = (), fold: Sequence[str] = ()) -> None:
    # No vertical rules and no edge padding; short values (names, versions, tiers) never wrap, so
    # at 80 columns only long free text (evidence, reasons) folds, at word boundaries. ``keep``:
    # columns that never wrap whatever their length (names to copy); ``fold``: columns that may.
    cells = [[str(v) for v in row] for row in rows]
    out = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for i, col in enumerate(columns):
        longest = max((len(row[i]) for row in cells), default=len(col))
        short = max(longest, len(col)) <= NO_WRAP_MAX
        out.add_column(col, no_wrap=col in keep or (short and col not in fold), overflow="fold")
    for row in cells:
        out.add_row(*row)
    console.print(out)


def validation_report(report: ValidationReport) -> None:
    where = f"{report.profile} profile" + (f", {report.organism}" if report.organism else "") + \
        (f", CELLxGENE schema {report.schema_version}" if report.schema_version else "") + \
        (", counts from raw.X" if report.counts_from == "raw.X" else "")
    if report.ok:
        console.print(f"[green]valid[/]: {report.target} ({report.n_cells} cells x {report.n_genes} genes; {where})")
        return
    groups = report.groups()
    table(f"{report.summary} in {report.target} ({where})", ["#", "where", "check", "rows", "values (rows)"],
          ((i, f"{component}.{column}", check, sum(f.n_rows for f in items),
            "; ".join(f"{f.failure_case!s:.30} ({f.n_rows})" for f in items[:3]) + (" ..." if len(items) > 3 else ""))
           for i, ((component, column, check), items) in enumerate(groups.items(), 1)))
    for i, ((component, column, _check), items) in enumerate(groups.items(), 1):
        first = items[0]
        lines = [f"[{i}] {component}.{column}: {first.reason or first.check}"]
        if first.index:
            lines.append(f"    e.g. {first.failure_case!r} at row {first.index}")
        if first.fix:
            lines.append(f"    fix: {first.fix}")
        if first.suggestions:
            lines.append(f"    did you mean: {', '.join(first.suggestions)}?")
        console.print("\n".join(lines), markup=False)


def key_values(title: str, pairs: Iterable[tuple[str, object]]) -> None:
    table(title, ["field", "value"], pairs)


def evaluation_result(result) -> None:  # noqa: ANN001 - heldout.evaluation.run.EvalResult
    """The leaderboard of one evaluation (headline metric) and its tier, readable at 80 columns."""
    from heldout.evaluation.report import headline, headline_stats

    record = result.to_dict()
    metric = headline(record)
    rows = []
    def order(item: tuple[str, str]) -> float:
        mean = headline_stats(record, item[0])[0]
        return float("inf") if mean != mean else -mean  # undefined scores last

    for entry, role in sorted(result.roles.items(), key=order):
        mean, std = headline_stats(record, entry)
        scaled = result.scaled[entry].get(metric) if metric in result.scaled[entry] else None
        rows.append((entry, role, f"{mean:.3f} ± {std:.3f}", "-" if scaled is None else f"{scaled:.2f}"))
    datasets = ", ".join(f"{d['name']}@{d['version']}" for d in result.datasets)
    table(f"{result.task} on {datasets} ({len(result.seeds)} seeds)", ["entry", "role", metric, "scaled"], rows)
    mark = " (user-supplied card)" if result.model_card_source == "user" else ""
    console.print(f"tier {result.tier}{mark}: {result.tier_reason}")
    for d in result.datasets:
        if d["retracted"]:
            console.print(f"[red]{d['name']}@{d['version']} is a retracted release[/]: {d['retraction']}")
    for flag in result.flags[:5]:
        console.print(f"[yellow]flag[/]: {flag}")
    for note in getattr(result, "notes", [])[:5]:
        console.print(f"note: {note}")
    _timings(getattr(result, "timings", {}))


def _timings(timings: dict[str, dict[str, float]]) -> None:
    """Where the minutes went: seconds per step over every entry (each entry's steps with --verbose)."""
    import logging

    totals: dict[str, float] = {}
    for entry, steps in timings.items():
        logging.getLogger("heldout").info("%s: %s", entry, ", ".join(f"{k} {v:.1f} s" for k, v in
                                                                     sorted(steps.items(), key=lambda kv: -kv[1])))
        for step, seconds in steps.items():
            totals[step] = totals.get(step, 0.0) + seconds
    if totals:
        top = sorted(totals.items(), key=lambda kv: -kv[1])[:6]
        console.print("time per step, all entries: " + ", ".join(f"{k} {v:.1f} s" for k, v in top))
