"""Lint dataset cards: what CI checks on a pull request that adds or changes a card.

Checks: every card parses into a typed record (schema, enums, pinned census
version, filter syntax), names are unique and match file names, and, against
the card's own Census source, the filter and label columns exist. With
``dry_run`` each card is resolved against the source and reports cell and
donor counts, without writing anything.
"""

from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import tiledbsoma as soma

from heldout.cards.dataset import SPECIAL_DONOR_IDS, DatasetCard, list_dataset_cards, load_dataset_card
from heldout.census import experiment, open_census
from heldout.errors import HeldoutError
from heldout.leakage.evidence import EvalData
from heldout.project import Project, find_project
from heldout.untrusted.limits import deadline, limits


@dataclass
class CardLint:
    name: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # said to the reviewer, not failures
    n_cells: int | None = None
    n_donors: int | None = None
    n_datasets: int | None = None
    source: str = ""  # where the cells come from (Census source and version, or the external file)
    selection: str = ""  # the obs filter the card applies
    eval_data: EvalData | None = None  # with ``keep_cells``: the selected cells' ids, donors and sources


def lint_cards(*, project: Project | None = None, dry_run: bool = False,
               mirror_root: str | Path | None = None, changed_since: str | None = None,
               names: list[str] | None = None, keep_cells: bool = False,
               check_pins: list[str] | None = None) -> list[CardLint]:
    """Lint every card (or ``names``), or with ``changed_since`` (a git revision) only the cards changed
    since then, refusing changes to the pinned fields of released cards (of ``check_pins`` only, if given).

    Nothing is fetched: a card whose source is a URL is checked for shape and noted (``heldout curate``
    fetches it). Each card's check runs under the time limit of heldout.untrusted.limits."""
    from heldout.released_cards import changed_cards, released_change_problems

    project = project or find_project()
    results: list[CardLint] = []
    cards: dict[str, DatasetCard] = {}
    if names is None:
        names = changed_cards(project, changed_since) if changed_since else list_dataset_cards(project.registry)
    for name in names:
        result = CardLint(name)
        results.append(result)
        try:
            card = load_dataset_card(name, project.registry)
        except HeldoutError as exc:
            result.problems.append(str(exc))
            continue
        if changed_since and (check_pins is None or name in check_pins):
            result.problems += released_change_problems(project, name, card.to_dict())
        result.source = (f"{card.source.kind} {card.source.uri}" if card.source is not None
                         else f"{card.census.source} {card.census.version}")  # type: ignore[union-attr]
        result.selection = f"{card.organism.value}: {card.obs_filter}"
        cards[name] = card
    by_source: dict[tuple, list[str]] = {}
    seconds = limits().seconds
    for name, card in cards.items():
        if card.source is not None:  # an h5ad or SOMA outside the Census: staged, then checked the same way
            result = next(r for r in results if r.name == name)
            try:
                with deadline(seconds, f"checking card {name}"):
                    _check_external(card, result, project, dry_run=dry_run, keep_cells=keep_cells)
            except HeldoutError as exc:
                result.problems.append(str(exc))
            continue
        by_source.setdefault((card.census.source, card.census.version), []).append(name)  # type: ignore[union-attr]
    for (source, version), group in by_source.items():
        try:
            with open_census(version, source=source, mirror_root=mirror_root) as census:
                for name in group:
                    result = next(r for r in results if r.name == name)
                    try:
                        with deadline(seconds, f"checking card {name}"):
                            _check_against_source(census, cards[name], result, dry_run=dry_run,
                                                  keep_cells=keep_cells)
                    except HeldoutError as exc:
                        result.problems.append(str(exc))
        except HeldoutError as exc:
            for name in group:
                next(r for r in results if r.name == name).problems.append(f"source {source} {version}: {exc}")
    return results


