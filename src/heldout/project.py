"""Where a heldout project keeps its declarations and artifacts.

A project is a folder with ``registry/`` (cards), ``schemas/`` (pandera YAML),
``curation/`` (declarative label maps), ``splits/``, ``params.yaml`` and
``dvc.yaml``. Commands look for it upwards from the working directory; the
source checkout heldout was installed from is the fallback, so the bundled
schemas are always found.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from heldout.errors import HeldoutError

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
        return own if own.exists() else _source_checkout() / "schemas"

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


def _source_checkout() -> Path:
    return Path(__file__).resolve().parents[2]


def find_project(start: str | Path | None = None) -> Project:
    """The nearest folder at or above ``start`` (default: cwd) holding ``registry/``."""
    env = os.environ.get("HELDOUT_PROJECT")
    if env:
        return Project(Path(env).resolve())
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / MARKER).is_dir():
            return Project(folder)
    checkout = _source_checkout()
    if (checkout / MARKER).is_dir():
        return Project(checkout)
    msg = f"No heldout project (a folder with {MARKER}/) at or above {here}."
    raise HeldoutError(msg, hint="Run heldout inside a project checkout, or set HELDOUT_PROJECT.")
