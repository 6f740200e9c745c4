"""Recorded corpus manifests: what a model was trained on, recorded once, joined against by every audit.

``corpora/<model>/<corpus>/manifest.yaml`` (git) describes one corpus of one
model card: where the cells came from (Census version and filter, or the h5ad /
SOMA files with their sha256), its datasets, donors and cell counts, and every
file under ``data/`` (DVC) with its sha256. ``data/`` holds the cells' content
signatures (``cells/<dataset>/part-*.parquet``), the donors and the genes each
dataset measured. :mod:`heldout.corpora.record` writes it; :mod:`heldout.corpora.manifest`
reads and verifies it.
"""
