"""Pull released datasets: resolve ``NAME@VERSION``, fetch through DVC, verify, cache.

Artifacts are fetched with ``dvc get`` semantics (``dvc.repo.Repo.get`` at the
release's git tag, from the DVC remote recorded in its manifest unless told
otherwise), then checked against the manifest's sha256. The cache is content
addressed (``<cache>/objects/<sha256>``) and every pull re-hashes the cached
file: a corrupted cache is an error, never a silent pass.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from heldout._files import atomic_path, read_yaml, sha256_file
from heldout.cards._base import parse_card
from heldout.errors import ChecksumMismatch, ReleaseError, UsageError, unknown_choice
from heldout.project import find_project
from heldout.releases import TAG_PREFIX, Artifact, ReleaseEntry, ReleaseIndex, ReleaseManifest
from heldout.untrusted.yaml_input import load_yaml

log = logging.getLogger(__name__)
INDEX = "registry/releases/index.yaml"


def cache_root() -> Path:
    base = os.environ.get("HELDOUT_CACHE") or Path.home() / ".cache" / "heldout"
    return Path(base) / "objects"


def parse_ref(ref: str) -> tuple[str, str]:
    """``NAME@VERSION`` -> (NAME, VERSION); ``NAME`` alone means ``stable``."""
    name, _, version = ref.partition("@")
    if not name or (("@" in ref) and not version):
        msg = f"Bad dataset reference {ref!r}: expected NAME@VERSION (e.g. glioma-tirosh2016@v1) or NAME."
        raise UsageError(msg)
    return name, version or "stable"


def _registry(registry: str | Path | None) -> str:
    return str(registry) if registry else str(find_project().root)


def _read_local(registry: Path, path: str, rev: str | None) -> str:
    """A git-tracked file of a local registry: the working tree (no rev) or ``git show rev:path``.

    The same result as ``dvc.api.read`` for files git tracks, without opening a DVC repo.
    """
    if rev is None:
        return (registry / path).read_text()
    proc = subprocess.run(["git", "-C", str(registry), "show", f"{rev}:{path}"], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise FileNotFoundError(proc.stderr.strip())
    return proc.stdout


def _read(registry: str, path: str, rev: str | None = None) -> dict:
    return load_yaml(_read_text(registry, path, rev), f"{path}@{rev}" if rev else path)


def _read_text(registry: str, path: str, rev: str | None = None) -> str:
    local = Path(registry)
    if local.is_dir() and not (local / ".git").exists():
        msg = f"{registry} is a folder but not a git repository, so it holds no heldout releases."
        raise ReleaseError(msg, hint="Pass --registry with a registry's folder or git URL (one made by "
                                     "`heldout init`), or set HELDOUT_PROJECT.")
    try:
        if (local / ".git").exists():
            return _read_local(local, path, rev)
        import dvc.api

        return dvc.api.read(path, repo=registry, rev=rev)
    except FileNotFoundError:
        msg = f"{registry} has no {path}{f' at {rev}' if rev else ''}."
        raise ReleaseError(msg, hint="Is this a heldout registry with at least one release?") from None
    except Exception as exc:  # dvc/scmrepo raise many types for a bad repo or rev
        msg = f"Cannot read {path} from registry {registry}{f' at {rev}' if rev else ''}: {exc}"
        raise ReleaseError(msg) from None


def read_index(registry: str | Path | None = None) -> ReleaseIndex:
    """The committed release index: a release killed before its commit is invisible to readers."""
    reg = _registry(registry)
    rev = "HEAD" if (Path(reg) / ".git").exists() else None
    return parse_card(_read(reg, INDEX, rev=rev), ReleaseIndex, source=f"{reg}:{INDEX}")


def read_manifest(version: str, registry: str | Path | None = None) -> ReleaseManifest:
    reg = _registry(registry)
    path = f"registry/releases/{version}.yaml"
    return parse_card(_read(reg, path, rev=f"{TAG_PREFIX}{version}"), ReleaseManifest, source=f"{reg}:{path}")


@dataclass(frozen=True, kw_only=True)
class Pulled:
    name: str
    version: str
    path: Path
    artifact: Artifact
    manifest: ReleaseManifest
    retracted: bool
    artifact_name: str = "h5ad"


def resolve(ref: str, registry: str | Path | None = None) -> tuple[str, str, ReleaseIndex, ReleaseManifest]:
    name, requested = parse_ref(ref)
    index = read_index(registry)
    version = index.resolve(requested)
    if requested != version:
        log.info("%s resolved to %s; pin %s@%s for reproducibility.", ref, version, name, version)
    manifest = read_manifest(version, registry)
    if name not in manifest.datasets:
        raise unknown_choice(f"dataset in release {version}", name, manifest.datasets)
    return name, version, index, manifest


def from_croissant(ref: str, registry: str | Path | None) -> tuple[str, str | Path | None]:
    """``NAME@VERSION`` as is; a heldout Croissant file or URL (``.json``) as its ``NAME@VERSION`` and registry."""
    if ref.endswith((".json", ".jsonld")) or "://" in ref:
        from heldout.croissant import reference

        name, version, where = reference(ref)
        return f"{name}@{version}", registry or where
    return ref, registry


def pull(ref: str, *, registry: str | Path | None = None, artifact: str = "h5ad",
         remote_url: str | None = None) -> Pulled:
    """Fetch one artifact of a released dataset into the cache, verified by sha256.

    ``ref`` is ``NAME@VERSION`` (or ``NAME``: the stable release), or the Croissant file or URL of a release."""
    ref, registry = from_croissant(ref, registry)
    name, version, index, manifest = resolve(ref, registry)
    entry = index.releases[version]
    if entry.retracted:
        warn_retracted(_registry(registry), version, entry)
    artifacts = manifest.datasets[name].artifacts
    if artifact not in artifacts:
        raise unknown_choice("artifact", artifact, artifacts)
    record = artifacts[artifact]
    cached = fetch_verified(record, registry=registry, version=version, manifest=manifest, remote_url=remote_url,
                            what=f"{name}@{version} {artifact}")
    return Pulled(name=name, version=version, path=cached, artifact=record, manifest=manifest,
                  retracted=entry.retracted, artifact_name=artifact)


_WARNED: set[tuple[str, str]] = set()


def warn_retracted(registry: str, version: str, entry: ReleaseEntry) -> None:
    """Say once per process and release, in plain words, that a release is retracted and what replaces it."""
    if (registry, version) in _WARNED:
        return
    _WARNED.add((registry, version))
    r = entry.retraction
    why = f" on {r.date}: {r.reason}" if r else ""
    instead = f" Use {r.replaced_by} instead." if r and r.replaced_by else ""
    log.warning("Release %s is retracted%s.%s Results on it are marked as such.", version, why, instead)


def fetch_verified(record: Artifact, *, registry: str | Path | None, version: str, manifest: ReleaseManifest,
                   remote_url: str | None = None, what: str) -> Path:
    """Any released artifact, in the content-addressed cache, verified by its sha256."""
    cached = cache_root() / record.sha256[:2] / record.sha256
    if cached.exists():
        try:
            _verify(cached, record, f"cached {what}")
            return cached
        except ChecksumMismatch:  # a damaged cache entry: fetch it again (verified), and say so
            log.warning("The cached copy of %s was corrupt (%s); fetching it again from the remote.", what, cached)
            cached.unlink()
    reg = _registry(registry)
    _fetch(reg, record, f"{TAG_PREFIX}{version}", cached, remote_url or resolve_remote(reg, manifest))
    return cached


def resolve_remote(registry: str, manifest: ReleaseManifest) -> str | None:
    """Where a release's DVC objects are: the recorded remote if it is reachable, else the same place relative
    to this registry (a copied or cloned registry with its remote beside it), else the registry's own config."""
    url = manifest.dvc_remote.get("url")
    if url and ("://" in url or Path(url).exists()):
        return url
    relative = manifest.dvc_remote.get("relative")
    root = Path(registry.removeprefix("file://")) if "://" not in registry or registry.startswith("file://") \
        else None
    if relative and root is not None and (root / relative).exists():
        return str((root / relative).resolve())
    return None  # dvc resolves the remote named in the registry's .dvc/config


