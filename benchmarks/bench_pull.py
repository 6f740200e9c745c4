"""`heldout pull` (dvc get + sha256 verification + cache) vs a plain `dvc get` of the same artifact.

    .venv/bin/python benchmarks/bench_pull.py [--registry PATH] [--repeats 5]

With no --registry, builds one in benchmarks/work/registry (heldout init, dvc repro, release v1).
Each repeat starts from an empty heldout cache and a fresh output path, and runs each tool as its
own command (`heldout pull ...` and `dvc get ...`), so both pay interpreter start-up. The artifact
is the largest of the release (the mouse-brain-10k h5ad). Median wall times are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_curation import REPO, WORK

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def sh(cwd: Path, *cmd: str, env: dict | None = None) -> None:
    subprocess.run(list(cmd), cwd=cwd, check=True, capture_output=True, env=env or ENV)


def registry() -> Path:
    reg = WORK / "registry"
    if (reg / "registry" / "releases" / "v1.yaml").exists():
        return reg
    shutil.rmtree(reg, ignore_errors=True)
    shutil.rmtree(WORK / "registry-dvc-remote", ignore_errors=True)
    sh(REPO, str(BIN / "heldout"), "init", str(reg))
    sh(reg, "dvc", "repro", "-q")
    sh(reg, "git", "add", "-A")
    sh(reg, "git", "commit", "-qm", "build")
    sh(reg, "heldout", "release", "v1")
    return reg


def timed(cmd: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--registry", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    reg = (args.registry or registry()).resolve()
    import yaml

    manifest = yaml.safe_load((reg / "registry" / "releases" / "v1.yaml").read_text())
    artifact = manifest["datasets"]["mouse-brain-10k"]["artifacts"]["h5ad"]
    pulls, gets = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            env = {**ENV, "HELDOUT_CACHE": f"{tmp}/cache"}
            pulls.append(timed(["heldout", "pull", "mouse-brain-10k@v1", "--registry", str(reg)], Path(tmp), env))
            gets.append(timed(["dvc", "get", str(reg), artifact["path"], "--rev", "release/v1", "-o",
                               f"{tmp}/plain.h5ad"], Path(tmp), env))
    pull_s, get_s = statistics.median(pulls), statistics.median(gets)
    print(json.dumps({"artifact": artifact["path"], "size_mb": round(artifact["size"] / 2**20, 1),
                      "heldout_pull_s": round(pull_s, 2), "dvc_get_s": round(get_s, 2),
                      "ratio": round(pull_s / get_s, 2), "repeats": args.repeats}))


if __name__ == "__main__":
    main()
