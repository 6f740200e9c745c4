"""A released dataset with each cell's split, as the demo's models read their training data."""

from __future__ import annotations

import anndata as ad
import pandas as pd


def with_split(ref: str, registry: str) -> ad.AnnData:
    """``NAME@VERSION`` pulled (verified) from ``registry``, with obs ``split`` from its split assignment."""
    from heldout.pull import pull

    adata = ad.read_h5ad(pull(ref, registry=registry).path)
    split = pd.read_parquet(pull(ref, registry=registry, artifact="split_assignment").path)
    adata.obs["split"] = split.set_index("observation_joinid")["split"].reindex(adata.obs_names).to_numpy()
    return adata