def release_models(version: str, registry: str | Path | None = None) -> list:  # list[ModelCard]
    """The model cards as released in ``version`` (read at the release tag, sha256-checked)."""
    from heldout.cards.model import ModelCard

    concrete = read_index(registry).resolve(version)
    manifest = read_manifest(concrete, registry)
    cards = []
    for name, record in sorted(manifest.models.items()):
        text = _read_text(_registry(registry), record.path, rev=f"{TAG_PREFIX}{concrete}")
        if hashlib.sha256(text.encode()).hexdigest() != record.sha256:
            msg = f"The model card {record.path} at release {concrete} does not match its sha256 in the release."
            raise ChecksumMismatch(msg, hint="The registry's history was rewritten; do not trust this release.")
        cards.append(parse_card(load_yaml(text, record.path), ModelCard, source=f"{record.path}@{concrete}"))
    return cards


def materialize_corpora(version: str, registry: str | Path | None = None, *, remote_url: str | None = None) -> Path:
    """A folder holding every recorded corpus of ``version`` (``corpora/<model>/<corpus>/...``), verified.

    Files are fetched through DVC into the content-addressed cache and copied
    into ``<cache>/releases/<registry digest>/<version>/``; audits of the release
    read model cards' ``manifest:`` paths relative to it.
    """
    concrete = read_index(registry).resolve(version)
    manifest = read_manifest(concrete, registry)
    digest = hashlib.sha256(_registry(registry).encode()).hexdigest()[:16]
    root = cache_root().parent / "releases" / digest / concrete
    for key, corpus in manifest.corpora.items():
        records = [corpus.manifest, *corpus.files.values()]
        for record in records:
            target = root / record.path
            if target.exists() and sha256_file(target) == record.sha256:
                continue
            cached = fetch_verified(record, registry=registry, version=concrete, manifest=manifest,
                                    remote_url=remote_url, what=f"corpus {key} file {record.path}")
            with atomic_path(target) as staged:
                shutil.copyfile(cached, staged)
    return root


