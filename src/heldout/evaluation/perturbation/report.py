"""The perturbation part of a leaderboard: every entry's vcc2026 score per test subgroup, and raw metrics."""

from __future__ import annotations

import html

from heldout.evaluation.perturbation.engine import SCORE

RAW = ("discrimination_score_l1", "pearson_delta", "mse", "de_direction_match", "de_spearman_lfc_sig")


def subgroups(record: dict) -> list[str]:
    """The subgroups a result breaks its score down by (``all`` first)."""
    entry = next(iter(record["scores"].values()))
    return ["all", *sorted({m.rsplit("/", 1)[0] for m in entry if m.endswith(f"/{SCORE}")})]


def _value(record: dict, entry: str, metric: str) -> float | None:
    stat = record["scores"].get(entry, {}).get(metric)
    return None if stat is None else stat.get("mean")


def _fmt(value: float | None) -> str:
    return "&ndash;" if value is None else f"{value:.3f}"


def subgroup_table(record: dict) -> str:
    """HTML: entries x (vcc2026 score per subgroup, then raw metrics over all held-out conditions)."""
    groups = subgroups(record)
    head = "".join(f"<th>{html.escape(g)}</th>" for g in groups) + "".join(f"<th>{m}</th>" for m in RAW)
    rows = []
    for entry, role in record["roles"].items():
        scores = [_value(record, entry, SCORE if g == "all" else f"{g}/{SCORE}") for g in groups]
        raw = [_value(record, entry, m) for m in RAW]
        rows.append(f"<tr><td>{html.escape(entry)}</td><td>{role}</td>"
                    + "".join(f"<td>{_fmt(v)}</td>" for v in scores + raw) + "</tr>")
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in record.get("notes", []))
    return (f"<p>{html.escape(record['model'])}: {SCORE} (0 = mean baseline, 1 = technical replicate) per test "
            f"subgroup, and cell-eval metrics over every held-out condition:</p>"
            f"<table><tr><th>entry</th><th>role</th>{head}</tr>{''.join(rows)}</table>"
            + (f"<ul>{notes}</ul>" if notes else ""))


def subgroup_markdown(record: dict) -> list[str]:
    groups = subgroups(record)
    lines = [f"{SCORE} of {record['model']} and the baselines per test subgroup:", "",
             "| entry | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
    for entry in record["roles"]:
        values = [_value(record, entry, SCORE if g == "all" else f"{g}/{SCORE}") for g in groups]
        lines.append(f"| {entry} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in values) + " |")
    return [*lines, ""]
