"""The registry template: what ``heldout init`` copies into a new registry, and what the wheel carries.

A registry needs this project's declarations (dataset, model and task cards,
pandera schemas, curation maps, the DVC pipeline and its parameters, the
contributing guide and pull-request template). They live once, at the top of
the source checkout; the wheel's build copies them into the package
(``heldout/_registry_template``, see setup.py), so an installed heldout
scaffolds registries, validates and reads task cards without a checkout.

``SCAFFOLD`` files exist only for new registries (the CI that checks dataset
pull requests) and live in the package itself (``heldout/scaffold_files``).

This module imports nothing but the standard library: setup.py reads it.
"""

from __future__ import annotations

from pathlib import Path

TEMPLATE_DIRS = ("registry/datasets", "registry/models", "registry/tasks", "schemas", "curation", "corpora/lists",
                 "corpora/provenance", "sources/perturbench")
TEMPLATE_FILES = ("params.yaml", "dvc.yaml", "CONTRIBUTING.md", "SECURITY.md", ".github/pull_request_template.md")
BUNDLE_NAME = "_registry_template"
SCAFFOLD = {  # file in heldout/scaffold_files -> where `heldout init` writes it
    "dataset-pr.yml": ".github/workflows/dataset-pr.yml",
    "check-dataset-pr": "ci/check-dataset-pr",
}
EXECUTABLE = frozenset({"check-dataset-pr"})  # scaffold files written with mode 0755 (scripts CI runs)


def _package() -> Path:
    return Path(__file__).resolve().parent


def source_checkout() -> Path:
    """The folder heldout's source tree sits in (meaningful only for a checkout or an editable install)."""
    return _package().parents[1]


def template_root() -> Path:
    """The bundled template of an installed wheel, else the source checkout it runs from."""
    bundled = _package() / BUNDLE_NAME
    return bundled if (bundled / "registry").is_dir() else source_checkout()


def scaffold_file(name: str) -> Path:
    return _package() / "scaffold_files" / name
