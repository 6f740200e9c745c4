"""An h5ad's HDF5 layout, checked before a byte of its data is read.

HDF5 lets a file's content live elsewhere: an **external link** (``X`` -> a
dataset in another file), **external storage** (a dataset whose bytes are any
file on disk: ``/proc/self/environ``, ``~/.aws/credentials``), a **virtual
dataset** (a view over other files), and **filter plugins** (native code loaded
to decompress a chunk). Each would make a card's file read, or a release ship,
bytes that were never committed. A file can also *declare* a 10^9 x 10^6 matrix
in a few bytes and make its reader allocate it.

:func:`check_h5ad` walks every link of the file without following any, and
refuses all of the above, soft links, and declared shapes or nnz over the
limits, naming the object and the fix. Only then may anndata open it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from heldout.untrusted.limits import Limits, UntrustedInputError, limits

# HDF5's own filters and LZF (h5py's): decoding them loads no plugin
BUILTIN_FILTERS = {h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_FLETCHER32,
                   h5py.h5z.FILTER_SZIP, h5py.h5z.FILTER_NBIT, h5py.h5z.FILTER_SCALEOFFSET, 32000}
MAX_ATTRIBUTE_BYTES = 1 << 20
SPARSE = {"csr_matrix", "csc_matrix"}


@dataclass(frozen=True)
class H5adLayout:
    """What the file declares, checked against the limits."""

    n_obs: int | None
    n_vars: int | None
    objects: int


def _refuse(what: str, name: str, why: str, fix: str) -> UntrustedInputError:
    return UntrustedInputError(f"{what}: HDF5 object {name!r} {why}; refused before reading it.", hint=fix)


_SELF_CONTAINED = "Write the h5ad with anndata (`adata.write_h5ad(path)`): it keeps every dataset inside the file."


def check_h5ad(path: str | Path, what: str, *, bounds: Limits | None = None) -> H5adLayout:
    """Refuse ``path`` unless every object of it is stored inside it and within ``bounds``."""
    bounds = bounds or limits()
    try:
        handle = h5py.File(path, "r", locking=False)
    except OSError as exc:
        msg = f"{what} is not a readable h5ad (not an HDF5 file: {exc})"
        raise UntrustedInputError(msg, hint="Give an h5ad written by anndata.") from None
    with handle:
        walker = _Walker(what, bounds)
        try:
            walker.group(handle, "/")
            n_obs, n_vars = _declared_shape(handle, what, bounds)
        except UntrustedInputError:
            raise
        except Exception as exc:  # noqa: BLE001 - h5py raises many types for a damaged file
            msg = f"{what}: its HDF5 structure cannot be read ({type(exc).__name__}: {exc}); refused."
            raise UntrustedInputError(msg, hint=_SELF_CONTAINED) from None
        return H5adLayout(n_obs=n_obs, n_vars=n_vars, objects=walker.objects)


class _Walker:
    def __init__(self, what: str, bounds: Limits) -> None:
        self.what, self.bounds, self.objects = what, bounds, 0
        self.seen: set[tuple[int, int]] = set()

    def group(self, group: h5py.Group, name: str) -> None:
        self._attributes(group, name)
        for key in group:  # link names only: nothing is followed by listing them
            child = f"{name.rstrip('/')}/{key}"
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise _refuse(self.what, child, f"is an external link to {link.filename!r}", _SELF_CONTAINED)
            if isinstance(link, h5py.SoftLink):
                raise _refuse(self.what, child, f"is a soft link to {link.path!r}", _SELF_CONTAINED)
            self.objects += 1
            if self.objects > self.bounds.h5ad_objects:
                raise _refuse(self.what, child, f"is past the limit of {self.bounds.h5ad_objects:,} objects",
                              "Store fewer, larger arrays.")
            obj = group[key]  # a hard link: an object of this file
            info = h5py.h5o.get_info(obj.id)
            address = (info.fileno, info.addr)
            if address in self.seen:  # a second hard link to an object already checked
                continue
            self.seen.add(address)
            if isinstance(obj, h5py.Group):
                self.group(obj, child)
            elif isinstance(obj, h5py.Dataset):
                self.dataset(obj, child)
            else:
                raise _refuse(self.what, child, f"is a {type(obj).__name__}, not a group or dataset", _SELF_CONTAINED)

    def dataset(self, dset: h5py.Dataset, name: str) -> None:
        plist = dset.id.get_create_plist()
        if plist.get_layout() == h5py.h5d.VIRTUAL or dset.is_virtual:
            raise _refuse(self.what, name, "is a virtual dataset (a view over other files)", _SELF_CONTAINED)
        if plist.get_external_count() > 0:
            files = ", ".join(repr(plist.get_external(i)[0].decode(errors="replace"))
                              for i in range(plist.get_external_count()))
            raise _refuse(self.what, name, f"keeps its bytes in external file(s) {files}", _SELF_CONTAINED)
        for i in range(plist.get_nfilters()):
            code = plist.get_filter(i)[0]
            if code not in BUILTIN_FILTERS:
                raise _refuse(self.what, name, f"needs HDF5 filter plugin {code} (native code) to decode",
                              "Compress with gzip or lzf, or not at all.")
        self._attributes(dset, name)
        shape = dset.shape or ()
        elements = int(np.prod(shape, dtype=np.float64)) if shape else 1
        if len(shape) >= 2:
            declared = elements * max(dset.dtype.itemsize, 1)
            if declared > self.bounds.h5ad_dense_bytes:
                raise _refuse(self.what, name, f"declares a dense {' x '.join(map(str, shape))} array "
                              f"({declared / 2**30:,.1f} GiB, over the {self.bounds.h5ad_dense_bytes / 2**30:,.1f} GiB "
                              "limit)", "Store large matrices sparse (CSR), or split the dataset.")
        elif elements > max(self.bounds.h5ad_nnz, self.bounds.h5ad_cells) + 1:
            raise _refuse(self.what, name, f"declares {elements:,} values, over the limit of "
                          f"{self.bounds.h5ad_nnz:,}", "Split the dataset.")

    def _attributes(self, obj: h5py.HLObject, name: str) -> None:
        for key in obj.attrs:
            try:
                size = obj.attrs.get_id(key).get_storage_size()
            except RuntimeError:  # HDF5 reports an empty attribute's size (0) as an error
                size = 0
            if size > MAX_ATTRIBUTE_BYTES:
                raise _refuse(self.what, f"{name}@{key}", f"is an attribute of {size:,} bytes", _SELF_CONTAINED)


def _encoding(obj: h5py.HLObject) -> str:
    value = obj.attrs.get("encoding-type", "")
    return value.decode() if isinstance(value, bytes) else str(value)


def _length(group: h5py.File, frame: str) -> int | None:
    """Rows of an anndata dataframe group (its index's length), if the file has one."""
    if frame not in group or not isinstance(group[frame], h5py.Group):
        return None
    index = group[frame].attrs.get("_index", "_index")
    index = index.decode() if isinstance(index, bytes) else str(index)
    node = group[frame].get(index)
    return int(node.shape[0]) if isinstance(node, h5py.Dataset) and node.shape else None


def _declared_shape(handle: h5py.File, what: str, bounds: Limits) -> tuple[int | None, int | None]:
    """The (cells, genes) the file declares, consistent across obs, var and every matrix, within limits."""
    n_obs, n_vars = _length(handle, "obs"), _length(handle, "var")
    matrices = [("X", handle.get("X"))]
    if isinstance(handle.get("raw"), h5py.Group):
        matrices.append(("raw/X", handle["raw"].get("X")))
    for name, node in matrices:
        if node is None:
            continue
        if isinstance(node, h5py.Group) and _encoding(node) in SPARSE:
            shape = tuple(int(v) for v in node.attrs.get("shape", ()))
            if len(shape) != 2:
                raise _refuse(what, name, "is a sparse matrix without a 2-d shape", _SELF_CONTAINED)
            major = shape[0] if _encoding(node) == "csr_matrix" else shape[1]
            indptr, data, indices = node.get("indptr"), node.get("data"), node.get("indices")
            if not all(isinstance(d, h5py.Dataset) for d in (indptr, data, indices)):
                raise _refuse(what, name, "is a sparse matrix without indptr, indices and data", _SELF_CONTAINED)
            if indptr.shape != (major + 1,):
                raise _refuse(what, name, f"declares shape {shape} but its indptr has {indptr.shape[0]:,} entries "
                              f"(needs {major + 1:,})", _SELF_CONTAINED)
            if data.shape != indices.shape or data.shape[0] > bounds.h5ad_nnz:
                raise _refuse(what, name, f"has {data.shape[0]:,} values and {indices.shape[0]:,} indices "
                              f"(they must agree, at most {bounds.h5ad_nnz:,})", _SELF_CONTAINED)
        elif isinstance(node, h5py.Dataset) and len(node.shape) == 2:
            shape = tuple(int(v) for v in node.shape)
        else:
            raise _refuse(what, name, "is neither a dense 2-d array nor a CSR/CSC matrix", _SELF_CONTAINED)
        if shape[0] > bounds.h5ad_cells or shape[1] > bounds.h5ad_genes:
            raise _refuse(what, name, f"declares {shape[0]:,} cells x {shape[1]:,} genes (limits: "
                          f"{bounds.h5ad_cells:,} x {bounds.h5ad_genes:,})",
                          "A maintainer can raise $HELDOUT_LIMIT_H5AD_CELLS / _GENES for a known large source.")
        if n_obs is not None and shape[0] != n_obs:
            raise _refuse(what, name, f"has {shape[0]:,} rows but obs has {n_obs:,}", _SELF_CONTAINED)
        if name == "X" and n_vars is not None and shape[1] != n_vars:
            raise _refuse(what, name, f"has {shape[1]:,} columns but var has {n_vars:,}", _SELF_CONTAINED)
    return n_obs, n_vars