def _check_external(card: DatasetCard, result: CardLint, project: Project, *, dry_run: bool,
                    keep_cells: bool) -> None:
    from heldout.census import open_resolved
    from heldout.sources.stage import RemoteNotFetched, stage_source

    try:
        resolved = stage_source(card, project, fetch_remote=False)
        census = open_resolved(resolved)
    except RemoteNotFetched as exc:
        result.notes.append(exc.message + " " + (exc.hint or ""))
        return
    except HeldoutError as exc:
        result.problems.append(f"source {card.source.kind} {card.source.uri}: {exc}")  # type: ignore[union-attr]
        return
    try:
        _check_against_source(census, card, result, dry_run=dry_run, keep_cells=keep_cells, resolved=resolved)
    finally:
        census.close()


def _check_against_source(census: soma.Collection, card: DatasetCard, result: CardLint, *, dry_run: bool,
                          keep_cells: bool = False, resolved: object = None) -> None:
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
    unknown = [name for name in _filter_names(card.obs_filter) if name not in columns]
    if unknown:
        for name in unknown:
            close = difflib.get_close_matches(name, sorted(columns), n=1)
            result.problems.append(f"obs_value_filter names {name!r}, not an obs column of the source"
                                   + (f" (did you mean {close[0]!r}?)" if close else ""))
        return
    try:
        columns = ["dataset_id", "donor_id"] + (["observation_joinid"] if keep_cells or card.perturbation else [])
        obs = exp.obs.read(value_filter=card.obs_filter, column_names=columns).concat().to_pandas()
    except Exception as exc:  # noqa: BLE001 - tiledbsoma reports filter errors with many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        result.problems.append(f"obs_value_filter does not run against the source: {first[:200]}")
        return
    if obs.empty:
        result.problems.append(f"the filter {card.obs_filter!r} selects no cells")
        return
    _check_identifiers(census, card, obs, result)
    if keep_cells:
        result.eval_data = _eval_data(census, card, obs)
    if card.perturbation is not None:
        _check_design(card, obs, resolved, result)
    groups = obs[["dataset_id", "donor_id"]].astype(str).drop_duplicates()
    if card.split.special_donors.value == "exclude":
        groups = groups[~groups["donor_id"].isin(SPECIAL_DONOR_IDS)]
    wanted = [s for s, f in card.split.fractions.items() if f > 0]
    if card.perturbation is None and len(wanted) > 1 and len(groups) < len(wanted):  # donor splits only
        result.problems.append(f"split: {len(groups)} donor group(s) cannot fill {len(wanted)} donor-disjoint splits "
                               f"({', '.join(wanted)}); give fewer non-zero fractions or select more donors")
    if card.orthologs is not None:
        from heldout.orthologs import UPSTREAM

        pair = (card.organism.value, card.orthologs.target_organism.value)
        if pair not in UPSTREAM:
            known = ", ".join(f"{a} -> {b}" for a, b in UPSTREAM)
            result.problems.append(f"orthologs: no ortholog map from {pair[0]} to {pair[1]} (known: {known})")
    if dry_run:
        result.n_cells = len(obs)
        result.n_donors = int(obs.groupby(["dataset_id", "donor_id"], observed=True).ngroups)
        result.n_datasets = int(obs["dataset_id"].nunique())


def _check_design(card: DatasetCard, obs: pd.DataFrame, resolved: object, result: CardLint) -> None:
    """A perturbation card: its design validates on the cells it selects, and its split can be made."""
    from heldout.perturbation.design import validate_design
    from heldout.sources.stage import staged_design

    design = staged_design(resolved) if resolved is not None else None  # type: ignore[arg-type]
    if design is None:
        result.problems.append("perturbation: the card's source staged no design (a perturbation card reads an "
                               "h5ad or SOMA `source:`)")
        return
    selected = design.set_index("observation_joinid").reindex(obs["observation_joinid"].astype(str))
    try:
        validate_design(selected, card.perturbation, card.organism.value, f"card {card.name!r}")  # type: ignore[arg-type]
    except HeldoutError as exc:
        result.problems.append(exc.message)


