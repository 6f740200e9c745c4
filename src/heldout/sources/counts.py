"""Raw counts recovered exactly from a file that only kept log1p of counts normalised to 10,000 per cell.

Some published files (PerturBench's development subset among them) keep ``log1p(counts / total *
1e4)``. In each row the non-zero values of ``expm1(X)`` are then integer multiples of one unit ``u =
1e4 / total``: dividing by ``u`` gives the counts back. The unit is the smallest value, or that divided by
a small integer when no cell holds a count of 1 among the kept genes. The recovery is checked: the
counts, normalised again, must reproduce ``X`` to 1e-9, or the file is refused, naming the cell.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from heldout.errors import SourceError

MAX_DIVISOR = 20
TOLERANCE = 1e-6  # on counts (integers)
REPRODUCE = 1e-9  # on log1p values


def recover_counts(matrix: object, what: str, target_sum: float = 1e4) -> sp.csr_matrix:
    """Integer counts from ``log1p(counts / total * target_sum)`` (CSR or dense), checked cell by cell."""
    x = sp.csr_matrix(matrix, dtype=np.float64)
    x.sort_indices()
    out = x.copy()
    scaled = np.expm1(x.data)
    for i in range(x.shape[0]):
        lo, hi = x.indptr[i], x.indptr[i + 1]
        if lo == hi:
            continue
        row = scaled[lo:hi]
        smallest = float(row.min())
        if smallest <= 0 or not np.isfinite(row).all():
            msg = f"{what}: cell {i} has values that are not log1p of normalised counts."
            raise SourceError(msg, hint="Declare `values: counts` if X holds counts, or give a file with counts.")
        for k in range(1, MAX_DIVISOR + 1):
            counts = row / (smallest / k)
            if np.abs(counts - np.rint(counts)).max() < TOLERANCE:
                break
        else:
            msg = (f"{what}: cell {i}'s values are not integer multiples of one unit (no count recovered with a "
                   f"divisor up to {MAX_DIVISOR}).")
            raise SourceError(msg, hint="The file's X is not log1p of counts normalised per cell; give raw counts.")
        counts = np.rint(counts)
        unit = smallest / k
        again = np.log1p(counts * unit)
        if np.abs(again - x.data[lo:hi]).max() > REPRODUCE:
            msg = f"{what}: the counts recovered for cell {i} do not reproduce its values."
            raise SourceError(msg, hint="Give raw counts.")
        out.data[lo:hi] = counts
    return out
