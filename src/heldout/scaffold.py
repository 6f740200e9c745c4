"""Create a new registry repository: git + DVC + the declarations of this project.

``heldout init DIR`` copies the cards, schemas, curation maps, ``params.yaml``
and ``dvc.yaml`` from the current project, runs ``git init`` and ``dvc init``,
configures a local directory DVC remote (any DVC remote works: change it with
``dvc remote modify``), and makes the first commit.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from heldout.errors import ReleaseError
from heldout.project import Project, find_project

COPIED = ("registry/datasets", "registry/models", "registry/tasks", "schemas", "curation", "params.yaml",
          "dvc.yaml", "CONTRIBUTING.md")
GITIGNORE = "/mirror\n/data\n/orthologs\n/results\n.venv/\n__pycache__/\n"


def _run(cwd: Path, *cmd: str) -> None:
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        msg = f"`{' '.join(cmd)}` failed in {cwd}: {proc.stderr.strip() or proc.stdout.strip()}"
        raise ReleaseError(msg)


def init_registry(path: str | Path, *, remote: str | None = None, template: Project | None = None) -> Project:
    """Scaffold a registry repo at ``path`` with a default DVC remote; return it as a Project."""
    dest = Path(path).resolve()
    if dest.exists() and any(dest.iterdir()):
        msg = f"{dest} exists and is not empty."
        raise ReleaseError(msg, hint="Choose a new folder for the registry.")
    template = template or find_project(fallback=True)
    dest.mkdir(parents=True, exist_ok=True)
    for item in COPIED:
        src = template.root / item
        if src.is_dir():
            shutil.copytree(src, dest / item)
        elif src.exists():
            (dest / item).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / item)
    (dest / "registry" / "releases").mkdir(parents=True, exist_ok=True)
    (dest / "registry" / "releases" / ".gitkeep").touch()
    (dest / "splits").mkdir(exist_ok=True)
    (dest / "splits" / ".gitkeep").touch()
    (dest / ".gitignore").write_text(GITIGNORE)
    remote_url = remote or str(dest.parent / f"{dest.name}-dvc-remote")
    _run(dest, "git", "init", "-q", "-b", "main")
    dvc = (sys.executable, "-m", "dvc")  # the dvc of this environment, on PATH or not
    _run(dest, *dvc, "init", "-q")
    _run(dest, *dvc, "config", "core.analytics", "false")
    _run(dest, *dvc, "remote", "add", "-d", "local", remote_url)
    _run(dest, "git", "add", "-A")
    _run(dest, "git", "commit", "-q", "-m", "New heldout registry")
    return Project(dest)
