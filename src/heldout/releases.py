"""Immutable, checksummed releases of every curated artifact, with aliases and retraction.

A release ``VERSION`` is three things, made together:

* ``registry/releases/VERSION.yaml``: the manifest. Every artifact's path,
  sha256 and size; per dataset the census version, dataset ids, donor groups
  and the fingerprint file an audit needs; the code version and DVC remote.
* the artifacts pushed to the DVC remote (``dvc push``), so ``dvc get`` at the
  tag can fetch them;
* a git commit and the tag ``release/VERSION``.

``registry/releases/index.yaml`` lists releases, the ``stable``/``latest``
aliases and retractions (with reason and ``replaced_by``), like Census's
release directory. A manifest is never rewritten; retraction only edits the
index. Every file is written atomically: a crash mid-release leaves the
previous release intact.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import subprocess
from pathlib import Path
from typing import Literal

import pydantic

import heldout
from heldout._files import crashpoint, read_yaml, sha256_file, write_yaml_atomic
from heldout.cards._base import FrozenRecord, parse_card
from heldout.cards.dataset import SourceDataset, load_dataset_card
from heldout.errors import ReleaseError, unknown_choice
from heldout.project import Project, find_project

VERSION_PATTERN = r"^v\d+(\.\d+){0,2}$"
RELEASE_COMMIT = "Release "  # the message prefix of a release commit (recover() recognises it)
log = logging.getLogger(__name__)
TAG_PREFIX = "release/"
Alias = Literal["stable", "latest"]


class Artifact(FrozenRecord):
    path: str
    sha256: str
    size: int


class DatasetRelease(FrozenRecord):
    census_source: str
    census_version: str
    organism: str
    dataset_ids: list[str]
    sources: list[SourceDataset] = pydantic.Field(default_factory=list)
    donors: list[str]  # "dataset_id::donor_id", what a donor-level audit needs
    n_cells: int
    n_donors: int
    n_genes: int
    card_sha256: str
    artifacts: dict[str, Artifact]  # h5ad, lock, fingerprints, validation, split_*, orthologs_*


class CorpusRelease(FrozenRecord):
    """A recorded corpus in a release: its manifest (git) and every data file (DVC), hashed."""

    manifest: Artifact
    files: dict[str, Artifact]  # path relative to the corpus folder -> artifact


class ReleaseManifest(FrozenRecord):
    schema_version: Literal[1] = 1
    version: str
    created: str
    heldout_version: str
    git_commit: str
    dvc_remote: dict[str, str]
    datasets: dict[str, DatasetRelease]
    models: dict[str, Artifact] = pydantic.Field(default_factory=dict)  # model cards as released
    corpora: dict[str, CorpusRelease] = pydantic.Field(default_factory=dict)  # "model/corpus" -> recorded corpus
    changelog: str = ""  # what changed since the previous release, in the releaser's words


class Retraction(FrozenRecord):
    date: str
    reason: str
    replaced_by: str | None = None


class ReleaseEntry(FrozenRecord):
    manifest: str
    git_tag: str
    created: str
    retracted: bool = False
    retraction: Retraction | None = None


class ReleaseIndex(FrozenRecord):
    schema_version: Literal[1] = 1
    releases: dict[str, ReleaseEntry] = pydantic.Field(default_factory=dict)
    aliases: dict[Alias, str] = pydantic.Field(default_factory=dict)

    def resolve(self, version: str) -> str:
        """A concrete version for ``version`` (a version or an alias)."""
        concrete = self.aliases.get(version, version)  # type: ignore[call-overload]
        if concrete not in self.releases:
            raise unknown_choice("release", version, [*self.aliases, *self.releases],
                                 hint="`heldout list` shows every dataset and release.")
        return concrete


def index_path(project: Project) -> Path:
    return project.releases / "index.yaml"


def load_index(project: Project) -> ReleaseIndex:
    path = index_path(project)
    return parse_card(read_yaml(path), ReleaseIndex, source=path) if path.exists() else ReleaseIndex()


def load_manifest(project: Project, version: str) -> ReleaseManifest:
    path = project.releases / f"{version}.yaml"
    return parse_card(read_yaml(path), ReleaseManifest, source=path)


def _git(project: Project, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=project.root, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        msg = f"git {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}"
        raise ReleaseError(msg)
    return proc.stdout.strip()


def _dvc_repo(project: Project):  # noqa: ANN202 - dvc.repo.Repo (imported lazily: slow import)
    from dvc.repo import Repo

    return Repo(str(project.root))


def _require_clean(project: Project) -> None:
    dirty = _git(project, "status", "--porcelain", "--untracked-files=normal")
    if dirty:
        first = "; ".join(dirty.splitlines()[:5])
        msg = f"The working tree is not clean ({first}). A release must be made from committed state."
        raise ReleaseError(msg, hint="Commit (including dvc.lock after `dvc repro`) or stash your changes first.")
    with _dvc_repo(project) as repo:
        stale = repo.status()
    if stale:
        msg = f"The DVC pipeline is not up to date: {', '.join(sorted(stale))} changed."
        raise ReleaseError(msg, hint="Run `dvc repro`, commit dvc.lock, then release.")


def _artifact(project: Project, path: Path) -> Artifact:
    if not path.exists():
        msg = f"Artifact {path} is missing."
        raise ReleaseError(msg, hint="Run `dvc repro` to build every artifact.")
    return Artifact(path=path.relative_to(project.root).as_posix(), sha256=sha256_file(path), size=path.stat().st_size)


def _dataset_release(project: Project, name: str) -> DatasetRelease:
    import json

    import pandas as pd

    from heldout.project import artifact_paths
    from heldout.splits import check_split

    card = load_dataset_card(name, project.registry)
    paths = artifact_paths(project, name)
    h5ad, lock_path, fp_path = paths.h5ad, paths.lock, paths.fingerprints
    report_path = project.root / "data" / "validated" / f"{name}.json"
    artifacts = {"h5ad": _artifact(project, h5ad), "lock": _artifact(project, lock_path),
                 "fingerprints": _artifact(project, fp_path), "genes": _artifact(project, paths.genes),
                 "validation": _artifact(project, report_path)}
    report = json.loads(report_path.read_text())
    if not report.get("ok") or report.get("sha256") != artifacts["h5ad"].sha256:
        msg = f"{h5ad} is not validated (its validation report is failing or for another file)."
        raise ReleaseError(msg, hint="Run `dvc repro` so the validate stage checks the current h5ad.")
    check_split(name, project=project)
    for part in ("assignment.parquet", "manifest.yaml", "cells.parquet"):
        if part != "cells.parquet" or (project.splits / name / part).exists():  # cells: splits since Croissant
            artifacts[f"split_{part.split('.')[0]}"] = _artifact(project, project.splits / name / part)
    if card.orthologs is not None:
        mapped = h5ad.with_name(f"{name}.{card.orthologs.target_organism.value}.h5ad")
        artifacts[f"orthologs_{card.orthologs.target_organism.value}"] = _artifact(project, mapped)
    lock = read_yaml(lock_path)
    fps = pd.read_parquet(fp_path, columns=["dataset_id", "donor_id"])
    donors = sorted((fps["dataset_id"] + "::" + fps["donor_id"]).unique().tolist())
    return DatasetRelease(
        census_source=lock["census_source"], census_version=lock["census_version"], organism=lock["organism"], dataset_ids=lock["dataset_ids"],
        sources=lock.get("sources", []),
        donors=donors, n_cells=lock["n_cells"], n_donors=lock["n_donors"], n_genes=lock["n_genes"],
        card_sha256=sha256_file(project.registry / "datasets" / f"{name}.yaml"), artifacts=artifacts)


def _model_cards(project: Project) -> dict[str, Artifact]:
    from heldout.cards.model import list_model_cards, load_model_card, models_dir

    cards = {}
    for name in list_model_cards(project.registry):
        load_model_card(name, project.registry)  # a release never ships a card that does not load
        cards[name] = _artifact(project, models_dir(project.registry) / f"{name}.yaml")
    return cards


def _recorded_corpora(project: Project) -> dict[str, CorpusRelease]:
    """Every recorded corpus of the project, verified, with its data tracked by DVC (so it is pushed)."""
    from heldout.corpora.manifest import DATA, MANIFEST, CorpusReader

    out = {}
    for manifest in sorted((project.root / "corpora").glob(f"*/*/{MANIFEST}")):
        folder = manifest.parent
        if not (folder / f"{DATA}.dvc").exists():
            msg = f"The recorded corpus {folder} is not tracked by DVC ({DATA}.dvc is missing), so it cannot ship."
            raise ReleaseError(msg, hint=f"Run `dvc add {(folder / DATA).relative_to(project.root)}` and commit the "
                                         ".dvc file.")
        reader = CorpusReader(manifest)  # verifies every file against the manifest
        out[f"{folder.parent.name}/{folder.name}"] = CorpusRelease(
            manifest=_artifact(project, manifest),
            files={f.path: Artifact(path=(folder / f.path).relative_to(project.root).as_posix(), sha256=f.sha256,
                                    size=f.size) for f in reader.manifest.files})
    return out


def _recorded_lists(project: Project) -> dict[str, CorpusRelease]:
    """Every recorded corpus list (corpora/lists/NAME/list.yaml, git-tracked), verified, as ``lists/NAME``."""
    from heldout.corpora.lists import LISTS, RECORD, load_list

    out = {}
    for record in sorted((project.root / LISTS).glob(f"*/{RECORD}")):
        loaded = load_list(project.root, record.relative_to(project.root).as_posix())  # verifies every file
        out[f"lists/{record.parent.name}"] = CorpusRelease(
            manifest=_artifact(project, record),
            files={f.path: _artifact(project, record.parent / f.path) for f in loaded.record.files})
    return out


def _remote(project: Project, remote: str | None) -> dict[str, str]:
    with _dvc_repo(project) as repo:
        config = repo.config
        name = remote or config["core"].get("remote")
        if not name or name not in config["remote"]:
            msg = f"No DVC remote {name!r} is configured (known: {', '.join(config['remote']) or 'none'})."
            raise ReleaseError(msg, hint="Add one: `dvc remote add -d local /path/to/remote`.")
        url = config["remote"][name]["url"]
    if "://" not in url and not os.path.isabs(url):
        url = str((project.root / ".dvc" / url).resolve())
    remote_info = {"name": name, "url": url}
    if "://" not in url:  # a local remote: also where it lies from the registry, so copies and clones find it
        remote_info["relative"] = os.path.relpath(url, project.root)
    return remote_info


def _require_outputs_outside_git(project: Project) -> None:
    """A DVC-tracked output committed to git would ship twice and bypass the remote's checksums."""
    with _dvc_repo(project) as repo:
        outs = sorted({os.path.relpath(o.fs_path, project.root) for o in repo.index.outs})
    tracked = _git(project, "ls-files", "--", *outs).splitlines() if outs else []
    if tracked:
        shown = ", ".join(tracked[:5]) + (f" and {len(tracked) - 5} more" if len(tracked) > 5 else "")
        msg = f"DVC pipeline outputs are committed to git: {shown}."
        raise ReleaseError(msg, hint="Untrack them (`git rm -r --cached PATH`), let DVC list them in .gitignore "
                                     "(`dvc repro` or `dvc commit`), commit, then release.")


