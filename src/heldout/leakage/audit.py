"""Audit (model x dataset) pairings: tiers with evidence, as a table, JSON and a report.

Eval datasets come from this project's curated artifacts, or from a release
(its manifest and fingerprint files only: no rebuild needed). Each corpus is
resolved once and compared with every dataset in one pass.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd

from heldout._files import atomic_path, read_yaml, write_json_atomic, write_text_atomic
from heldout.cards.dataset import list_dataset_cards
from heldout.cards.model import ModelCard, list_model_cards, load_model_card
from heldout.curation import artifact_paths
from heldout.errors import HeldoutError, UsageError
from heldout.leakage.evidence import EvalData, eval_from_tables, evidence_for
from heldout.leakage.tiers import Tier, TierResult, assign_tier
from heldout.project import Project, find_project

TIER_COLOURS = {Tier.GREEN: "#2e9d48", Tier.YELLOW: "#e8c12f", Tier.RED: "#c8352b", Tier.GRAY: "#9a9a9a"}


def eval_from_curated(project: Project, name: str) -> EvalData:
    _, lock_path, fp_path = artifact_paths(project, name)
    if not lock_path.exists() or not fp_path.exists():
        msg = f"Dataset {name!r} is not curated ({lock_path.name} or {fp_path.name} missing)."
        raise HeldoutError(msg, hint=f"Run `heldout curate {name}`, or audit a release with --release.")
    lock = read_yaml(lock_path)
    return eval_from_tables(name=name, version=None, organism=lock["organism"], census_version=lock["census_version"],
                            sources=lock.get("sources", []), fingerprints=pd.read_parquet(fp_path))


def eval_from_release(version: str, *, registry: str | Path | None = None,
                      datasets: list[str] | None = None) -> list[EvalData]:
    from heldout.pull import pull, read_index, read_manifest

    concrete = read_index(registry).resolve(version)
    manifest = read_manifest(concrete, registry)
    out = []
    for name, ds in manifest.datasets.items():
        if datasets and name not in datasets:
            continue
        fps = pd.read_parquet(pull(f"{name}@{concrete}", registry=registry, artifact="fingerprints").path)
        out.append(eval_from_tables(name=name, version=concrete, organism=ds.organism,
                                    census_version=ds.census_version,
                                    sources=[s.model_dump() for s in ds.sources], fingerprints=fps))
    return out


def audit(models: list[ModelCard], evals: list[EvalData], *, mirror_root: str | Path | None = None,
          user_supplied: bool = False) -> list[TierResult]:
    """Tier every (model, eval dataset) pairing; evidence for every corpus of every model."""
    results = []
    for model in models:
        per_corpus = [evidence_for(corpus, evals, mirror_root=mirror_root) for corpus in model.corpora]
        for i, data in enumerate(evals):
            tier = assign_tier(model.name, data.name, data.version, [ev[i] for ev in per_corpus])
            results.append(dataclasses.replace(tier, user_supplied=user_supplied))
    return results


def load_user_card(path: Path, registry: Path) -> ModelCard:
    """A card file from the user: audited under its own name, which must not be a registry model's."""
    card = load_model_card(path, registry)
    if card.name in list_model_cards(registry):
        msg = f"The card {path} uses the name {card.name!r}, which belongs to a registry model."
        raise UsageError(msg, hint=f"Registry models are audited with their registry card only (`heldout audit "
                                   f"--model {card.name}`); give your own card a name of its own.")
    return card


def audit_project(*, model_names: list[str] | None = None, manifest: Path | None = None,
                  release: str | None = None, registry: str | Path | None = None,
                  datasets: list[str] | None = None, mirror_root: str | Path | None = None,
                  project: Project | None = None) -> list[TierResult]:
    """The `heldout audit` entry: pick models (or a corpus manifest) and eval datasets, then audit."""
    project = project or find_project()
    if manifest is not None:
        models = [load_user_card(manifest, project.registry)]
    else:
        names = model_names or list_model_cards(project.registry)
        models = [load_model_card(n, project.registry) for n in names]
    if release:
        evals = eval_from_release(release, registry=registry, datasets=datasets)
    else:
        names = datasets or list_dataset_cards(project.registry)
        evals = [eval_from_curated(project, n) for n in names]
    return audit(models, evals, mirror_root=mirror_root, user_supplied=manifest is not None)


def to_json(results: list[TierResult]) -> list[dict]:
    return [{**dataclasses.asdict(r), "tier": r.tier.value} for r in results]


def write_json(results: list[TierResult], path: Path) -> None:
    write_json_atomic(path, to_json(results))


def heatmap(results: list[TierResult], path: Path) -> None:
    """PNG: datasets (rows) x models (columns), each cell coloured by tier and labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    models = list(dict.fromkeys(r.model for r in results))
    datasets = list(dict.fromkeys(r.dataset for r in results))
    order = list(Tier)
    grid = [[order.index(next(r.tier for r in results if r.model == m and r.dataset == d)) for m in models]
            for d in datasets]
    fig, ax = plt.subplots(figsize=(1.3 * len(models) + 2.5, 0.55 * len(datasets) + 1.8))
    ax.imshow(grid, cmap=ListedColormap([TIER_COLOURS[t] for t in order]), vmin=-0.5, vmax=len(order) - 0.5)
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            ax.text(j, i, order[value].value, ha="center", va="center", fontsize=8, color="white")
    ax.set_xticks(range(len(models)), models, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(datasets)), datasets, fontsize=8)
    ax.set_title("heldout leakage tiers", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def markdown_report(results: list[TierResult], path: Path) -> Path:
    """A Markdown report with the heatmap (PNG beside it) and every tier's evidence."""
    png = path.with_suffix(".png")
    heatmap(results, png)
    lines = ["# heldout leakage audit", "", f"![tiers]({png.name})", "",
             "| model | dataset | version | tier | why |", "|---|---|---|---|---|"]
    lines += [f"| {r.model}{' (user card)' if r.user_supplied else ''} | {r.dataset} | {r.version or 'curated'} | "
              f"**{r.tier.value}** | {r.reason} |" for r in results]
    lines += ["", "## Evidence per corpus", ""]
    for r in results:
        lines.append(f"### {r.model} x {r.dataset}: {r.tier.value}")
        for e in r.evidence:
            cells = "n/a" if e.cells is None else f"{e.cells} ({e.cell_fraction:.1%})"
            lines.append(f"- `{e.corpus}` ({e.role}, {e.documented_as}): **{e.status}**; datasets "
                         f"{len(e.dataset_ids)}, donors {len(e.donors)}, cells {cells}. {e.reason}. "
                         f"Sources: {'; '.join(e.sources)}")
        lines.append("")
    write_text_atomic(path, "\n".join(lines))
    return path


def summary_json(results: list[TierResult]) -> str:
    return json.dumps(to_json(results), indent=2, default=str)
