"""CLI: corpus record, corpus show (recorded pretraining and task-training corpora of model cards)."""

from __future__ import annotations

from pathlib import Path

import click

from heldout.cli import _render
from heldout.cli._render import console
from heldout.cli.commands_data import MIRROR_OPTION


@click.group()
def corpus() -> None:
    """Recorded corpus manifests: what a model was trained on, recorded once for every audit."""


@corpus.command("record")
@click.option("--model", required=True, help="Model card name (registry/models/NAME.yaml; created for FILES).")
@click.option("--corpus", "corpus_name", default=None,
              help="Which corpus of the card (default: every Census corpus); required with FILES.")
@click.option("--role", type=click.Choice(["pretraining", "task_training"]), default=None,
              help="With FILES: what the model did with them.")
@click.option("--organism", type=click.Choice(["homo_sapiens", "mus_musculus"]), default=None,
              help="With FILES named by gene symbol: the organism whose GENCODE maps them.")
@click.option("--dataset-id", default=None, help="With FILES without a dataset_id column: the id to record.")
@click.option("--soma", "input_kind", flag_value="soma", default="h5ad",
              help="FILES are SOMA experiment URIs, not h5ad files.")
@click.option("--partition-cells", type=click.IntRange(min=1), default=1_000_000, show_default=True,
              help="Cells per Census partition (one Dask task each; a killed run resumes per partition).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Local Dask threads (memory grows with workers x partition size).")
@click.option("--scheduler", default=None, help="A dask.distributed scheduler address to run partitions on.")
@click.option("--replace", is_flag=True, help="Record again a corpus that is already recorded.")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@MIRROR_OPTION
def record(model: str, corpus_name: str | None, role: str | None, organism: str | None, dataset_id: str | None,
           input_kind: str, partition_cells: int, workers: int, scheduler: str | None, replace: bool,
           files: tuple[Path, ...], mirror_root: Path | None) -> None:
    """Record a model's corpora into manifests: ids, donors and every cell's content signatures.

    \b
    Census corpora of a card:   heldout corpus record --model scvi-census
    Files a model trained on:   heldout corpus record --model my-model --corpus train \\
                                  --role task_training train.h5ad
    The card is updated to point at (and pin the sha256 of) each manifest;
    `heldout audit` then joins against it instead of scanning the Census.
    """
    from heldout.corpora.model_corpora import record_model_corpora

    client = None
    if scheduler:
        from dask.distributed import Client

        client = Client(scheduler)
    try:
        results = record_model_corpora(model, corpus=corpus_name, inputs=list(files) or None, role=role,
                                       organism=organism, dataset_id=dataset_id, input_kind=input_kind,
                                       mirror_root=mirror_root, partition_cells=partition_cells, workers=workers,
                                       client=client, replace=replace, progress=True,
                                       say=lambda msg: console.print(f"[dim]{msg}[/]"))
    finally:
        if client is not None:
            client.close()
    _render.table(f"recorded corpora of {model}", ["corpus", "cells", "informative", "datasets", "donors", "manifest"],
                  ((r.corpus, f"{r.manifest.n_cells:,}", f"{r.manifest.n_informative:,}", len(r.manifest.datasets),
                    f"{r.manifest.n_donors:,}", r.manifest_path) for r in results))


@corpus.command("show")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def show(manifest: Path) -> None:
    """Summarise a recorded manifest (its files are verified against their sha256)."""
    from heldout.corpora.manifest import CorpusReader

    m = CorpusReader(manifest).manifest
    src = m.source
    _render.key_values(f"{m.model}/{m.corpus} ({m.role.value})", [
        ("source", f"{src.kind} {src.census_version or ''} {src.obs_value_filter or ''}".strip()),
        ("inputs", ", ".join(f"{Path(i.path).name} ({i.sha256[:12]})" for i in src.inputs) or "-"),
        ("cells", f"{m.n_cells:,} ({m.n_informative:,} above the information floor)"),
        ("datasets", len(m.datasets)), ("donors", f"{m.n_donors:,}"), ("files", f"{len(m.files)} (verified)"),
        ("recorded", f"{m.created} by heldout {m.heldout_version}")])


@corpus.command("record-list")
@click.argument("name")
@click.option("--file", "files", multiple=True, required=True, metavar="KIND:PATH",
              help="A list file and what it holds: samples (project, sample, cells), projects (project, "
                   "PMIDs/DOIs) or census_datasets (a Census release's dataset table). Repeatable.")
@click.option("--source", "sources", multiple=True, required=True,
              help="Where each --file came from (repository@commit:path), in the same order.")
@click.option("--column", "columns", multiple=True, metavar="KIND.NAME=COLUMN",
              help="The file's column for one of heldout's names, e.g. samples.project=project_ID. Repeatable.")
@click.option("--complete/--partial", required=True,
              help="Whether this is the model's complete published list (only a complete list proves absence).")
@click.option("--description", required=True, help="What the list is.")
@click.option("--citation", required=True, help="The paper or release the list belongs to.")
@click.option("--license", "license_", required=True, help="The list's licence or terms.")
@click.option("--census-version", default=None, help="For a Census release table: its version (YYYY-MM-DD).")
@click.option("--replace", is_flag=True, help="Record again a list that is already recorded.")
def record_list_cmd(name: str, files: tuple[str, ...], sources: tuple[str, ...], columns: tuple[str, ...],
                    complete: bool, description: str, citation: str, license_: str, census_version: str | None,
                    replace: bool) -> None:
    """Record a published corpus list (accessions, or a Census release table) into corpora/lists/NAME/.

    \b
    The files are copied as published, each pinned by sha256 with its source and
    row count; list.yaml records them. Model cards point at it (`accession_list:`)
    and the audit decides pairings from it.
    \b
    Example (scFoundation's Supplementary Data 1 and 2):
      heldout corpus record-list scfoundation --complete \\
        --file samples:data1.csv --source "repo@commit:extracts/scfoundation/data1.csv" \\
        --file projects:data2.csv --source "repo@commit:extracts/scfoundation/data2.csv" \\
        --column samples.project=project_ID --column samples.sample=sample_ID \\
        --column samples.cells=cell_number_reserved --column "projects.project=Project ID" \\
        --column "projects.references=pubmed ID" --description ... --citation ... --license ...
    """
    from heldout.corpora.lists import ListFileKind, record_list
    from heldout.errors import UsageError, unknown_choice
    from heldout.project import find_project

    if len(sources) != len(files):
        msg = f"Give one --source per --file ({len(files)} file(s), {len(sources)} source(s))."
        raise UsageError(msg, hint="e.g. --file samples:data1.csv --source owner/repo@COMMIT:path/data1.csv")
    parsed = []
    for spec, source in zip(files, sources, strict=True):
        kind, _, path = spec.partition(":")
        if kind not in ListFileKind.__members__:
            raise unknown_choice("list file kind", kind, list(ListFileKind.__members__))
        mapping = {}
        for column in columns:
            key, _, value = column.partition("=")
            owner, _, field = key.partition(".")
            if owner == kind and field and value:
                mapping[field] = value
        parsed.append((Path(path), ListFileKind(kind), source, mapping))
    out = record_list(find_project().root, name, parsed, description=description, complete=complete,
                      citation=citation, license=license_, census_version=census_version, replace=replace)
    from heldout.corpora.lists import load_list

    loaded = load_list(find_project().root, out.relative_to(find_project().root).as_posix())
    _render.key_values(f"corpus list {name}", [("record", out), ("complete", complete),
                                               *((k, f"{v:,}") for k, v in loaded.record.counts.items())])


COMMANDS = [corpus]
