"""Where a heldout project keeps its declarations and artifacts.

A project is a folder with ``registry/`` (cards), ``schemas/`` (pandera YAML),
``curation/`` (declarative label maps), ``splits/``, ``params.yaml`` and
``dvc.yaml``. Commands look for it upwards from the working directory; for
read-only uses the registry template heldout carries (heldout.template: the
wheel's copy, or the source checkout) is the fallback, so the bundled schemas
and task cards are always found.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from heldout.errors import HeldoutError
from heldout.template import template_root

MARKER = "registry"


@dataclass(frozen=True)
class Project:
    root: Path

    def __post_init__(self) -> None:  # Project("path/as/str") works too
        object.__setattr__(self, "root", Path(self.root))

    @property
    def registry(self) -> Path:
        return self.root / "registry"

    @property
    def schemas(self) -> Path:
        own = self.root / "schemas"
        return own if own.exists() else template_root() / "schemas"

    @property
    def curation(self) -> Path:
        return self.root / "curation"

    @property
    def splits(self) -> Path:
        return self.root / "splits"

    @property
    def curated(self) -> Path:
        """Curated h5ads and their locks (DVC outputs)."""
        return self.root / "data" / "curated"

    @property
    def releases(self) -> Path:
        return self.registry / "releases"


def find_project(start: str | Path | None = None, *, fallback: bool = False) -> Project:
    """The nearest folder at or above ``start`` (default: cwd) holding ``registry/``, or $HELDOUT_PROJECT.

    ``fallback``: for read-only uses that need only the bundled cards and schemas (an audit of a
    release, task cards), the registry template heldout carries stands in. Commands that write
    never fall back: outside a registry they say how to point at one.
    """
    env = os.environ.get("HELDOUT_PROJECT")
    if env:
        return Project(Path(env).resolve())
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / MARKER).is_dir():
            return Project(folder)
    template = template_root()
    if fallback and (template / MARKER).is_dir():
        return Project(template)
    msg = f"No heldout registry (a folder with {MARKER}/) at or above {here}."
    raise HeldoutError(msg, hint="cd into a registry, set HELDOUT_PROJECT=/path/to/registry, pass --registry where "
                                 "the command has it, or create one with `heldout init DIR`.")


def bundled_schemas() -> Path:
    """The pandera schemas: the registry's own if there is one, else those heldout ships."""
    try:
        return find_project().schemas
    except HeldoutError:
        return template_root() / "schemas"


class CuratedPaths(NamedTuple):
    """The files curation writes for one card (all DVC outputs)."""

    h5ad: Path
    lock: Path
    fingerprints: Path  # per-cell content signatures (exact fingerprints, sketches), ids and donors
    genes: Path  # the genes the source datasets measured (what content matching compares over)


def artifact_paths(project: Project, name: str) -> CuratedPaths:
    """Where curation writes card ``name``'s files (a light import: splits, audits and releases need only paths)."""
    folder = project.curated
    return CuratedPaths(folder / f"{name}.h5ad", folder / f"{name}.lock.yaml", folder / f"{name}.fingerprints.parquet",
                        folder / f"{name}.genes.parquet")
