"""Create a new registry repository: git + DVC + heldout's registry template.

``heldout init DIR`` copies the registry template (cards, schemas, curation
maps, ``params.yaml``, ``dvc.yaml``, contributing guide and pull-request
template; see heldout.template: an installed wheel carries them), writes the CI
that checks dataset pull requests (``ci/check-dataset-pr``, a GitHub Actions
workflow that calls it, and ``ci/requirements.txt`` pinning this heldout), runs
``git init`` and ``dvc init``, configures a local directory DVC remote (any DVC
remote works: change it with ``dvc remote modify``), and makes the first commit.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import heldout
from heldout.errors import ReleaseError
from heldout.project import Project
from heldout.template import EXECUTABLE, SCAFFOLD, TEMPLATE_DIRS, TEMPLATE_FILES, scaffold_file, template_root

GITIGNORE = ("/mirror\n/data\n/orthologs\n/results\n/.heldout\n/heldout-pr-summary.md\n.venv/\n__pycache__/\n"
             "# heldout's cache of verified corpus files (size, mtime, sha256): local state, never shipped\n.verified.json\n")


def _run(cwd: Path, *cmd: str) -> None:
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        msg = f"`{' '.join(cmd)}` failed in {cwd}: {proc.stderr.strip() or proc.stdout.strip()}"
        raise ReleaseError(msg)


def init_registry(path: str | Path, *, remote: str | None = None, template: Path | None = None) -> Project:
    """Scaffold a registry repo at ``path`` with a default DVC remote; return it as a Project.

    ``template``: a folder laid out like the registry template (default: the one heldout carries)."""
    dest = Path(path).resolve()
    if dest.exists() and any(dest.iterdir()):
        msg = f"{dest} exists and is not empty."
        raise ReleaseError(msg, hint="Choose a new folder for the registry.")
    source = Path(template) if template else template_root()
    dest.mkdir(parents=True, exist_ok=True)
    for item in (*TEMPLATE_DIRS, *TEMPLATE_FILES):
        if (source / item).is_dir():
            shutil.copytree(source / item, dest / item)
        elif (source / item).exists():
            (dest / item).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / item, dest / item)
    for name, target in SCAFFOLD.items():
        (dest / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(scaffold_file(name), dest / target)
        (dest / target).chmod(0o755 if name in EXECUTABLE else 0o644)
    (dest / "ci" / "requirements.txt").write_text(f"# the heldout that checks this registry's pull requests\n"
                                                 f"heldout=={heldout.__version__}\n")
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
