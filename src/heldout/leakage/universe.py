"""Which genes each dataset measured: what near-duplicate matching restricts its comparison to.

Content evidence compares two cells over the genes *both sides measured*: a gene
one side never measured says nothing about whether the cells are the same. A
:class:`GeneUniverse` holds, per dataset id, the set of genes its source measured
(the Census ``feature_dataset_presence_matrix`` row, or an h5ad's var), as the
40-bit gene-hash prefixes sketches carry.

On disk it is one parquet file: a row per dataset (``dataset_id``, a packed
bitmap over the gene dictionary) with the dictionary itself, the sorted
prefixes as raw bytes, in the file's metadata. A Census-scale corpus (about
1,800 datasets x 60k genes) is about 14 MB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from heldout._files import atomic_path
from heldout.leakage.fingerprint import gene_keys, gene_prefix, sorted_unique

META_KEY = b"heldout.gene_prefixes"


@dataclass(frozen=True, eq=False)
class GeneUniverse:
    prefixes: np.ndarray  # sorted unique uint64 gene prefixes (the dictionary)
    measured: dict[str, np.ndarray]  # dataset_id -> bool mask over ``prefixes``
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @staticmethod
    def from_feature_ids(per_dataset: dict[str, np.ndarray | list[str]]) -> GeneUniverse:
        """From Ensembl ids measured per dataset."""
        prefix_sets = {d: sorted_unique(gene_prefix(gene_keys(list(ids)))) for d, ids in per_dataset.items()}
        dictionary = sorted_unique(np.concatenate(list(prefix_sets.values()))) if prefix_sets else \
            np.zeros(0, np.uint64)
        return GeneUniverse(dictionary, {d: np.isin(dictionary, p) for d, p in prefix_sets.items()})

    def genes_of(self, dataset_id: str) -> np.ndarray | None:
        """Sorted prefixes measured by ``dataset_id``; None if this universe does not know the dataset."""
        if dataset_id not in self.measured:
            return None
        if dataset_id not in self._cache:
            self._cache[dataset_id] = self.prefixes[self.measured[dataset_id]]
        return self._cache[dataset_id]

    def union(self) -> np.ndarray:
        masks = list(self.measured.values())
        return self.prefixes[np.logical_or.reduce(masks)] if masks else self.prefixes

    def write(self, path: Path) -> None:
        ids = sorted(self.measured)
        table = pa.table({"dataset_id": pa.array(ids, pa.string()),
                          "measured": pa.array([np.packbits(self.measured[d]).tobytes() for d in ids], pa.binary())})
        table = table.replace_schema_metadata({META_KEY: self.prefixes.astype("<u8").tobytes()})
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)

    @staticmethod
    def read(path: Path) -> GeneUniverse:
        table = pq.read_table(path)
        prefixes = np.frombuffer(table.schema.metadata[META_KEY], dtype="<u8").astype(np.uint64)
        measured = {d: np.unpackbits(np.frombuffer(bits, np.uint8), count=len(prefixes)).astype(bool)
                    for d, bits in zip(table.column("dataset_id").to_pylist(), table.column("measured").to_pylist(),
                                       strict=True)}
        return GeneUniverse(prefixes, measured)
