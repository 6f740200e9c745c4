"""A real model trained from released data, so the demo's leakage audit decides on real pairings."""
