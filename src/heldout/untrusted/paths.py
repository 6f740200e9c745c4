"""Paths named by a card stay inside the registry, and are refused before anything outside is touched.

A card can name a file (an h5ad source, a recorded manifest). An attacker's card
would name ``/proc/self/environ``, ``~/.aws/credentials``, ``../outside``, a
committed symlink that points out of the tree, or ``/dev/zero``. The rules:

* the name is a relative POSIX path without ``..``, NUL, a scheme, a backslash or a leading ``~``,
  checked as text, so nothing outside the tree is ever looked at (no existence or hash oracle);
* every symlink on the way is resolved by reading the link inside the tree and computing its target
  as text: a target outside the tree is refused without following it;
* the file is a regular file (not a device, FIFO or directory) within a size limit;
* optionally, it is a file the registry's git history holds (tracked by git, or by a committed
  ``.dvc`` file), so a card cannot point at a maintainer's untracked ``.env`` inside the tree.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path, PurePosixPath

from heldout.untrusted.limits import UntrustedInputError

MAX_LINK_HOPS = 40
PRIVATE_PARTS = frozenset({".git", ".dvc"})  # never a card's to name


def _refuse(what: str, value: str, why: str, fix: str) -> UntrustedInputError:
    return UntrustedInputError(f"{what} {value!r} is refused: {why}.", hint=fix)


def check_relative(value: str, what: str) -> PurePosixPath:
    """``value`` as a relative path that cannot leave its root as written (text only: no filesystem access)."""
    fix = "Name a file inside the registry by a relative path, e.g. sources/my-dataset.h5ad."
    if not isinstance(value, str) or not value.strip():
        raise _refuse(what, str(value), "it is empty", fix)
    if "\x00" in value or "\\" in value:
        raise _refuse(what, value, "it holds a NUL byte or a backslash", fix)
    if "://" in value or value.startswith("~"):
        raise _refuse(what, value, "it is a URL or a home-relative path, not a path inside the registry", fix)
    path = PurePosixPath(value)
    if path.is_absolute() or (len(value) > 1 and value[1] == ":"):
        raise _refuse(what, value, "it is absolute; only files inside the registry can be read", fix)
    if ".." in path.parts:
        raise _refuse(what, value, "it climbs out with '..'", fix)
    if PRIVATE_PARTS & set(path.parts):
        raise _refuse(what, value, "it names git's or DVC's own folder", fix)
    return path


def resolve_inside(root: str | Path, value: str, what: str) -> Path:
    """The real path of ``value`` under ``root``, every symlink resolved as text and kept inside ``root``."""
    base = Path(root).resolve()
    pending = list(check_relative(value, what).parts)
    current = base
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":  # only from a symlink's target
            if current == base:
                raise _refuse(what, value, "a symlink on its way points outside the registry", _LINK_FIX)
            current = current.parent
            continue
        step = current / part
        if step.is_symlink():  # an lstat of a path inside the tree
            hops += 1
            if hops > MAX_LINK_HOPS:
                raise _refuse(what, value, "its symlinks loop", _LINK_FIX)
            target = os.readlink(step)
            if os.path.isabs(target):
                norm = Path(os.path.normpath(target))
                if not norm.is_relative_to(base):
                    raise _refuse(what, value, f"{step.relative_to(base)} is a symlink to outside the registry",
                                  _LINK_FIX)
                current, pending = base, [*norm.relative_to(base).parts, *pending]
            else:
                pending = [*PurePosixPath(target).parts, *pending]
            continue
        current = step
    if PRIVATE_PARTS & set(current.relative_to(base).parts):
        raise _refuse(what, value, "it resolves into git's or DVC's own folder", _LINK_FIX)
    return current


_LINK_FIX = "Commit the file itself inside the registry, not a symlink to it."


def regular_file(path: Path, what: str, max_bytes: int) -> os.stat_result:
    """``path`` (already confined) is a regular file of at most ``max_bytes``; its stat."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        msg = f"{what} {path} does not exist."
        raise UntrustedInputError(msg, hint="Paths in cards are relative to the registry root; commit the file.") \
            from None
    if not stat.S_ISREG(info.st_mode):
        raise _refuse(what, str(path), "it is not a regular file (a device, FIFO or folder)", "Name a file.")
    if info.st_size > max_bytes:
        msg = f"{what} {path} is {info.st_size:,} bytes, over the limit of {max_bytes:,}."
        raise UntrustedInputError(msg, hint="A maintainer can raise the limit for one run with "
                                            "$HELDOUT_LIMIT_FILE_BYTES.")
    return info


def tracked_by_registry(root: str | Path, path: Path) -> bool:
    """Whether git tracks ``path``, or a tracked ``PATH.dvc`` does (True outside a git repository)."""
    root = Path(root).resolve()
    if not (root / ".git").exists():
        return True
    rel = path.relative_to(root).as_posix()
    proc = subprocess.run(["git", "ls-files", "--", rel, f"{rel}.dvc"], cwd=root,
                          capture_output=True, text=True, check=False)
    listed = set(proc.stdout.split("\n"))
    return rel in listed or f"{rel}.dvc" in listed


def confined_file(root: str | Path, value: str, what: str, *, max_bytes: int, tracked: bool = True) -> Path:
    """A card's file name as a readable regular file inside ``root`` (see the module's rules)."""
    path = resolve_inside(root, value, what)
    regular_file(path, what, max_bytes)
    if tracked and not tracked_by_registry(root, path):
        raise _refuse(what, value, "it is not a file of the registry (neither git nor a committed .dvc file "
                                   "tracks it)", "Commit the file (or its .dvc file) in the pull request.")
    return path
