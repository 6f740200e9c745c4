"""Lint dataset cards: what CI checks on a pull request that adds or changes a card.

Checks: every card parses into a typed record (schema, enums, pinned census
version, filter syntax), names are unique and match file names, and, against
the card's own Census source, the filter and label columns exist. With
``dry_run`` each card is resolved against the source and reports cell and
donor counts, without writing anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import tiledbsoma as soma

from heldout.cards.dataset import DatasetCard, list_dataset_cards, load_dataset_card
from heldout.census import experiment, open_census
from heldout.errors import HeldoutError
from heldout.project import Project, find_project


@dataclass
class CardLint:
    name: str
    problems: list[str] = field(default_factory=list)
    n_cells: int | None = None
    n_donors: int | None = None
    n_datasets: int | None = None


def lint_cards(*, project: Project | None = None, dry_run: bool = False,
               mirror_root: str | Path | None = None) -> list[CardLint]:
    project = project or find_project()
    results: list[CardLint] = []
    cards: dict[str, DatasetCard] = {}
    for name in list_dataset_cards(project.registry):
        result = CardLint(name)
        results.append(result)
        try:
            card = load_dataset_card(name, project.registry)
        except HeldoutError as exc:
            result.problems.append(str(exc))
            continue
        cards[name] = card
    by_source: dict[tuple, list[str]] = {}
    for name, card in cards.items():
        if card.source is not None:  # an h5ad or SOMA outside the Census: staged, then checked the same way
            _check_external(card, next(r for r in results if r.name == name), project, dry_run=dry_run)
            continue
        by_source.setdefault((card.census.source, card.census.version), []).append(name)  # type: ignore[union-attr]
    for (source, version), names in by_source.items():
        try:
            with open_census(version, source=source, mirror_root=mirror_root) as census:
                for name in names:
                    _check_against_source(census, cards[name], next(r for r in results if r.name == name),
                                          dry_run=dry_run)
        except HeldoutError as exc:
            for name in names:
                next(r for r in results if r.name == name).problems.append(f"source {source} {version}: {exc}")
    return results


def _check_external(card: DatasetCard, result: CardLint, project: Project, *, dry_run: bool) -> None:
    from heldout.census import open_resolved
    from heldout.sources.stage import stage_source

    try:
        census = open_resolved(stage_source(card, project))
    except HeldoutError as exc:
        result.problems.append(f"source {card.source.kind} {card.source.uri}: {exc}")  # type: ignore[union-attr]
        return
    try:
        _check_against_source(census, card, result, dry_run=dry_run)
    finally:
        census.close()


def _check_against_source(census: soma.Collection, card: DatasetCard, result: CardLint, *, dry_run: bool) -> None:
    try:
        exp = experiment(census, card.organism.value)
    except HeldoutError as exc:
        result.problems.append(str(exc))
        return
    columns = {f.name for f in exp.obs.schema}
    missing = [c for c in card.labels if c not in columns]
    if missing:
        result.problems.append(f"label columns {missing} are not obs columns of the source")
    if card.split.stratify_by and card.split.stratify_by not in columns:
        result.problems.append(f"split.stratify_by {card.split.stratify_by!r} is not an obs column")
    try:
        wanted = ["dataset_id", "donor_id"] if dry_run else ["soma_joinid"]
        obs = exp.obs.read(value_filter=card.obs_filter, column_names=wanted).concat().to_pandas()
    except Exception as exc:  # noqa: BLE001 - tiledbsoma reports filter errors with many types
        result.problems.append(f"obs_value_filter does not run against the source: {exc}")
        return
    if obs.empty:
        result.problems.append(f"the filter {card.obs_filter!r} selects no cells")
    if dry_run and not obs.empty:
        result.n_cells = len(obs)
        result.n_donors = int(obs.groupby(["dataset_id", "donor_id"], observed=True).ngroups)
        result.n_datasets = int(obs["dataset_id"].nunique())
