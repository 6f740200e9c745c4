"""Perturbation screens: the design of a curated dataset (heldout.perturbation.design)."""
