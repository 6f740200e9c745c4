"""Where cells come from: the real Census or the mini-Census, an h5ad file, any SOMA experiment.

Every source gives the same three things, in the same order: obs (one row per
cell: ``dataset_id``, ``donor_id``, ``cell_id``), var (``feature_id``: unversioned
Ensembl ids of the X columns) and X as CSR row blocks of raw integer counts,
streamed with bounded memory. Corpus recording and curation read cells only
through this interface, so what holds for one source holds for all.
"""

from heldout.sources.base import CellSource
from heldout.sources.h5ad import H5adSource
from heldout.sources.soma import CensusSource, SomaSource

__all__ = ["CellSource", "CensusSource", "H5adSource", "SomaSource"]