def _require_changelog_for_pinned_changes(project: Project, names: list[str], changelog: str) -> None:
    from heldout.released_cards import released_change_problems

    problems = [p for name in names
                for p in released_change_problems(project, name, read_yaml(project.registry / "datasets" /
                                                                           f"{name}.yaml"), changelog)]
    if problems:
        raise ReleaseError("; ".join(problems))


def _artifact_digest(manifest: ReleaseManifest) -> dict[str, str]:
    """Every artifact's sha256 by what it is: the content a release ships, without its dates and commits."""
    out = {f"dataset/{n}/{k}": a.sha256 for n, d in manifest.datasets.items() for k, a in d.artifacts.items()}
    out.update({f"model/{n}": a.sha256 for n, a in manifest.models.items()})
    out.update({f"corpus/{n}/{path}": a.sha256 for n, c in manifest.corpora.items() for path, a in c.files.items()})
    out.update({f"corpus/{n}/manifest": c.manifest.sha256 for n, c in manifest.corpora.items()})
    return out


def _require_changed(project: Project, index: ReleaseIndex, manifest: ReleaseManifest) -> None:
    previous = index.aliases.get("latest")
    if previous and previous in index.releases:
        before = load_manifest(project, previous)
        if _artifact_digest(before) == _artifact_digest(manifest):
            msg = f"Release {manifest.version} would ship exactly what {previous} ships (every artifact's sha256)."
            raise ReleaseError(msg, hint="Change something first, or pass --allow-unchanged to release it anyway.")


