"""Pausing Python's cyclic garbage collector while bulk work builds many long-lived objects.

Each full collection walks every container object alive. Loading an ontology's
JSON (UBERON: ~450k ancestor entries) or building obs tables for a million
cells allocates so many containers that several full collections run in the
middle, each walking everything loaded so far: at 1M cells, validation spent
0.15-0.35 s and curation ~0.35 s of 5 s collecting, and found nothing to free.
Reference counting still frees everything that is not in a cycle; cycles made
while paused are collected once the collector runs again.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic collection inside the block (nested and thread-safe: the outermost exit restores it)."""
    global _depth, _was_enabled  # noqa: PLW0603 - one collector per process
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