def _fetch(registry: str, record: Artifact, rev: str, cached: Path, remote_url: str | None) -> None:
    from dvc.repo import Repo

    with tempfile.TemporaryDirectory(prefix="heldout-pull-") as tmp:
        out = Path(tmp) / Path(record.path).name
        try:
            Repo.get(registry, record.path, out=str(out), rev=rev,
                     remote_config={"url": remote_url} if remote_url else None)
        except Exception as exc:  # dvc raises many types (missing remote, missing object, bad rev)
            msg = f"dvc get of {record.path} at {rev} from {registry} failed: {exc}"
            raise ReleaseError(msg, hint="Check that the DVC remote in the release manifest is reachable "
                                         "(or pass --remote-url).") from None
        _verify(out, record, f"fetched {record.path}")
        with atomic_path(cached) as staged:
            shutil.move(out, staged)


def _verify(path: Path, record: Artifact, what: str) -> None:
    actual = sha256_file(path)
    if actual != record.sha256:
        msg = f"Checksum mismatch for {what} ({path}): sha256 {actual}, the release manifest says {record.sha256}."
        raise ChecksumMismatch(msg, hint="The DVC remote holds a corrupt copy: re-push it from the registry "
                                         "(`dvc push`), or report it to the registry's maintainers.")


def load(ref: str, *, registry: str | Path | None = None, split: str | None = None,
         **kwargs: object):  # noqa: ANN201 - AnnData
    """A released dataset as ``anndata.AnnData`` that describes itself: pulled and verified.

    ``obs["split"]`` holds each cell's split (``split="test"`` keeps only those cells) and
    ``uns["heldout"]`` the provenance: name, release and whether it is retracted, the h5ad's
    sha256, the card, the lock, the Census source and version, and the split seed.
    """
    ref, registry = from_croissant(ref, registry)
    return describe(pull(ref, registry=registry, **kwargs), registry=registry, split=split)  # type: ignore[arg-type]