def create_release(version: str, *, project: Project | None = None, stable: bool = False,
                   remote: str | None = None, datasets: list[str] | None = None,
                   allow_unchanged: bool = False, changelog: str = "") -> ReleaseManifest:
    """Validate, record, push, commit and tag release ``version``."""
    project = project or find_project()
    if not re.match(VERSION_PATTERN, version):
        msg = f"Release version must look like v1, v1.2 or v1.2.3; got {version!r}."
        raise ReleaseError(msg)
    for action in recover(project):  # a release killed half-way is finished or undone first, and said so
        log.warning("%s", action)
    index = load_index(project)
    if version in index.releases or (project.releases / f"{version}.yaml").exists():
        msg = f"Release {version} already exists; releases are immutable."
        raise ReleaseError(msg, hint="Pick a new version, or retract it with `heldout retract`.")
    _require_clean(project)
    _require_outputs_outside_git(project)
    if not datasets:
        from heldout.pipeline import load_params

        datasets = list(load_params(project).datasets)  # typed: names a card may have, nothing else
    names = datasets
    _require_changelog_for_pinned_changes(project, names, changelog)
    dvc_remote = _remote(project, remote)
    manifest = ReleaseManifest(
        version=version, created=dt.date.today().isoformat(), heldout_version=heldout.__version__,
        git_commit=_git(project, "rev-parse", "HEAD"), dvc_remote=dvc_remote,
        datasets={name: _dataset_release(project, name) for name in names},
        models=_model_cards(project), corpora={**_recorded_corpora(project), **_recorded_lists(project)},
        changelog=changelog)
    if not allow_unchanged:
        _require_changed(project, index, manifest)

    with _dvc_repo(project) as repo:
        repo.push(remote=dvc_remote["name"])
    crashpoint("after-push")
    write_yaml_atomic(project.releases / f"{version}.yaml", manifest.to_dict())
    crashpoint("after-manifest")
    from heldout.croissant import registry_url, write_release

    write_release(project, version, manifest, registry_url(project))  # validated by mlcroissant
    aliases = dict(index.aliases)
    aliases["latest"] = version
    if stable or "stable" not in aliases:
        aliases["stable"] = version
    entry = ReleaseEntry(manifest=f"{version}.yaml", git_tag=f"{TAG_PREFIX}{version}", created=manifest.created)
    new_index = ReleaseIndex(releases={**index.releases, version: entry}, aliases=aliases)
    write_yaml_atomic(index_path(project), new_index.to_dict())
    crashpoint("after-index")
    # The commit is made as an object first, tagged, and only then becomes the branch head: a reader of
    # the branch never sees a release whose tag is missing, and recover() can finish or undo any state.
    _git(project, "add", str(project.releases))
    commit = _git(project, "commit-tree", _git(project, "write-tree"), "-p", "HEAD", "-m",
                  f"{RELEASE_COMMIT}{version}")
    crashpoint("after-commit")
    _git(project, "tag", "-a", entry.git_tag, commit, "-m", f"heldout release {version}")
    crashpoint("after-tag")
    _git(project, "update-ref", "-m", f"heldout release {version}", "HEAD", commit)
    return manifest


