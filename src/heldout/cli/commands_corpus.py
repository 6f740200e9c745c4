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


COMMANDS = [corpus]
