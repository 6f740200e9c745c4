"""Comparison table and plots of evaluation results (model vs random vs simple)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from heldout._files import atomic_path, write_text_atomic
from heldout.errors import EvaluationError

if TYPE_CHECKING:
    from heldout.evaluation.run import Recheck

BASELINES = ("simple", "random")


def read_records(table: Path) -> list[dict]:
    """Every result line of ``results.jsonl``, as written by ``heldout evaluate``."""
    if not table.exists():
        msg = f"No results at {table}."
        raise EvaluationError(msg, hint="Run `heldout evaluate` first.")
    records = []
    for number, line in enumerate(table.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            msg = f"{table}, line {number}, is not a JSON result: {exc.msg}."
            raise EvaluationError(msg, hint="results.jsonl is written by `heldout evaluate`; do not edit it.") from None
    return records


def load_results(table: Path, tiers: dict[tuple[str, str, str, str], Recheck] | None = None) -> pd.DataFrame:
    """Latest result per (dataset, version, task, model), one row per metric.

    ``tiers`` maps (model, dataset, version) to the tier recomputed by
    :func:`heldout.evaluation.run.recheck_tiers`; the tier written in the file
    is shown only as what the file claimed, never as the tier.
    """
    rows = []
    for r in read_records(table):
        claimed = r.get("tier", "?")
        recheck = (tiers or {}).get((r["model"], r["dataset"], r["dataset_version"], r["task"]))
        tier = recheck.tier if recheck else "unverified"
        label = tier + (" (user card)" if recheck and recheck.card_source == "user" else "")
        if tier != claimed:
            label += f" (file claimed {claimed})"
        for metric, value in r["scores"]["model"].items():
            rows.append({"dataset": f"{r['dataset']}@{r['dataset_version']}", "task": r["task"], "model": r["model"],
                         "tier": label, "metric": metric,
                         "model_score": value, **{b: r["scores"][b][metric] for b in BASELINES}})
    frame = pd.DataFrame(rows)
    return frame.drop_duplicates(["dataset", "task", "model", "metric"], keep="last").reset_index(drop=True)


def plot(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(frame.groupby(["dataset", "task", "metric"], sort=True))
    fig, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups) + 1, 3.4), squeeze=False)
    for ax, ((dataset, task, metric), sub) in zip(axes[0], groups, strict=True):
        names = [*sub["model"], *BASELINES]
        values = [*sub["model_score"], sub["simple"].iloc[0], sub["random"].iloc[0]]
        colours = ["#3a6ea5"] * len(sub) + ["#7f7f7f", "#c7c7c7"]
        ax.bar(range(len(names)), values, color=colours)
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=7)
        ax.set_title(f"{task}\n{metric}", fontsize=8)
        ax.set_ylim(min(0.0, min(values)), max(1.0, max(values)))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def html_report(frame: pd.DataFrame, out: Path) -> Path:
    png = out.with_suffix(".png")
    plot(frame, png)
    table = frame.to_html(index=False, float_format=lambda v: f"{v:.4f}", escape=True)
    body = (f"<html><head><meta charset='utf-8'><title>heldout results</title></head><body>"
            f"<h1>heldout evaluation results</h1><p>Every model is shown beside the simple (HVG + PCA) and "
            f"random baselines on the same cells and splits. GRAY results are flagged: the model's training "
            f"data is too thinly documented to rule out leakage.</p><img src='{html.escape(png.name)}'>"
            f"{table}</body></html>")
    write_text_atomic(out, body)
    return out