def _porcelain(project: Project, path: str) -> list[tuple[str, str]]:
    """(status code, path) of each changed file under ``path`` (``git status --porcelain``)."""
    proc = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", path], cwd=project.root,
                          capture_output=True, text=True, check=True)
    return [(line[:2], line[3:]) for line in proc.stdout.splitlines() if line]


def recover(project: Project) -> list[str]:
    """Finish or undo a release that was killed half-way; return what was done (nothing if all is well).

    A release is made as a commit object, then its tag, then the branch moves to it. Killed after the
    tag, the branch is moved (the release is complete). Killed before, the tag-less commit is left to
    git's garbage collection, the manifest the release wrote is removed and the index restored from
    the branch: the registry is exactly as it was before the release started.
    """
    actions = []
    head = _git(project, "rev-parse", "--verify", "-q", "HEAD")
    for tag in _git(project, "tag", "--list", f"{TAG_PREFIX}*").split():
        commit = _git(project, "rev-parse", f"{tag}^{{commit}}")
        parent = _git(project, "rev-parse", f"{commit}^") if commit != head else ""
        if commit != head and parent == head:  # tagged, but the branch never moved to it
            _git(project, "update-ref", "-m", f"heldout recover {tag}", "HEAD", commit)
            head = commit
            actions.append(f"Release {tag.removeprefix(TAG_PREFIX)} was interrupted after its tag; moved the "
                           "branch to it: it is complete.")
    releases = project.releases.relative_to(project.root).as_posix()
    if not _porcelain(project, releases):
        return actions
    tags = set(_git(project, "tag", "--list", f"{TAG_PREFIX}*").split())
    _git(project, "reset", "-q", "--", releases)  # unstage what a killed release had added
    for code, path in _porcelain(project, releases):
        name = Path(path).name
        if code == "??" and re.match(VERSION_PATTERN, name.removesuffix(".yaml")) \
                and f"{TAG_PREFIX}{name.removesuffix('.yaml')}" not in tags:
            (project.root / path).unlink()
            actions.append(f"Removed {path}: the manifest of a release killed before it was tagged.")
        elif code == "??" and len(parts := Path(path).relative_to(releases).parts) == 3 and parts[0] == "croissant" \
                and f"{TAG_PREFIX}{parts[1]}" not in tags:
            (project.root / path).unlink()
            actions.append(f"Removed {path}: Croissant metadata of a release killed before it was tagged.")
        elif code.strip() == "M" and name == "index.yaml":
            _git(project, "checkout", "-q", "--", path)
            actions.append(f"Restored {path} from git: a killed release had edited it.")
    return actions


