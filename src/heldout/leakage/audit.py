"""Audit (model x dataset) pairings: tiers with evidence, as a table, JSON and a report.

Eval datasets come from this project's curated artifacts, or from a release
(its manifest and fingerprint files only: no rebuild needed). Each corpus is
resolved once and compared with every dataset in one pass.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from heldout._files import atomic_path, read_yaml, write_json_atomic, write_text_atomic
from heldout.cards.dataset import list_dataset_cards, load_dataset_card
from heldout.cards.model import ModelCard, list_model_cards, load_model_card
from heldout.errors import HeldoutError, UsageError, unknown_choice
from heldout.cards.dataset import SPLIT_NAMES
from heldout.cards.model import Corpus
from heldout.leakage import conditions
from heldout.leakage.content import evidence_with_cells
from heldout.leakage.evidence import CorpusEvidence, EvalData, listed_evidence
from heldout.leakage.fingerprint import Signatures
from heldout.leakage.tiers import Tier, TierResult, assign_tier, tier_of_cells
from heldout.leakage.universe import GeneUniverse
from heldout.project import Project, artifact_paths, find_project

log = logging.getLogger(__name__)
TIER_COLOURS = {Tier.GREEN: "#2e9d48", Tier.YELLOW: "#e8c12f", Tier.RED: "#c8352b", Tier.GRAY: "#9a9a9a"}


def eval_from_table(*, name: str, version: str | None, organism: str, census_version: str, sources: list[dict],
                    table: pa.Table, universe: GeneUniverse | None, split: pd.DataFrame | None,
                    identifiers: tuple = (), h5ad: Callable[[], Path] | None = None) -> EvalData:
    """EvalData from a signature table (curation's fingerprints file) and what goes with it."""
    cell_ids = table.column("observation_joinid").to_numpy(zero_copy_only=False).astype(str)
    signatures = Signatures.from_table(table) if "sketch" in table.column_names else None
    per_cell_split, per_cell_condition = None, None
    if split is not None:
        by_cell = split.set_index("observation_joinid").reindex(cell_ids)
        per_cell_split = by_cell["split"].fillna("").to_numpy(str)
        per_cell_condition = conditions.of_obs(by_cell.fillna(""))
    return EvalData(name=name, version=version, organism=organism, census_version=census_version,
                    cell_ids=cell_ids, dataset_of_cell=table.column("dataset_id").to_numpy(zero_copy_only=False).astype(str),
                    donor_of_cell=table.column("donor_id").to_numpy(zero_copy_only=False).astype(str),
                    sources=tuple(sources), signatures=signatures, universe=universe, split=per_cell_split,
                    identifiers=identifiers, obs_loader=(lambda: census_obs(h5ad(), cell_ids)) if h5ad else None,
                    condition_of_cell=per_cell_condition)


def census_obs(h5ad: Path, cell_ids: np.ndarray) -> pd.DataFrame:
    """The curated h5ad's obs (Census columns), in the order of ``cell_ids`` (observation_joinid)."""
    import anndata as ad

    adata = ad.read_h5ad(h5ad, backed="r")
    try:
        obs = adata.obs.copy()
    finally:
        adata.file.close()
    key = obs["observation_joinid"].astype(str) if "observation_joinid" in obs else pd.Series(obs.index, index=obs.index)
    return obs.set_index(key.to_numpy()).reindex(cell_ids).reset_index(drop=True)


def card_identifiers(text_or_card: object) -> tuple:
    """A dataset card's ``identifiers`` (a card record, or the card's YAML text), () when it has none or fails."""
    from heldout.cards.dataset import DatasetCard

    try:
        if isinstance(text_or_card, DatasetCard):
            return tuple(text_or_card.identifiers)
        return tuple(DatasetCard.model_validate(text_or_card).identifiers)
    except Exception:  # noqa: BLE001 - an older card without the field, or a card that no longer loads
        return ()


def eval_from_curated(project: Project, name: str) -> EvalData:
    paths = artifact_paths(project, name)
    if not paths.lock.exists() or not paths.fingerprints.exists():
        msg = f"Dataset {name!r} is not curated ({paths.lock.name} or {paths.fingerprints.name} missing)."
        raise HeldoutError(msg, hint=f"Run `heldout curate {name}`, or audit a release with --release.")
    lock = read_yaml(paths.lock)
    split_path = project.splits / name / "assignment.parquet"
    try:
        identifiers = card_identifiers(load_dataset_card(name, project.registry))
    except HeldoutError:
        identifiers = ()
    return eval_from_table(name=name, version=None, organism=lock["organism"], census_version=lock["census_version"],
                           sources=lock.get("sources", []), table=pq.read_table(paths.fingerprints),
                           universe=GeneUniverse.read(paths.genes) if paths.genes.exists() else None,
                           split=pd.read_parquet(split_path) if split_path.exists() else None,
                           identifiers=identifiers, h5ad=(lambda: paths.h5ad) if paths.h5ad.exists() else None)


def eval_from_release(version: str, *, registry: str | Path | None = None,
                      datasets: list[str] | None = None) -> list[EvalData]:
    from heldout.pull import TAG_PREFIX, _read, _registry, pull, read_index, read_manifest

    concrete = read_index(registry).resolve(version)
    manifest = read_manifest(concrete, registry)
    out = []
    for name, ds in manifest.datasets.items():
        if datasets and name not in datasets:
            continue
        ref = f"{name}@{concrete}"
        table = pq.read_table(pull(ref, registry=registry, artifact="fingerprints").path)
        genes = GeneUniverse.read(pull(ref, registry=registry, artifact="genes").path) \
            if "genes" in ds.artifacts else None
        split = pd.read_parquet(pull(ref, registry=registry, artifact="split_assignment").path) \
            if "split_assignment" in ds.artifacts else None
        try:
            card = _read(_registry(registry), f"registry/datasets/{name}.yaml", rev=f"{TAG_PREFIX}{concrete}")
        except HeldoutError:
            card = {}
        out.append(eval_from_table(name=name, version=concrete, organism=ds.organism, census_version=ds.census_version,
                                   sources=[s.model_dump() for s in ds.sources], table=table, universe=genes,
                                   split=split, identifiers=card_identifiers(card),
                                   h5ad=lambda ref=ref: pull(ref, registry=registry).path))
    return out


def evidence_for(corpus: Corpus, evals: list[EvalData], *, model: str, project_root: Path | None = None,
                 mirror_root: str | Path | None = None, rescan: bool = False) -> list[CorpusEvidence]:
    """Evidence of one corpus against every eval dataset (one join, or one scan, for all)."""
    with_cells = evidence_with_cells(corpus, evals, model=model, project_root=project_root, mirror_root=mirror_root,
                                     rescan=rescan)
    return with_cells if with_cells is not None else [listed_evidence(corpus, d) for d in evals]


def audit(models: list[ModelCard], evals: list[EvalData], *, mirror_root: str | Path | None = None,
          project_root: Path | None = None, rescan: bool = False, user_supplied: bool = False) -> list[TierResult]:
    """Tier every (model, eval dataset) pairing, and each split of it; evidence for every corpus
    (heldout.leakage.published: the strongest evidence available decides)."""
    from heldout.leakage.published import ListCache, decide

    lists = ListCache(project_root)
    results = []
    for model in models:
        per_corpus = [[decide(corpus, model, data, ev, lists) for data, ev in zip(evals, evidence_for(
            corpus, evals, model=model.name, project_root=project_root, mirror_root=mirror_root, rescan=rescan),
            strict=True)] for corpus in model.corpora]
        for i, data in enumerate(evals):
            tier = assign_tier(model.name, data.name, data.version, [ev[i] for ev in per_corpus])
            tier = dataclasses.replace(tier, user_supplied=user_supplied)
            splits = {}
            if data.split is not None:
                for name in (s for s in SPLIT_NAMES if (data.split == s).any()):
                    splits[name] = tier_of_cells(tier, data.split == name, f"{name} cells").tier.value
            results.append(dataclasses.replace(tier, splits=splits))
    return results


def load_user_card(path: Path, registry_models: list[str]) -> ModelCard:
    """A card file from the user: audited under its own name, which must not be a registry model's."""
    card = load_model_card(path, Path("."))
    if card.name in registry_models:
        msg = f"The card {path} uses the name {card.name!r}, which belongs to a registry model."
        raise UsageError(msg, hint=f"Registry models are audited with their registry card only (`heldout audit "
                                   f"--model {card.name}`); give your own card a name of its own.")
    return card


def _pick(models: dict[str, ModelCard], names: list[str] | None, where: str) -> list[ModelCard]:
    for name in names or ():
        if name not in models:
            raise unknown_choice(f"model {where}", name, list(models))
    return [models[n] for n in (names or list(models))]


def audit_project(*, model_names: list[str] | None = None, manifest: Path | None = None,
                  release: str | None = None, registry: str | Path | None = None,
                  datasets: list[str] | None = None, mirror_root: str | Path | None = None,
                  project: Project | None = None, rescan: bool = False) -> list[TierResult]:
    """The `heldout audit` entry: pick models (or a user card) and eval datasets, then audit.

    With ``release``, the models, their recorded corpora and the eval data are all
    the release's, fetched and verified: no local project is needed.
    """
    if release:
        from heldout.pull import materialize_corpora, release_models

        released = {card.name: card for card in release_models(release, registry)}
        models = [load_user_card(manifest, list(released))] if manifest else \
            _pick(released, model_names, f"in release {release}")
        root = Path.cwd() if manifest else materialize_corpora(release, registry)
        evals = eval_from_release(release, registry=registry, datasets=datasets)
        return audit(models, evals, mirror_root=mirror_root, project_root=root, rescan=rescan,
                     user_supplied=manifest is not None)
    project = project or find_project(fallback=release is not None)
    registry_models = list_model_cards(project.registry)
    if manifest is not None:
        models = [load_user_card(manifest, registry_models)]
    else:
        models = _pick({n: load_model_card(n, project.registry) for n in registry_models}, model_names,
                       "in the registry")
    if datasets:
        evals = [eval_from_curated(project, n) for n in datasets]
    else:  # every curated dataset; a card not curated yet is named, not an error
        names = list_dataset_cards(project.registry)
        curated = [n for n in names if artifact_paths(project, n).fingerprints.exists()]
        if not curated:
            msg = f"None of the {len(names)} dataset card(s) of {project.registry} is curated yet."
            raise HeldoutError(msg, hint="Run `dvc repro` (or `heldout curate NAME`), or audit a release with "
                                         "--release VERSION.")
        skipped = sorted(set(names) - set(curated))
        if skipped:
            log.warning("Not curated yet, so not audited: %s.", ", ".join(skipped))
        evals = [eval_from_curated(project, n) for n in curated]
    return audit(models, evals, mirror_root=mirror_root, project_root=project.root, rescan=rescan,
                 user_supplied=manifest is not None)


def to_json(results: list[TierResult]) -> list[dict]:
    return [{"model": r.model, "dataset": r.dataset, "version": r.version, "tier": r.tier.value, "reason": r.reason,
             "splits": r.splits, "user_supplied": r.user_supplied, "evidence": [e.to_dict() for e in r.evidence]}
            for r in results]


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


def splits_text(result: TierResult) -> str:
    return ", ".join(f"{split} {tier}" for split, tier in result.splits.items())


def evidence_lines(e: CorpusEvidence) -> list[str]:
    """Markdown bullet lines for one corpus's evidence."""
    cells = "n/a" if e.cells is None else f"{e.cells:,} ({e.cell_fraction:.1%})"
    lines = [f"- `{e.corpus}` ({e.role}, documented as {e.documented_as}): **{e.status}**, {cells} eval cells seen. "
             f"{e.reason}."]
    if e.exact_cells is not None:
        lines.append(f"  - shared datasets {len(e.dataset_ids)}, shared donors {len(e.donors)}, exact content "
                     f"matches {e.exact_cells:,}, near matches {e.near_cells:,}, uninformative cells "
                     f"{e.uninformative:,}, comparable cells {e.comparable:,}")
    if e.levels:
        lines.append("  - evidence levels: " + "; ".join(f"{k}: {v}" for k, v in e.levels.items()))
    if e.examples:
        lines.append("  - e.g. " + "; ".join(e.examples))
    lines.append(f"  - sources: {'; '.join(e.sources)}")
    return lines


def markdown_report(results: list[TierResult], path: Path) -> Path:
    """A Markdown report (the model x dataset grid, each cell linking to its evidence; the heatmap PNG beside
    it) and the same as a self-contained HTML page (``.html`` beside it)."""
    import html

    from heldout.leakage.grid import anchor, html_page, markdown_grid

    png = path.with_suffix(".png")
    heatmap(results, png)
    evidence_html = {anchor(r): "<ul>" + "".join(f"<li>{html.escape(line.lstrip('- ').strip())}</li>"
                                                  for e in r.evidence for line in evidence_lines(e)) + "</ul>"
                     for r in results}
    write_text_atomic(path.with_suffix(".html"), html_page(results, evidence_html))
    lines = ["# heldout leakage audit", "", f"![tiers]({png.name})", "", *markdown_grid(results), "",
             "| model | dataset | version | tier | by split | why |", "|---|---|---|---|---|---|"]
    lines += [f"| {r.model}{' (user card)' if r.user_supplied else ''} | {r.dataset} | {r.version or 'curated'} | "
              f"**{r.tier.value}** | {splits_text(r)} | {r.reason} |" for r in results]
    lines += ["", "## Evidence per corpus", ""]
    for r in results:
        lines.append(f'<a id="{anchor(r)}"></a>')
        lines.append(f"### {r.model} x {r.dataset}: {r.tier.value}" + (f" ({splits_text(r)})" if r.splits else ""))
        for e in r.evidence:
            lines += evidence_lines(e)
        lines.append("")
    write_text_atomic(path, "\n".join(lines))
    return path


def summary_json(results: list[TierResult]) -> str:
    return json.dumps(to_json(results), indent=2, default=str)
