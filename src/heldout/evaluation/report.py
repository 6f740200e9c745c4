"""Reports of evaluation results: a self-contained HTML page, a Markdown table, a terminal summary.

Each task gets a leaderboard: every model beside the controls computed on the
same cells, its headline metric as mean +- std over seeds (with error bars in the
plot), the score scaled between the controls, the tier badge (recomputed, never
read from the results file), a mark for results on a retracted release and the
flags where a model falls below a negative control. Plots are embedded as
base64 PNGs, so the page is one file that opens anywhere.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from heldout._files import write_text_atomic
from heldout.errors import EvaluationError

if TYPE_CHECKING:
    from heldout.evaluation.run import Recheck

log = logging.getLogger(__name__)
TIER_COLOURS = {"GREEN": "#2e9d48", "YELLOW": "#d9a800", "RED": "#c8352b", "GRAY": "#8a8a8a", "unverified": "#555"}
HEADLINE = {"annotation": "logreg_macro_f1", "clustering": "ari_kmeans", "integration": "total",
            "perturbation": "vcc2026_score"}
SHORT = {"logreg_macro_f1": "logreg F1", "predicted_macro_f1": "pred. F1", "ari_kmeans": "ARI",
         "total": "scIB total", "cross_species_logreg_macro_f1": "x-sp. F1", "vcc2026_score": "vcc2026"}


def read_records(table: Path) -> list[dict]:
    """Every result of ``results.jsonl`` written by this heldout's ``evaluate`` (older lines are skipped)."""
    if not table.exists():
        msg = f"No results at {table}."
        raise EvaluationError(msg, hint="Run `heldout evaluate` first.")
    records, old = [], 0
    for number, line in enumerate(table.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            msg = f"{table}, line {number}, is not a JSON result: {exc.msg}."
            raise EvaluationError(msg, hint="results.jsonl is written by `heldout evaluate`; do not edit it.") from None
        if record.get("schema_version") != 2:
            old += 1
            continue
        records.append(record)
    if old:
        log.warning("Skipped %d result(s) written by an older heldout; evaluate them again to include them.", old)
    return records


def headline(record: dict) -> str:
    if record["kind"] == "label_transfer":
        return "cross_species_logreg_macro_f1"
    if record["kind"] == "annotation" and record["output"] == "predictions":
        return "predicted_macro_f1"
    return HEADLINE[record["kind"]]


def headline_stats(record: dict, entry: str) -> tuple[float, float]:
    """(mean, std) of the headline metric; label transfer averages the cross-species cells of the matrix."""
    metric = headline(record)
    scores = record["scores"][entry]
    if metric == "cross_species_logreg_macro_f1":
        cross = [m for m in scores if "_to_" in m and m.endswith("/logreg_macro_f1")
                 and m.split("_to_")[0] != m.split("_to_")[1].split("/")[0]]
        values = np.mean([scores[m]["values"] for m in cross], axis=0)
        return float(values.mean()), float(values.std())
    stat = scores.get(metric, {})
    undefined = float("nan")  # a perturbation score none of whose members has a scale on these cells
    return (undefined if stat.get("mean") is None else stat["mean"]), (stat.get("std") or 0.0)


@dataclass
class Board:
    """One task on one set of dataset versions: its models and its controls."""

    task: str
    kind: str
    datasets: str
    metric: str
    models: list[dict] = field(default_factory=list)
    controls: dict = field(default_factory=dict)  # the first record's non-model entries


def boards(records: list[dict]) -> list[Board]:
    latest: dict[tuple, dict] = {}
    for r in records:
        versions = "+".join(f"{d['name']}@{d['version']}" for d in r["datasets"])
        latest[(r["task"], versions, r["model"], r["output"])] = r
    out: dict[tuple, Board] = {}
    for (task, versions, _, _), r in latest.items():
        board = out.setdefault((task, versions, headline(r)),
                               Board(task=task, kind=r["kind"], datasets=versions, metric=headline(r)))
        board.models.append(r)
        if not board.controls:
            board.controls = r
    return list(out.values())


def _rows(board: Board, tiers: dict) -> list[dict]:
    from heldout.evaluation.run import record_key

    rows = []
    for r in board.models:
        recheck = tiers.get(record_key(r))
        tier = recheck.tier if recheck else "unverified"
        mean, std = headline_stats(r, r["model"])
        scaled = _scaled_headline(r, r["model"])
        rows.append({"name": r["model"], "role": "model", "mean": mean, "std": std, "scaled": scaled, "tier": tier,
                     "claimed": r.get("tier"), "user": bool(recheck and recheck.card_source == "user"),
                     "retracted": [d for d in r["datasets"] if d.get("retracted")], "flags": r.get("flags", [])})
    c = board.controls
    for entry, role in c["roles"].items():
        if role == "model":
            continue
        mean, std = headline_stats(c, entry)
        rows.append({"name": entry, "role": role, "mean": mean, "std": std, "scaled": _scaled_headline(c, entry),
                     "tier": None, "claimed": None, "user": False, "retracted": [], "flags": []})
    return sorted(rows, key=lambda row: (row["mean"] != row["mean"], -row["mean"] if row["mean"] == row["mean"] else 0))


def _scaled_headline(record: dict, entry: str) -> float | None:
    metric = headline(record)
    if metric == "cross_species_logreg_macro_f1":
        cross = [v for m, v in record["scaled"][entry].items() if "_to_" in m and m.endswith("/logreg_macro_f1")
                 and m.split("_to_")[0] != m.split("_to_")[1].split("/")[0] and v is not None]
        return float(np.mean(cross)) if cross else None
    return record["scaled"][entry].get(metric)


def tier_label(row: dict) -> str:
    if row["tier"] is None:
        return "control"
    text = row["tier"] + (" (user card)" if row["user"] else "")
    if row["claimed"] and row["claimed"] != row["tier"]:
        text += f" (file claimed {row['claimed']})"
    return text


def summary_rows(records: list[dict], tiers: dict) -> list[tuple[str, ...]]:
    """(task, model, tier, headline metric, mean+-std, scaled) for the terminal; models only."""
    out = []
    for board in boards(records):
        for row in _rows(board, tiers):
            if row["role"] == "model":
                scaled = "-" if row["scaled"] is None else f"{row['scaled']:.2f}"
                mark = " !" if row["flags"] else ""
                out.append((board.task, row["name"], tier_label(row) + (" RETRACTED" if row["retracted"] else ""),
                            SHORT.get(board.metric, board.metric), f"{row['mean']:.3f}±{row['std']:.3f}{mark}",
                            scaled))
    return out


def _bar_chart(board: Board, rows: list[dict]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"model": "#3a6ea5", "negative": "#c7c7c7", "positive": "#7fbf7f", "baseline": "#8c8c8c"}
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(rows) + 1.5), 3.2))
    ax.bar(range(len(rows)), [r["mean"] for r in rows], yerr=[r["std"] for r in rows], capsize=3,
           color=[colours[r["role"]] for r in rows])
    ax.set_xticks(range(len(rows)), [r["name"] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(board.metric, fontsize=8)
    ax.set_title(f"{board.task} ({board.datasets})", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _transfer_matrix(record: dict, entry: str) -> str:
    """An HTML table: train species (rows) x test species (columns), logistic-regression macro-F1."""
    cells = {m.split("/")[0]: v["mean"] for m, v in record["scores"][entry].items() if m.endswith("/logreg_macro_f1")}
    species = list(dict.fromkeys(k.split("_to_")[0] for k in cells))
    head = "".join(f"<th>test {html.escape(s)}</th>" for s in species)
    body = "".join(f"<tr><th>train {html.escape(a)}</th>" + "".join(
        f"<td>{cells.get(f'{a}_to_{b}', float('nan')):.3f}</td>" for b in species) + "</tr>" for a in species)
    return f"<table class='matrix'><tr><th></th>{head}</tr>{body}</table>"


def _transfer_details(record: dict) -> str:
    return (f"<p>Transfer matrix of {html.escape(record['model'])} (logistic regression, macro-F1):</p>"
            + _transfer_matrix(record, record["model"]))


def _perturbation_details(record: dict) -> str:
    from heldout.evaluation.perturbation.report import subgroup_table

    return subgroup_table(record)


def _perturbation_markdown(record: dict) -> list[str]:
    from heldout.evaluation.perturbation.report import subgroup_markdown

    return subgroup_markdown(record)


DETAILS = {"label_transfer": _transfer_details, "perturbation": _perturbation_details}  # per-kind detail under a board
MARKDOWN_DETAILS = {"perturbation": _perturbation_markdown}


def html_report(records: list[dict], tiers: dict, out: Path) -> Path:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>heldout results</title><style>",
             "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;"
             "margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:14px}"
             ".badge{color:#fff;border-radius:4px;padding:1px 6px;font-weight:600}.ctl{color:#666}"
             ".retracted{color:#c8352b;font-weight:600}.flag{color:#a15c00}</style></head><body>",
             "<h1>heldout evaluation results</h1><p>Each model is shown beside controls computed on the same "
             "cells: negative controls (random, shuffled labels, unintegrated) and the positive control (an "
             "embedding of the true labels). Scores are means &plusmn; standard deviation over seeds; "
             "<em>scaled</em> is 0 at the best negative control and 1 at the positive control. Tiers are "
             "recomputed from the registry's model cards, never read from the results file.</p>"]
    for board in boards(records):
        rows = _rows(board, tiers)
        parts.append(f"<h2>{html.escape(board.task)} <small>({html.escape(board.kind)}, "
                     f"{html.escape(board.datasets)})</small></h2>")
        parts.append(f"<img alt='{html.escape(board.metric)} by entry' "
                     f"src='data:image/png;base64,{_bar_chart(board, rows)}'>")
        parts.append(f"<table><tr><th>entry</th><th>role</th><th>{html.escape(board.metric)}</th><th>scaled</th>"
                     "<th>tier</th><th>notes</th></tr>")
        for row in rows:
            tier = "" if row["tier"] is None else (
                f"<span class='badge' style='background:{TIER_COLOURS.get(row['tier'], '#555')}'>"
                f"{html.escape(tier_label(row))}</span>")
            notes = [f"<span class='retracted'>&#9888; retracted release: "
                     f"{html.escape(str(d.get('retraction') or ''))}</span>" for d in row["retracted"]]
            notes += [f"<span class='flag'>&#9873; {html.escape(f)}</span>" for f in row["flags"][:3]]
            scaled = "&ndash;" if row["scaled"] is None else f"{row['scaled']:.2f}"
            cls = "" if row["role"] == "model" else " class='ctl'"
            parts.append(f"<tr{cls}><td>{html.escape(row['name'])}</td><td>{row['role']}</td>"
                         f"<td>{row['mean']:.3f} &plusmn; {row['std']:.3f}</td><td>{scaled}</td><td>{tier}</td>"
                         f"<td>{'<br>'.join(notes)}</td></tr>")
        parts.append("</table>")
        for r in board.models if board.kind in DETAILS else []:
            parts.append(DETAILS[board.kind](r))
    parts.append("</body></html>")
    write_text_atomic(out, "".join(parts))
    return out


def markdown_report(records: list[dict], tiers: dict, out: Path) -> Path:
    lines = ["# heldout evaluation results", ""]
    for board in boards(records):
        lines += [f"## {board.task} ({board.kind}, {board.datasets})", "",
                  f"| entry | role | {board.metric} | scaled | tier | notes |", "|---|---|---|---|---|---|"]
        for row in _rows(board, tiers):
            notes = ["retracted release"] * bool(row["retracted"]) + row["flags"][:2]
            scaled = "-" if row["scaled"] is None else f"{row['scaled']:.2f}"
            lines.append(f"| {row['name']} | {row['role']} | {row['mean']:.3f} ± {row['std']:.3f} | {scaled} | "
                         f"{tier_label(row) if row['tier'] else ''} | {'; '.join(notes).replace('|', '/')} |")
        lines.append("")
        for r in board.models if board.kind in MARKDOWN_DETAILS else []:
            lines += MARKDOWN_DETAILS[board.kind](r)
    write_text_atomic(out, "\n".join(lines))
    return out
