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
              help="Write a Markdown report: the model x dataset grid linking to each pairing's evidence, a legend "
                   "of the evidence kinds, and the same as HTML and a heatmap PNG beside it.")
@click.option("--rescan", is_flag=True,
              help="Scan Census corpora now instead of joining their recorded manifests (slow at Census scale).")
@click.option("--wide", is_flag=True, help="Print each pairing's evidence inside the table (default: numbered below it).")
@MIRROR_OPTION
def audit(models: tuple[str, ...], manifest: Path | None, datasets: tuple[str, ...], release: str | None,
          registry: str | None, json_path: Path | None, report_path: Path | None, rescan: bool, wide: bool,
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
    notes: dict[str, int] = {}  # evidence text -> its number: pairings with the same evidence share one note
    rows = []
    for r in results:
        evidence = r.reason if wide else f"[{notes.setdefault(r.reason, len(notes) + 1)}]"
        rows.append((r.model + (" (user card)" if r.user_supplied else ""),
                     f"{r.dataset}@{r.version}" if r.version else r.dataset,
                     f"[{TIER_STYLE[r.tier.value]}]{r.tier.value}[/]", evidence))
    _render.table("leakage audit", ["model", "dataset", "tier", "evidence"], rows)
    for reason, number in notes.items():
        console.print(f"[{number}] {reason}", markup=False)
    if json_path:
        write_json(results, json_path)
        console.print(f"wrote {json_path}")
    if report_path:
        markdown_report(results, report_path)
        console.print(f"wrote {report_path}, {report_path.with_suffix('.html')} and {report_path.with_suffix('.png')}")


COMMANDS = [audit]


@click.command()
@click.option("--task", required=True, help="Task card name (registry/tasks/).")
@click.option("--release", default=None, help="Evaluate on this release of every dataset the task names (e.g. v2).")
@click.option("--dataset", "datasets", multiple=True,
              help="NAME@VERSION of a dataset the task names (repeatable; NAME@curated for this project's data).")
@click.option("--model", required=True, help="Model name; the registry's card of that name decides the leakage tier.")
@click.option("--embeddings", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Per-cell embeddings: .npy (+ --ids), .parquet (observation_joinid column) or .h5ad (+ --obsm-key).")
@click.option("--predictions", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Annotation tasks: per-cell predicted labels (.parquet/.csv with observation_joinid, prediction). "
                   "Perturbation tasks: predicted cells (.h5ad in cell-eval's shape: obs 'perturbation', the "
                   "dataset's genes in order; obs 'cell_line' when the task predicts several lines).")
@click.option("--values", type=click.Choice(["counts", "log1p"]), default=None,
              help="Perturbation tasks: what the predicted X holds, raw counts or log1p of counts per 10,000.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Perturbation tasks: parallel scoring jobs (default: one per CPU).")
@click.option("--scheduler", default=None,
              help="Embedding tasks: score each entry as a Dask task on synchronous, threads, processes, or a "
                   "dask.distributed scheduler address (tcp://HOST:8786). Default: in this process.")
@click.option("--ids", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="For .npy: one cell id per line, in row order (default: FILE.ids.txt).")
@click.option("--obsm-key", default=None, help="For .h5ad: the obsm key holding the embedding.")
@click.option("--model-card", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A card file for a model the registry does not know (audited under its own name).")
@click.option("--registry", default=None, help="Registry repo (path or git URL) holding the release.")
@click.option("--results", "results_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Results folder (default: ./results).")
@click.option("--rescan", is_flag=True, help="Scan Census corpora that are not recorded (see `heldout audit`).")
@MIRROR_OPTION
def evaluate(task: str, release: str | None, datasets: tuple[str, ...], model: str, embeddings: Path | None,
             predictions: Path | None, values: str | None, workers: int | None, scheduler: str | None,
             ids: Path | None,
             obsm_key: str | None, model_card: Path | None, registry: str | None, results_dir: Path | None,
             rescan: bool, mirror_root: Path | None) -> None:
    """Score a model on a task beside controls computed on the same cells, over every seed of the task.

    \b
    heldout evaluate --task baron-annotation --release v2 --registry REG \\
        --model my-model --embeddings emb.parquet
    heldout evaluate --task norman-perturbation --release v2 --registry REG \\
        --model my-model --predictions pred.h5ad --values log1p
    Perturbation tasks score predicted cells with cell-eval2 beside the control,
    mean, additive and linear baselines and the technical-replicate ceiling.
    RED pairings (the model was task-trained on the cells the task scores) are
    refused; GRAY results are flagged. The result records dataset versions,
    split and task-card sha256s, the tier with evidence, raw and scaled scores.
    """
    from heldout.errors import UsageError
    from heldout.evaluation.kinds import dataset_refs, evaluate as run
    from heldout.project import find_project

    if bool(release) == bool(datasets):
        raise UsageError("Give --release VERSION, or --dataset NAME@VERSION for each dataset of the task.")
    project = find_project(fallback=True)
    refs = list(datasets) or dataset_refs(task, release, project.registry)  # type: ignore[arg-type]
    result = run(task=task, project=project, datasets=refs, model=model, embeddings=embeddings,
                 predictions=predictions, values=values, workers=workers, scheduler=scheduler, ids=ids,
                 obsm_key=obsm_key,
                 model_card=model_card, registry=registry, mirror_root=mirror_root, results_dir=results_dir,
                 rescan=rescan, progress=True)
    _render.evaluation_result(result)


@click.command()
@click.option("--results", "results_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Results folder holding results.jsonl.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a self-contained HTML report here (and a Markdown table beside it, .md).")
@click.option("--registry", default=None, help="Registry repo (path or git URL) holding the releases evaluated.")
@MIRROR_OPTION
def report(results_dir: Path, out: Path | None, registry: str | None, mirror_root: Path | None) -> None:
    """Leaderboards of every evaluation result: each model beside its controls, with its tier.

    Tiers are recomputed from the registry's model cards and the eval data, never
    read from the results file: a result whose file claims another tier shows both.
    """
    from heldout.evaluation.report import html_report, markdown_report, read_records, summary_rows
    from heldout.evaluation.run import RESULTS_TABLE, recheck_tiers

    records = read_records(results_dir / RESULTS_TABLE)
    tiers = recheck_tiers(records, registry=registry, mirror_root=mirror_root)
    _render.table("evaluation results (headline metric, mean±std over seeds)",
                  ["task", "model", "tier", "metric", "score", "scaled"], summary_rows(records, tiers))
    if out:
        html_report(records, tiers, out)
        markdown_report(records, tiers, out.with_suffix(".md"))
        for path in (out, out.with_suffix(".md")):
            console.print(f"wrote {path}", soft_wrap=True)


COMMANDS += [evaluate, report]


@click.command("lookup")
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts and evidence as JSON.")
def lookup_cmd(key: str, as_json: bool) -> None:
    """Has any registry model seen the dataset KEY? (GSE/GSM, E-MTAB, PMID, DOI or CELLxGENE id)

    \b
    Every registry model's corpora are checked by what they document: recorded
    accession lists (samples and cells named), Census release tables, ids on the
    card. Each says seen, not seen or inconclusive, with the reason and the
    list file and rows that decided it. No cell is read.
    \b
      heldout lookup GSE133344
      heldout lookup 10.1126/science.aax4438 --json
    """
    from heldout.lookup import lookup, to_json

    parsed, results = lookup(key)
    if as_json:
        console.print_json(data=to_json(parsed, results))
        return
    colours = {"seen": "red", "not seen": "green", "inconclusive": "yellow"}
    _render.table(f"{parsed} ({parsed.kind.value}) in the corpora of {len(results)} registry models",
                  ["model", "corpus", "verdict", "why"],
                  ([m.model, c.corpus, f"[{colours[c.verdict]}]{c.verdict}[/]", c.reason + (f" [{c.evidence}]"
                    if c.evidence else "")] for m in results for c in m.corpora))
    seen = [m.model for m in results if m.verdict == "seen"]
    console.print(f"seen by: {', '.join(seen) if seen else 'no registry model'}; "
                  f"not seen by: {', '.join(m.model for m in results if m.verdict == 'not seen') or 'none'}; "
                  f"inconclusive: {', '.join(m.model for m in results if m.verdict == 'inconclusive') or 'none'}")


COMMANDS += [lookup_cmd]
