"""Record the corpora of a model card, and point the card at what was recorded.

``record_model_corpora("scvi-census")`` records every Census corpus of the card
(or one, with ``corpus=``). With ``inputs=[train.h5ad]`` it records the files a
model was actually trained on as a ``recorded`` corpus, creating the card if the
registry has none. Either way the card gets ``manifest:`` and
``manifest_sha256:`` for the corpus, so a review of the card is a review of the
recording, and ``data/`` is tracked by DVC when the project is a DVC repo.
Recordings are immutable: recording a corpus again needs ``replace=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from heldout._files import sha256_file, write_text_atomic
from heldout.untrusted.yaml_input import load_yaml
from heldout.cards._base import parse_card
from heldout.cards.model import Corpus, Documentation, ModelCard, list_model_cards, load_model_card, models_dir
from heldout.census import resolve_census
from heldout.corpora.manifest import DATA, MANIFEST, CorpusManifest, corpus_dir, definition_sha256, read_manifest
from heldout.corpora.record import DEFAULT_PARTITION_CELLS, census_plan, execute, files_plan
from heldout.errors import CardError, UsageError, unknown_choice
from heldout.project import Project, find_project


@dataclass(frozen=True, kw_only=True)
class Recorded:
    corpus: str
    manifest_path: Path
    manifest: CorpusManifest
    skipped: bool = False  # already recorded from the same definition


def record_model_corpora(model: str, *, corpus: str | None = None, inputs: list[Path] | None = None,
                         role: str | None = None, organism: str | None = None, dataset_id: str | None = None,
                         input_kind: str = "h5ad", project: Project | None = None,
                         mirror_root: str | Path | None = None, partition_cells: int = DEFAULT_PARTITION_CELLS,
                         workers: int = 1, client: object | None = None, replace: bool = False,
                         progress: bool = False, say: Callable[[str], None] = lambda _m: None) -> list[Recorded]:
    project = project or find_project()
    if inputs:
        return [_record_files(model, corpus, inputs, role, organism, dataset_id, input_kind, project, replace,
                              workers, client, progress, say)]
    if model not in list_model_cards(project.registry):
        raise unknown_choice("model", model, list_model_cards(project.registry),
                             hint="To record the files a new model was trained on, pass them: "
                                  "`heldout corpus record --model NAME --corpus NAME --role ROLE FILE...`.")
    card = load_model_card(model, project.registry)
    wanted = [c for c in card.corpora if corpus in (None, c.name)]
    if corpus and not wanted:
        raise unknown_choice(f"corpus of {model}", corpus, [c.name for c in card.corpora])
    recordable = [c for c in wanted if c.census is not None and c.documented_as in
                  (Documentation.census_filter, Documentation.dataset_ids)]
    if not recordable:
        kinds = ", ".join(f"{c.name} ({c.documented_as.value})" for c in wanted)
        msg = f"Nothing to record from the card of {model!r}: its corpora ({kinds}) name no Census to read cells from."
        raise UsageError(msg, hint="Prose, accession and cut-off corpora have no cells; record the training files "
                                   "themselves with `heldout corpus record --model NAME --corpus NAME --role ROLE FILE`.")
    out = []
    for c in recordable:
        out.append(_record_census(card, c, project, mirror_root, partition_cells, workers, client, replace,
                                  progress, say))
    return out


def _existing(folder: Path, replace: bool, definition: str | None, what: str) -> CorpusManifest | None:
    path = folder / MANIFEST
    if not path.exists():
        return None
    current = read_manifest(path)
    if definition is not None and current.definition_sha256 == definition and not replace:
        return current
    if not replace:
        msg = f"{what} is already recorded at {path} (recorded {current.created}); recordings are immutable."
        raise UsageError(msg, hint="Pass --replace to record it anew: the card's manifest_sha256 changes, and "
                                   "reviewers see it in the pull request.")
    return None


def _record_census(card: ModelCard, c: Corpus, project: Project, mirror_root: str | Path | None,
                   partition_cells: int, workers: int, client: object | None, replace: bool, progress: bool,
                   say: Callable[[str], None]) -> Recorded:
    folder = corpus_dir(project.root, card.name, c.name)
    definition = definition_sha256(c.definition())
    current = _existing(folder, replace, definition, f"Corpus {card.name}/{c.name}")
    if current is not None:
        say(f"{card.name}/{c.name}: already recorded from this definition ({current.n_cells:,} cells)")
        _point_card(project, card.name, c.name, folder / MANIFEST, None)
        return Recorded(corpus=c.name, manifest_path=folder / MANIFEST, manifest=current, skipped=True)
    q = c.census
    resolved = resolve_census(q.version, source=q.source, mirror_root=mirror_root)  # type: ignore[union-attr]
    obs_filter = q.obs_value_filter if c.documented_as is Documentation.census_filter else \
        "dataset_id in [" + ", ".join(repr(d) for d in c.dataset_ids) + "]"  # type: ignore[union-attr]
    plan = census_plan(root=project.root, model=card.name, corpus=c.name, role=c.role.value,
                       definition_sha256=definition, resolved=resolved, organism=q.organism.value,  # type: ignore[union-attr]
                       obs_filter=obs_filter, partition_cells=partition_cells)
    say(f"{card.name}/{c.name}: recording {len(plan.specs)} partition(s) of Census {q.source} {resolved.version}")  # type: ignore[union-attr]
    manifest = execute(plan, client=client, workers=workers, progress=progress, say=say)
    _track(project, folder)
    _point_card(project, card.name, c.name, folder / MANIFEST, None)
    return Recorded(corpus=c.name, manifest_path=folder / MANIFEST, manifest=manifest)


def _record_files(model: str, corpus: str | None, inputs: list[Path], role: str | None, organism: str | None,
                  dataset_id: str | None, kind: str, project: Project, replace: bool, workers: int,
                  client: object | None, progress: bool, say: Callable[[str], None]) -> Recorded:
    if not corpus or not role:
        msg = "Recording files needs --corpus NAME and --role (pretraining or task_training)."
        raise UsageError(msg, hint="e.g. heldout corpus record --model my-model --corpus train --role task_training "
                                   "train.h5ad")
    if role not in ("pretraining", "task_training"):
        raise unknown_choice("corpus role", role, ["pretraining", "task_training"])
    missing = [str(p) for p in inputs if not Path(p).exists()]
    if missing:
        msg = f"Input file(s) not found: {', '.join(missing)}."
        raise UsageError(msg)
    folder = corpus_dir(project.root, model, corpus)
    _existing(folder, replace, None, f"Corpus {model}/{corpus}")
    plan = files_plan(root=project.root, model=model, corpus=corpus, role=role, kind=kind,
                      inputs=[Path(p).resolve() for p in inputs], organism=organism, dataset_id=dataset_id)
    say(f"{model}/{corpus}: recording {len(inputs)} {kind} file(s)")
    manifest = execute(plan, client=client, workers=workers, progress=progress, say=say)
    _track(project, folder)
    entry = {"role": role, "name": corpus, "documented_as": "recorded",
             "description": f"The {kind} file(s) the model was trained on, recorded by heldout corpus record.",
             "sources": [{"kind": "documentation", "ref": f"recorded from {', '.join(Path(p).name for p in inputs)}"}]}
    _point_card(project, model, corpus, folder / MANIFEST, entry, organism=organism)
    return Recorded(corpus=corpus, manifest_path=folder / MANIFEST, manifest=manifest)


def _track(project: Project, folder: Path) -> None:
    """``dvc add`` the recorded data when the project is a DVC repo (so releases push it)."""
    if not (project.root / ".dvc").is_dir():
        return
    from dvc.repo import Repo

    with Repo(str(project.root)) as repo:
        repo.add(str((folder / DATA).relative_to(project.root)))


def _point_card(project: Project, model: str, corpus: str, manifest: Path, new_entry: dict | None,
                organism: str | None = None) -> None:
    """Set ``manifest`` and ``manifest_sha256`` of a corpus in the model's card (creating card or corpus)."""
    path = models_dir(project.registry) / f"{model}.yaml"
    rel = manifest.relative_to(project.root).as_posix()
    if path.exists():
        text = path.read_text(encoding="utf-8")
        if any(line.lstrip().startswith("#") for line in text.splitlines()):
            msg = (f"{path} has comments, which rewriting it would lose; add to corpus {corpus!r}: "
                   f"`manifest: {rel}` and `manifest_sha256: {sha256_file(manifest)}`.")
            raise CardError(msg, hint="Edit the card by hand with those two lines, then run the audit.")
        data = load_yaml(text, path)
    else:
        data = {"schema_version": 1, "name": model, "display_name": model, "family": "user",
                "variants": [model], "organisms": [organism or "homo_sapiens"], "corpora": [],
                "notes": "Created by `heldout corpus record` from the files the model was trained on."}
    corpora = data.setdefault("corpora", [])
    entry = next((c for c in corpora if c.get("name") == corpus), None)
    if entry is None:
        if new_entry is None:
            raise CardError(f"{path} has no corpus {corpus!r}.")
        entry = dict(new_entry)
        corpora.append(entry)
    entry["manifest"] = rel
    entry["manifest_sha256"] = sha256_file(manifest)
    parse_card(data, ModelCard, source=path)  # never write a card that would not load
    write_text_atomic(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110))
