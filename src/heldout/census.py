"""One code path to the real CELLxGENE Census and to the local mini-Census.

``open_census(version, source="census")`` calls
``cellxgene_census.open_soma(census_version=...)`` (network, S3).
``open_census(version, source="mirror")`` resolves ``version`` (a date or the
``stable``/``latest`` alias) in the mirror's own ``release.json``, the same
format as Census's release directory, and calls
``cellxgene_census.open_soma(uri=...)``. Either way the caller gets the same
``tiledbsoma.Collection`` and everything downstream is identical.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import cellxgene_census
import requests
import tiledbsoma as soma

from heldout.errors import SourceError, unknown_choice

log = logging.getLogger(__name__)

SourceKind = Literal["mirror", "census", "h5ad", "soma"]  # h5ad/soma: staged by heldout.sources.stage
ALIASES = ("stable", "latest")

# Streaming: small read buffers and a memory budget bound the peak RSS of
# axis_query(...).X(...).tables() regardless of the number of cells.
STREAMING_TILEDB_CONFIG = {
    "soma.init_buffer_bytes": 16 * 2**20,
    "py.init_buffer_bytes": 16 * 2**20,
    "sm.mem.total_budget": 256 * 2**20,
}


def default_mirror_root() -> Path:
    """``$HELDOUT_MIRROR`` if set, else ``./mirror`` (where ``heldout mirror build`` writes)."""
    return Path(os.environ.get("HELDOUT_MIRROR", "mirror")).resolve()


@dataclass(frozen=True, kw_only=True)
class ResolvedCensus:
    """A concrete Census version: what a lock records."""

    source: SourceKind
    requested: str
    version: str
    uri: str | None  # None for the real Census (resolved by cellxgene_census)
    lts: bool | None = None
    retracted: bool = False


def resolve_census(version: str, *, source: SourceKind = "mirror", mirror_root: str | Path | None = None) -> ResolvedCensus:
    """Resolve ``version`` (date or alias) to a concrete version and location."""
    if source not in get_args(SourceKind):
        raise unknown_choice("census source", source, get_args(SourceKind))
    if source == "census":
        if version in ALIASES:
            desc = cellxgene_census.get_census_version_description(version)
            return ResolvedCensus(source=source, requested=version, version=desc["release_build"], uri=None,
                                  lts=desc.get("flags", {}).get("lts"))
        return ResolvedCensus(source=source, requested=version, version=version, uri=None)
    root = Path(mirror_root) if mirror_root else default_mirror_root()
    directory = _read_directory(root)
    resolved = directory.get(version)
    seen = set()
    while isinstance(resolved, str) and resolved not in seen:  # alias -> date (aliases may chain)
        seen.add(resolved)
        resolved_name, resolved = resolved, directory.get(resolved)
    if not isinstance(resolved, dict):
        dated = [k for k, v in directory.items() if isinstance(v, dict)]
        raise unknown_choice("mirror Census version", version, [*ALIASES, *dated],
                             hint=f"Build it with `heldout mirror build --version {version}` or pick one listed.")
    concrete = resolved["release_build"]
    if version in ALIASES:
        log.info("Census version %r resolved to %s; pin census_version=%r for reproducibility.",
                 version, concrete, concrete)
    flags = resolved.get("flags", {})
    if flags.get("retracted"):
        log.warning("Census version %s is retracted: %s", concrete, resolved.get("retraction"))
    soma_uri = root / resolved["soma"]["relative_uri"]
    return ResolvedCensus(source=source, requested=version, version=concrete, uri=str(soma_uri),
                          lts=flags.get("lts"), retracted=bool(flags.get("retracted")))


def _read_directory(root: Path) -> dict:
    path = root / "release.json"
    if not path.exists():
        msg = f"No mini-Census at {root} (missing {path.name})."
        raise SourceError(msg, hint="Run `heldout mirror build` first, or set HELDOUT_MIRROR / --mirror to its folder.")
    try:
        directory = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        msg = f"The mirror's release directory {path} is not valid JSON: {exc}."
        raise SourceError(msg, hint="Rebuild the mirror with `heldout mirror build`.") from None
    if not isinstance(directory, dict):
        msg = f"The mirror's release directory {path} must be a JSON object, got {type(directory).__name__}."
        raise SourceError(msg)
    return directory


def streaming_context() -> soma.SOMATileDBContext:
    """The cellxgene_census default context with bounded read buffers."""
    return cellxgene_census.get_default_soma_context(tiledb_config=STREAMING_TILEDB_CONFIG)


REQUIRED_KEYS = {"census_info": ("summary", "datasets", "organisms"), "census_data": ()}


@contextlib.contextmanager
def open_census(version: str = "stable", *, source: SourceKind = "mirror", mirror_root: str | Path | None = None,
                context: soma.SOMATileDBContext | None = None) -> Iterator[soma.Collection]:
    """Open a Census (real or mirror) as a ``tiledbsoma.Collection``; close it on exit."""
    resolved = resolve_census(version, source=source, mirror_root=mirror_root)
    census = open_resolved(resolved, context=context)
    try:
        yield census
    finally:
        census.close()


def open_resolved(resolved: ResolvedCensus, *, context: soma.SOMATileDBContext | None = None) -> soma.Collection:
    ctx = context or streaming_context()
    try:
        if resolved.source == "census":
            census = cellxgene_census.open_soma(census_version=resolved.version, context=ctx)
        else:
            if not Path(resolved.uri).exists():
                msg = f"Mirror version {resolved.version} is listed but its SOMA folder {resolved.uri} is missing."
                raise SourceError(msg, hint="Rebuild it: delete its entry or folder and run `heldout mirror build`.")
            census = cellxgene_census.open_soma(uri=resolved.uri, context=ctx)
    except SourceError:
        raise
    except requests.exceptions.ConnectionError:
        msg = (f"The real CELLxGENE Census ({resolved.version}) is not reachable from this machine "
               "(no network route to its release directory).")
        raise SourceError(msg, hint="Run where the internet is reachable, or use a local mirror (source: mirror).") from None
    except Exception as exc:  # tiledbsoma raises many types for a damaged store
        msg = f"Cannot open Census {resolved.version} ({resolved.uri or 'S3'}): {type(exc).__name__}: {exc}"
        raise SourceError(msg, hint="For the mirror: rebuild it with `heldout mirror build`.") from None
    missing = _missing_members(census)
    if missing:
        census.close()
        msg = f"Census {resolved.version} at {resolved.uri} is incomplete: missing {', '.join(missing)}."
        raise SourceError(msg, hint="The mirror is corrupt or partial; rebuild it with `heldout mirror build`.")
    return census


def _missing_members(census: soma.Collection) -> list[str]:
    """Required members that are not listed or cannot be opened (a partial copy)."""
    missing = []
    for key, subs in REQUIRED_KEYS.items():
        for sub in subs or (None,):
            name = f"{key}/{sub}" if sub else key
            try:
                member = census[key]
                if sub:
                    member[sub]
            except Exception:  # noqa: BLE001 - KeyError or tiledbsoma DoesNotExistError
                missing.append(name)
    return missing


def experiment(census: soma.Collection, organism: str) -> soma.Experiment:
    """``census_data/<organism>`` with a clear error for an organism the source lacks."""
    data = census["census_data"]
    if organism not in data:
        raise unknown_choice("organism", organism, list(data.keys()))
    return data[organism]
