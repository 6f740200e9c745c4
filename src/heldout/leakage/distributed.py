"""Census-scale content overlap, partitioned on Dask.

The corpus is cut into ``soma_joinid`` ranges of the organism's obs; each Dask
task opens the Census itself, applies the corpus filter within its range,
streams X in blocks, fingerprints the cells and returns the eval cells it
matched. Only those indices travel back, so a 100M-cell corpus costs memory
per worker, not on the client. The same function runs on a laptop's
``LocalCluster`` and on a cluster next to the S3 bucket.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tiledbsoma as soma

from heldout.census import ResolvedCensus, experiment, open_resolved, resolve_census
from heldout.leakage.evidence import scan_query_for_fingerprints

DEFAULT_PARTITION_CELLS = 1_000_000


def _scan_range(resolved: ResolvedCensus, organism: str, obs_filter: str, lo: int, hi: int,
                eval_fps: np.ndarray) -> np.ndarray:
    census = open_resolved(resolved)
    try:
        exp = experiment(census, organism)
        query = soma.AxisQuery(value_filter=obs_filter, coords=(slice(lo, hi - 1),))
        with exp.axis_query("RNA", obs_query=query) as q:
            if q.n_obs == 0:
                return np.zeros(0, dtype=np.int64)
            return np.flatnonzero(scan_query_for_fingerprints(q, eval_fps))
    finally:
        census.close()


def partitioned_overlap(version: str, *, source: str, organism: str, obs_filter: str, eval_fps: np.ndarray,
                        client: object | None = None, partition_cells: int = DEFAULT_PARTITION_CELLS,
                        mirror_root: str | Path | None = None) -> np.ndarray:
    """Bool mask over ``eval_fps``: which eval cells occur (by content) in the corpus.

    ``client`` is a ``dask.distributed.Client``; without one, Dask's default
    scheduler runs the partitions.
    """
    import dask

    resolved = resolve_census(version, source=source, mirror_root=mirror_root)  # type: ignore[arg-type]
    census = open_resolved(resolved)
    try:
        n_obs = int(experiment(census, organism).obs.count)
    finally:
        census.close()
    tasks = [dask.delayed(_scan_range)(resolved, organism, obs_filter, lo, min(lo + partition_cells, n_obs),
                                       eval_fps)
             for lo in range(0, n_obs, partition_cells)]
    parts = client.gather(client.compute(tasks)) if client is not None else dask.compute(*tasks)
    found = np.zeros(len(eval_fps), dtype=bool)
    for indices in parts:
        found[indices] = True
    return found
