"""CLI: audit (leakage tiers)."""

from __future__ import annotations

from pathlib import Path

import click

from heldout.cli import _render
from heldout.cli._render import console
from heldout.cli.commands_data import MIRROR_OPTION

TIER_STYLE = {"GREEN": "green", "YELLOW": "yellow", "RED": "red", "GRAY": "bright_black"}


@click.command()
@click.option("--model", "models", multiple=True, help="Model card name (repeatable; default: every model card).")
@click.option("--manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Audit your own corpus: a model-card YAML describing it (see registry/models/).")
@click.option("--dataset", "datasets", multiple=True, help="Only these datasets (repeatable).")
@click.option("--release", default=None, help="Audit a release's datasets (e.g. v1, stable) instead of curated ones.")
@click.option("--registry", default=None, help="Registry repo (path or git URL) for --release.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write every result with its evidence as JSON.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a Markdown report with a tier heatmap (PNG beside it).")
@MIRROR_OPTION
def audit(models: tuple[str, ...], manifest: Path | None, datasets: tuple[str, ...], release: str | None,
          registry: str | None, json_path: Path | None, report_path: Path | None, mirror_root: Path | None) -> None:
    """Leakage tier of every (model, dataset) pairing, with evidence.

    \b
    GREEN   documented precisely and no overlap with the eval data
    YELLOW  eval data seen in pretraining, not in task training
    RED     eval data seen in task training (evaluate refuses these)
    GRAY    documentation too thin (or unreachable) to decide
    Overlap is checked on dataset ids, donors and cell content (count fingerprints).
    """
    from heldout.leakage.audit import audit_project, markdown_report, write_json

    results = audit_project(model_names=list(models) or None, manifest=manifest, release=release,
                            registry=registry, datasets=list(datasets) or None, mirror_root=mirror_root)
    _render.table("leakage audit", ["model", "dataset", "tier", "evidence"], (
        (r.model, f"{r.dataset}@{r.version}" if r.version else r.dataset,
         f"[{TIER_STYLE[r.tier.value]}]{r.tier.value}[/]", r.reason) for r in results))
    if json_path:
        write_json(results, json_path)
        console.print(f"wrote {json_path}")
    if report_path:
        markdown_report(results, report_path)
        console.print(f"wrote {report_path} and {report_path.with_suffix('.png')}")


COMMANDS = [audit]
