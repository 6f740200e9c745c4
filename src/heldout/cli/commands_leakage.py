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
@click.option("--rescan", is_flag=True,
              help="Scan Census corpora now instead of joining their recorded manifests (slow at Census scale).")
@MIRROR_OPTION
def audit(models: tuple[str, ...], manifest: Path | None, datasets: tuple[str, ...], release: str | None,
          registry: str | None, json_path: Path | None, report_path: Path | None, rescan: bool,
          mirror_root: Path | None) -> None:
    """Leakage tier of every (model, dataset) pairing, with evidence.

    \b
    GREEN   documented precisely and no overlap with the eval data
    YELLOW  eval data seen in pretraining, not in task training
    RED     eval data seen in task training (evaluate refuses these)
    GRAY    documentation too thin (or unreachable) to decide
    Overlap is checked on dataset ids, donors and cell content (exact fingerprints and near-duplicate
    sketches). Recorded corpora (`heldout corpus record`) are joined, never rescanned unless --rescan.
    """
    from heldout.leakage.audit import audit_project, markdown_report, write_json

    results = audit_project(model_names=list(models) or None, manifest=manifest, release=release,
                            registry=registry, datasets=list(datasets) or None, mirror_root=mirror_root,
                            rescan=rescan)
    _render.table("leakage audit", ["model", "dataset", "tier", "evidence"], (
        (r.model + (" (user card)" if r.user_supplied else ""), f"{r.dataset}@{r.version}" if r.version else r.dataset,
         f"[{TIER_STYLE[r.tier.value]}]{r.tier.value}[/]", r.reason) for r in results))
    if json_path:
        write_json(results, json_path)
        console.print(f"wrote {json_path}")
    if report_path:
        markdown_report(results, report_path)
        console.print(f"wrote {report_path} and {report_path.with_suffix('.png')}")


COMMANDS = [audit]


@click.command()
@click.option("--dataset", required=True, help="NAME@VERSION of a release (or NAME@curated for this project).")
@click.option("--task", required=True, help="Task card name (registry/tasks/).")
@click.option("--model", required=True, help="Model name; its card in registry/models/ decides the leakage tier.")
@click.option("--embeddings", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Per-cell embeddings: .npy (+ --ids), .parquet (observation_joinid column) or .h5ad (+ --obsm-key).")
@click.option("--ids", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="For .npy: one cell id per line, in row order (default: FILE.ids.txt).")
@click.option("--obsm-key", default=None, help="For .h5ad: the obsm key holding the embedding.")
@click.option("--model-card", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A model card file for a model not in the registry.")
@click.option("--registry", default=None, help="Registry repo (path or git URL) holding the release.")
@click.option("--results", "results_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Results folder (default: ./results).")
@click.option("--rescan", is_flag=True, help="Scan Census corpora that are not recorded (see `heldout audit`).")
@MIRROR_OPTION
def evaluate(dataset: str, task: str, model: str, embeddings: Path, ids: Path | None, obsm_key: str | None,
             model_card: Path | None, registry: str | None, results_dir: Path | None, rescan: bool,
             mirror_root: Path | None) -> None:
    """Score a model's embeddings on a released dataset, beside random and simple baselines.

    RED pairings (the model was task-trained on the data) are refused; GRAY
    results are flagged. The result (JSON) records dataset version, task,
    model, tier and evidence, and is appended to results/results.jsonl.
    """
    from heldout.evaluation.run import evaluate as run

    result = run(dataset=dataset, task=task, model=model, embeddings=embeddings, ids=ids, obsm_key=obsm_key,
                 model_card=model_card, registry=registry, mirror_root=mirror_root, results_dir=results_dir,
                 rescan=rescan)
    tier = f"[{TIER_STYLE[result.tier]}]{result.tier}[/]" + (" (flagged)" if result.gray_flag else "")
    tier += " (user-supplied card)" if result.model_card_source == "user" else ""
    _render.table(f"{result.task} on {result.dataset}@{result.dataset_version}: {result.model} ({tier})",
                  ["metric", result.model, "simple baseline", "random baseline"],
                  ((m, f"{v:.4f}", f"{result.scores['simple'][m]:.4f}", f"{result.scores['random'][m]:.4f}")
                   for m, v in result.scores["model"].items()))
    console.print(f"tier {result.tier}: {result.tier_reason}")


@click.command()
@click.option("--results", "results_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Results folder holding results.jsonl.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write an HTML report (with a PNG of the bars beside it).")
@click.option("--registry", default=None, help="Registry repo (path or git URL) holding the releases evaluated.")
@MIRROR_OPTION
def report(results_dir: Path, out: Path | None, registry: str | None, mirror_root: Path | None) -> None:
    """Comparison table (and plots) of every evaluation result vs the baselines.

    Tiers are recomputed from the registry's model cards and the eval data, never
    read from the results file: a result whose file claims another tier shows both.
    """
    from heldout.evaluation.report import html_report, load_results, read_records
    from heldout.evaluation.run import RESULTS_TABLE, recheck_tiers

    table = results_dir / RESULTS_TABLE
    tiers = recheck_tiers(read_records(table), registry=registry, mirror_root=mirror_root)
    frame = load_results(table, tiers)
    _render.table("evaluation results", ["dataset", "task", "model", "tier", "metric", "model", "simple", "random"],
                  ((r.dataset, r.task, r.model, r.tier, r.metric, f"{r.model_score:.4f}", f"{r.simple:.4f}",
                    f"{r.random:.4f}") for r in frame.itertuples()))
    if out:
        html_report(frame, out)
        console.print(f"wrote {out} and {out.with_suffix('.png')}")


COMMANDS += [evaluate, report]