def retract_release(version: str, *, reason: str, replaced_by: str | None = None,
                    project: Project | None = None) -> ReleaseIndex:
    """Mark ``version`` retracted (the manifest stays); move aliases off it; commit."""
    project = project or find_project()
    index = load_index(project)
    version = index.resolve(version)
    if replaced_by is not None:
        replaced_by = index.resolve(replaced_by)
    entry = index.releases[version]
    if entry.retracted:
        msg = f"Release {version} is already retracted ({entry.retraction.reason if entry.retraction else ''})."
        raise ReleaseError(msg)
    retraction = Retraction(date=dt.date.today().isoformat(), reason=reason, replaced_by=replaced_by)
    releases = {**index.releases, version: entry.model_copy(update={"retracted": True, "retraction": retraction})}
    live = [v for v, e in releases.items() if not e.retracted]
    aliases = {a: v for a, v in index.aliases.items() if v != version}
    for alias in ("stable", "latest"):
        if alias not in aliases and live:
            aliases[alias] = replaced_by if replaced_by in live else live[-1]
    new_index = ReleaseIndex(releases=releases, aliases=aliases)
    write_yaml_atomic(index_path(project), new_index.to_dict())
    _git(project, "add", str(index_path(project)))
    _git(project, "commit", "-q", "-m", f"Retract release {version}: {reason}")
    return new_index
