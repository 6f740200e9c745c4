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
