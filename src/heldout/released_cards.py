"""Released datasets are immutable: what a card pins cannot change once a release ships it.

The pinned fields are where the cells come from and how they are split: the Census block
(source, version, organism, filters) or the outside source, the primary-data policy, the
labels and the split policy. Changing any of them for a released card must be either a new
card (a new name) or a new release whose changelog names the card; ``heldout lint
--changed-since REF`` and ``heldout release`` both hold that line.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from heldout.project import Project
from heldout.releases import TAG_PREFIX
from heldout.untrusted.yaml_input import load_yaml

PINNED = ("census", "source", "primary_data", "labels", "split")


def _git(root: Path, *args: str) -> str | None:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    return proc.stdout if proc.returncode == 0 else None


def released_in(project: Project, name: str) -> list[str]:
    """The releases (tags) whose manifest ships dataset ``name``, oldest first."""
    tags = (_git(project.root, "tag", "--list", f"{TAG_PREFIX}*", "--sort=creatordate") or "").split()
    out = []
    for tag in tags:
        version = tag.removeprefix(TAG_PREFIX)
        text = _git(project.root, "show", f"{tag}:registry/releases/{version}.yaml")
        if text and name in (load_yaml(text, f"{tag}:registry/releases/{version}.yaml") or {}).get("datasets", {}):
            out.append(version)
    return out


def card_at(project: Project, name: str, rev: str) -> dict | None:
    text = _git(project.root, "show", f"{rev}:registry/datasets/{name}.yaml")
    return load_yaml(text, f"{rev}:registry/datasets/{name}.yaml") if text else None


def _normalised(card: dict) -> dict:
    """The card as its typed record dumps it (defaults filled in), so spelling a default is no change."""
    from heldout.cards.dataset import DatasetCard

    try:
        return DatasetCard.model_validate(card).to_dict()
    except Exception:  # noqa: BLE001 - an unparsable card is compared as written (lint reports it anyway)
        return card


def pinned_changes(before: dict, after: dict) -> list[str]:
    """The pinned fields that differ between two versions of a card (missing counts as a value)."""
    before, after = _normalised(before), _normalised(after)
    return [f for f in PINNED if before.get(f) != after.get(f)]


def changed_files(project: Project, since: str) -> list[str]:
    """Every path added, modified, deleted or renamed since git revision ``since``, committed or not, and
    untracked files (NUL-separated from git, so no name is quoted or skipped)."""
    if _git(project.root, "rev-parse", "--verify", "-q", since) is None:
        from heldout.errors import UsageError

        msg = f"--changed-since {since!r} is not a git revision of {project.root}."
        raise UsageError(msg, hint="Use a branch, tag or commit, e.g. --changed-since origin/main.")
    diff = _git(project.root, "diff", "-z", "--no-renames", "--name-only", since) or ""
    new = _git(project.root, "ls-files", "-z", "--others", "--exclude-standard") or ""
    return sorted({p for p in (diff + new).split("\0") if p})


def card_name_of(path: str, folder: str = "registry/datasets") -> str | None:
    """The card name of ``folder/NAME.yaml``; None for any other path under ``folder`` (a subfolder, another
    suffix, a name outside NAME_PATTERN such as non-ASCII)."""
    import re

    from heldout.cards.dataset import NAME_PATTERN

    prefix = f"{folder}/"
    if not path.startswith(prefix) or not path.endswith(".yaml"):
        return None
    stem = path[len(prefix):-len(".yaml")]
    return stem if "/" not in stem and re.fullmatch(NAME_PATTERN, stem) else None


def changed_cards(project: Project, since: str) -> list[str]:
    """Dataset cards added or modified since git revision ``since`` (committed or not)."""
    paths = [p for p in changed_files(project, since) if p.startswith("registry/datasets/")]
    names = {card_name_of(p) for p in paths if (project.root / p).exists()}
    return sorted(n for n in names if n)


def released_change_problems(project: Project, name: str, current: dict, changelog: str | None = None) -> list[str]:
    """Why the current card may not replace what its releases pinned (empty: it may)."""
    problems = []
    for version in released_in(project, name)[-1:]:  # the latest release that ships it decides
        before = card_at(project, name, f"{TAG_PREFIX}{version}")
        fields = pinned_changes(before or {}, current)
        if fields and not (changelog and name in changelog):
            problems.append(
                f"{', '.join(fields)} changed, but {name} is released in {version}: released datasets are immutable. "
                f"Put the change in a new card (a new name, e.g. {name}-v2), or ship it in a new release whose "
                f"changelog says so (`heldout release VERSION --changelog \"{name}: what changed and why\"`)")
    return problems
