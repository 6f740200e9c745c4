"""Helpers shared by tests: run a command with this environment's tools on PATH."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def run_cmd(cwd: Path, *cmd: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    full_env.pop("HELDOUT_PROJECT", None)
    full_env.pop("HELDOUT_MIRROR", None)
    return subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, env=full_env, check=False)


def run_ok(cwd: Path, *cmd: str) -> str:
    proc = run_cmd(cwd, *cmd)
    assert proc.returncode == 0, f"{cmd}: {proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(marker: str) -> str:
    """The first ```bash block after the line ``<!-- run: MARKER ...``: README commands tests run as written.

    .ci/wheel-check extracts the same block with awk, so the README, the test and CI run one text.
    """
    lines = README.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"<!-- run: {marker}"))
    opening = next(i for i in range(start, len(lines)) if lines[i].startswith("```bash"))
    closing = next(i for i in range(opening + 1, len(lines)) if lines[i].startswith("```"))
    return "\n".join(lines[opening + 1:closing]) + "\n"


def run_script(cwd: Path, script: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a bash script (errexit, pipefail) with this environment's tools first on PATH."""
    return run_cmd(cwd, "bash", "-euo", "pipefail", "-c", script, env=env)


CHR21 = "tests/_data/10x_data/1.2.0/filtered_gene_bc_matrices/hg19_chr21/"


def chr21_pbmc():  # noqa: ANN201 - AnnData
    """Real cells nobody here wrote: scanpy's 10x v1.2.0 hg19 chr21 PBMC matrix (12 cells x 343 gene
    symbols) from the pinned scanpy sdist, as scanpy reads it."""
    import scanpy as sc

    from heldout.mirror import pypi

    files = [pypi.extract(pypi.SCANPY_SDIST, CHR21 + f) for f in ("barcodes.tsv", "genes.tsv", "matrix.mtx")]
    return sc.read_10x_mtx(files[0].parent)
