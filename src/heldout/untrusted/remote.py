"""URLs named by a card: checked for shape by anyone, fetched only by a maintainer, from allowed hosts.

The PR check never fetches: a card's URL is checked for its shape (scheme,
host, no credentials or odd ports) and reported as "fetched by the maintainer's
``heldout curate``". Curation fetches it only when its host is on the
registry's allow-list (``params.yaml``: ``sources.allowed_hosts``), streams at
most the file-size limit, hashes as it writes, and files the copy in the cache
under the hash it verified, never under the hash a card claims.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from heldout.errors import ChecksumMismatch, HeldoutError
from heldout.untrusted.limits import Limits, UntrustedInputError, limits

SCHEMES = ("https", "s3")
CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteURI:
    scheme: str
    host: str
    uri: str


def is_remote(uri: str) -> bool:
    return "://" in uri


def check_uri(uri: str, what: str) -> RemoteURI:
    """``uri`` as an https or s3 URL of a named host, or a refusal saying what is allowed (text only)."""
    fix = ("Give an https:// (or s3://) URL of a public host, or commit the file and name it by a relative path. "
           "file:// and plain http:// are not accepted.")
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        msg = f"{what} {uri!r} is not a well-formed URL: {exc}."
        raise UntrustedInputError(msg, hint=fix) from None
    if parts.scheme not in SCHEMES:
        msg = f"{what} {uri!r} uses scheme {parts.scheme!r}; allowed: {', '.join(SCHEMES)}."
        raise UntrustedInputError(msg, hint=fix)
    host = (parts.hostname or "").lower()
    if not host or parts.username or parts.password or "\x00" in uri or any(c.isspace() for c in uri):
        msg = f"{what} {uri!r} has no host, or carries credentials, NUL or spaces."
        raise UntrustedInputError(msg, hint=fix)
    if port not in (None, 443):
        msg = f"{what} {uri!r} names port {port}; only the scheme's default port is fetched."
        raise UntrustedInputError(msg, hint=fix)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        msg = f"{what} {uri!r} names an IP address; only named hosts on the registry's allow-list are fetched."
        raise UntrustedInputError(msg, hint=fix)
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        msg = f"{what} {uri!r} names a local host."
        raise UntrustedInputError(msg, hint=fix)
    return RemoteURI(scheme=parts.scheme, host=host, uri=uri)


def check_allowed(remote: RemoteURI, allowed_hosts: tuple[str, ...], what: str) -> None:
    if remote.host not in allowed_hosts:
        shown = ", ".join(allowed_hosts) or "(none)"
        msg = f"{what}: host {remote.host!r} is not on this registry's allow-list ({shown})."
        raise UntrustedInputError(msg, hint="A maintainer who trusts the host adds it to params.yaml "
                                            "(`sources: {allowed_hosts: [HOST]}`) in a commit of their own.")


def fetch_verified(remote: RemoteURI, sha256: str, cache: Path, *, bounds: Limits | None = None) -> Path:
    """Download ``remote`` into ``cache`` as ``<verified sha256>.h5ad`` (at most the size limit).

    A copy already in the cache under ``sha256`` is used as is: its name is the
    hash of its content, verified when it was written.
    """
    bounds = bounds or limits()
    dest = cache / f"{sha256}.h5ad"
    if dest.exists():
        return dest
    import fsspec

    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".download.{os.getpid()}.part"
    digest = hashlib.sha256()
    size = 0
    try:
        with fsspec.open(remote.uri, "rb") as src, open(tmp, "wb") as out:
            while chunk := src.read(CHUNK):
                size += len(chunk)
                if size > bounds.file_bytes:
                    msg = f"{remote.uri} is larger than {bounds.file_bytes:,} bytes; download stopped."
                    raise UntrustedInputError(msg, hint="A maintainer can raise $HELDOUT_LIMIT_FILE_BYTES.")
                digest.update(chunk)
                out.write(chunk)
        actual = digest.hexdigest()
        if actual != sha256:
            msg = f"{remote.uri}: the downloaded file's sha256 is {actual}, but the card pins {sha256}."
            raise ChecksumMismatch(msg, hint="Check the file; then update `sha256:` (a new card version, if it "
                                             "was released).")
        os.replace(tmp, cache / f"{actual}.h5ad")
    except HeldoutError:
        raise
    except Exception as exc:  # noqa: BLE001 - fsspec backends (aiohttp, botocore) raise their own types
        msg = f"Cannot download {remote.uri}: {type(exc).__name__}: {exc}"
        raise UntrustedInputError(msg, hint="Check the URL and the network.") from None
    finally:
        tmp.unlink(missing_ok=True)
    return dest
