"""heldout: curated, versioned, leakage-audited evaluation data for single-cell models.

Public API::

    import heldout
    adata = heldout.load("glioma-tirosh2016@v1")   # a released dataset as AnnData
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("heldout")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0-unknown"

from heldout.errors import HeldoutError

__all__ = ["HeldoutError", "__version__", "load"]


def load(ref: str, **kwargs):  # noqa: ANN201 - returns anndata.AnnData (imported lazily)
    """Load a released dataset ``NAME@VERSION`` (``NAME`` alone means ``stable``) as AnnData."""
    from heldout.pull import load as _load

    return _load(ref, **kwargs)