def write_pulled(pulled: Pulled, out: str | Path, *, registry: str | Path | None = None,
                 split: str | None = None) -> Path:
    """Write a pulled artifact to ``out`` atomically; the h5ad as the AnnData that describes itself."""
    import shutil

    from heldout._files import atomic_path

    with atomic_path(out) as tmp:
        if pulled.artifact_name == "h5ad":
            describe(pulled, registry=registry, split=split).write_h5ad(tmp)
        else:
            shutil.copyfile(pulled.path, tmp)
    return Path(out)


def describe(pulled: Pulled, *, registry: str | Path | None = None, split: str | None = None):  # noqa: ANN201
    """The pulled h5ad with its split (obs) and provenance (uns["heldout"]); see ``load``."""
    import anndata as ad
    import pandas as pd

    adata = ad.read_h5ad(pulled.path)
    release = pulled.manifest.datasets[pulled.name]
    index = read_index(registry)
    entry = index.releases[pulled.version]
    assignment = pd.read_parquet(_artifact_path(pulled, "split_assignment", registry))
    by_cell = assignment.set_index("observation_joinid")["split"].astype(str)
    adata.obs["split"] = pd.Categorical(by_cell.reindex(adata.obs_names).to_numpy())
    split_manifest = read_yaml(_artifact_path(pulled, "split_manifest", registry))
    lock = read_yaml(_artifact_path(pulled, "lock", registry))
    card = _read(_registry(registry), f"registry/datasets/{pulled.name}.yaml", rev=f"{TAG_PREFIX}{pulled.version}")
    adata.uns["heldout"] = _plain({
        "name": pulled.name, "release": pulled.version, "retracted": bool(entry.retracted),
        "retraction": entry.retraction.reason if entry.retraction else "",
        "h5ad_sha256": pulled.artifact.sha256, "census_source": release.census_source,
        "census_version": release.census_version, "split_seed": split_manifest.get("seed"),
        "card": card, "lock": lock, "heldout_version": pulled.manifest.heldout_version})
    if split is not None:
        known = sorted(set(adata.obs["split"].astype(str)))
        if split not in known:
            raise unknown_choice("split", split, known)
        adata = adata[adata.obs["split"] == split].copy()
    return adata


def _artifact_path(pulled: Pulled, artifact: str, registry: str | Path | None) -> Path:
    record = pulled.manifest.datasets[pulled.name].artifacts[artifact]
    return fetch_verified(record, registry=registry, version=pulled.version, manifest=pulled.manifest,
                          what=f"{pulled.name}@{pulled.version} {artifact}")


def _plain(value: object) -> object:
    """h5ad-storable uns: no None (empty string instead), nested dicts and lists of plain values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value] if all(not isinstance(v, dict) for v in value) else \
            {str(i): _plain(v) for i, v in enumerate(value)}
    return "" if value is None else value


@dataclass(frozen=True)
class ReleaseRow:
    dataset: str
    version: str
    aliases: str
    n_cells: int
    n_donors: int
    census: str
    status: str


def list_releases(registry: str | Path | None = None) -> list[ReleaseRow]:
    index = read_index(registry)
    rows = []
    for version, entry in index.releases.items():
        manifest = read_manifest(version, registry)
        aliases = ",".join(a for a, v in index.aliases.items() if v == version)
        status = f"retracted: {entry.retraction.reason}" if entry.retracted and entry.retraction else "ok"
        for name, ds in manifest.datasets.items():
            source = ds.census_version if not ds.census_version.startswith("sha256:") else ds.census_version[7:15]
            rows.append(ReleaseRow(name, version, aliases, ds.n_cells, ds.n_donors, f"{ds.census_source} {source}",
                                   status))
    return sorted(rows, key=lambda r: (r.dataset, r.version))


def show(ref: str, registry: str | Path | None = None) -> dict:
    """Card (as released), lock and counts of ``NAME@VERSION``."""
    name, version, index, manifest = resolve(ref, registry)
    reg = _registry(registry)
    rev = f"{TAG_PREFIX}{version}"
    return {"dataset": name, "version": version, "retracted": index.releases[version].retracted,
            "card": _read(reg, f"registry/datasets/{name}.yaml", rev=rev),
            "lock": read_yaml(pull(ref, registry=registry, artifact="lock").path),
            "release": manifest.datasets[name].to_dict()}