def _check_identifiers(census: soma.Collection, card: DatasetCard, obs: pd.DataFrame, result: CardLint) -> None:
    """Each ``identifiers`` entry names a source dataset the card selects; each selected dataset has one."""
    table = census["census_info"]["datasets"].read(column_names=["dataset_id", "dataset_title"]).concat().to_pandas()
    selected = set(table[table["dataset_id"].isin(set(obs["dataset_id"].astype(str)))]["dataset_title"].astype(str))
    named = {i.dataset_title for i in card.identifiers}
    for title in sorted(named - selected):
        close = difflib.get_close_matches(title, sorted(selected), n=1)
        result.problems.append(f"identifiers name dataset {title!r}, which the card does not select"
                               + (f" (did you mean {close[0]!r}?)" if close else f"; it selects {sorted(selected)}"))
    for title in sorted(selected - named):
        result.notes.append(f"source dataset {title!r} has no `identifiers:` entry: leakage audits cannot look it "
                            "up in published corpus lists (give its GEO series, PMID, DOI, or a note why none exist)")


def _eval_data(census: soma.Collection, card: DatasetCard, obs: pd.DataFrame) -> EvalData:
    """The selected cells as an audit sees them without curation: ids, donors and source datasets."""
    table = census["census_info"]["datasets"].read(
        column_names=["dataset_id", "dataset_title", "collection_id", "collection_doi", "citation"]
    ).concat().to_pandas()
    ids = set(obs["dataset_id"].astype(str))
    sources = tuple({k: str(v) for k, v in row.items()} for row in table.to_dict("records")
                    if str(row["dataset_id"]) in ids)
    version = card.census.version if card.census else "staged"
    return EvalData(name=card.name, version=None, organism=card.organism.value, census_version=version,
                    cell_ids=obs["observation_joinid"].astype(str).to_numpy(),
                    dataset_of_cell=obs["dataset_id"].astype(str).to_numpy(),
                    donor_of_cell=obs["donor_id"].astype(str).to_numpy(), sources=sources, signatures=None,
                    universe=None)


def _filter_names(expression: str) -> list[str]:
    """The column names a value filter reads (bare names; string literals are not names)."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        return []
    keywords = {"True", "False", "None", "and", "or", "not", "in"}
    return list(dict.fromkeys(n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id not in keywords))


def markdown_summary(results: list[CardLint], *, dry_run: bool, changed_since: str | None = None) -> str:
    """The lint result as Markdown, for a reviewer reading a pull request (a CI job summary)."""
    cards = f"{len(results)} card{'' if len(results) == 1 else 's'}"
    scope = f"{cards} changed since `{changed_since}`" if changed_since else f"every card ({cards})"
    bad = [r for r in results if r.problems]
    head = (f"## heldout lint{' --dry-run' if dry_run else ''}: "
            f"{'FAILED, ' + str(len(bad)) + ' card(s) with problems' if bad else 'passed'}\n\n"
            f"Checked {scope}.\n")
    if not results:
        return head + "\nNo dataset card changed.\n"
    columns = ["card", "status", "source", "selects"] + (["datasets", "donors", "cells"] if dry_run else [])
    lines = [head, "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in results:
        row = [f"`{r.name}`", "ok" if not r.problems else f"**{len(r.problems)} problem(s)**", r.source,
               f"`{r.selection}`" if r.selection else ""]
        if dry_run:
            row += ["" if v is None else f"{v:,}" for v in (r.n_datasets, r.n_donors, r.n_cells)]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    if bad:
        lines += ["", "### Problems", ""]
        lines += [f"- `{r.name}`: {' '.join(problem.split())}" for r in bad for problem in r.problems]
    noted = [r for r in results if r.notes]
    if noted:
        lines += ["", "### Notes for the reviewer", ""]
        lines += [f"- `{r.name}`: {' '.join(note.split())}" for r in noted for note in r.notes]
    return "\n".join(lines) + "\n"
