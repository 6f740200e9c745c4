"""Size and time limits for work on untrusted input, and a deadline that enforces the time limit.

Each limit can be raised by a maintainer through an environment variable (never
through a file a pull request can change), e.g. for a very large source h5ad.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from heldout.errors import HeldoutError

MiB = 1 << 20
GiB = 1 << 30


class UntrustedInputError(HeldoutError):
    """Input from a card, a source file or a URL that heldout refuses to act on (unsafe or over a limit)."""

    exit_code = 11


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        msg = f"${name} must be a whole number, got {raw!r}."
        raise UntrustedInputError(msg, hint=f"Unset it to use the default ({default:,}).") from None
    if value <= 0:
        msg = f"${name} must be positive, got {value}."
        raise UntrustedInputError(msg, hint=f"Unset it to use the default ({default:,}).")
    return value


@dataclass(frozen=True)
class Limits:
    """What one card may make heldout read or allocate."""

    yaml_bytes: int = 256 * 1024  # a card, params.yaml or a manifest
    yaml_aliases: int = 50  # alias uses (`*name`) in one document
    yaml_nodes: int = 200_000  # nodes after expanding aliases
    file_bytes: int = 16 * GiB  # a source h5ad on disk or downloaded
    h5ad_cells: int = 5_000_000
    h5ad_genes: int = 200_000
    h5ad_nnz: int = 500_000_000  # ~6 GiB as CSR in memory when a source is staged
    h5ad_dense_bytes: int = 4 * GiB  # one dense dataset (X, a layer) as declared
    h5ad_objects: int = 100_000  # groups and datasets in one file
    seconds: int = 1800  # one card's check in the PR check

    @classmethod
    def from_env(cls) -> Limits:
        """The defaults, each overridable by ``HELDOUT_LIMIT_<FIELD>`` (e.g. HELDOUT_LIMIT_H5AD_CELLS)."""
        return cls(**{name: _env_int(f"HELDOUT_LIMIT_{name.upper()}", value)
                      for name, value in cls().__dict__.items()})


def limits() -> Limits:
    return Limits.from_env()


@contextlib.contextmanager
def deadline(seconds: int, what: str) -> Iterator[None]:
    """Raise :class:`UntrustedInputError` if the block runs longer than ``seconds`` (main thread, POSIX).

    Elsewhere (a worker thread, Windows) the block runs without a timer: the PR
    workflow's ``timeout-minutes`` is the outer bound there.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expired(_signum: int, _frame: object) -> None:
        msg = f"{what} took longer than {seconds} s, the limit for one check."
        raise UntrustedInputError(msg, hint="A source that needs longer is checked by a maintainer: raise "
                                            "$HELDOUT_LIMIT_SECONDS for that run.")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
