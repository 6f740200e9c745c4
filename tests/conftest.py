"""Shared fixtures: one real mini-Census per test session, and throwaway projects.

The mini-Census is built once per session from the pinned PyPI artifacts (the
same builder users run); each test that writes gets its own project folder
(a copy of the repository's registry/, schemas/, curation/) so tests never
touch the checkout.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("COLUMNS", "200")  # wide rich tables in CliRunner output

import pytest

from heldout.mirror.build import DEFAULT_VERSION, build_mirror
from heldout.project import Project
from tests.helpers import readme_block, run_ok, run_script

REPO = Path(__file__).resolve().parents[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--census-live", action="store_true", help="run tests that reach the real Census on S3")


SHARED_REGISTRY = {"walkthrough", "registry"}  # session fixtures that tests change (releases, retractions, branches)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of the shared registry run in one pytest-xdist worker, in file order and first, so that
    worker builds the registry (the longest fixture) while the others run the rest of the suite."""
    on_registry = [item for item in items if SHARED_REGISTRY & set(getattr(item, "fixturenames", ()))]
    for item in on_registry:
        item.add_marker(pytest.mark.xdist_group("registry"))
    chosen = set(on_registry)
    items[:] = on_registry + [item for item in items if item not in chosen]
    if config.getoption("--census-live"):
        return
    skip = pytest.mark.skip(reason="needs the real Census (opt in with --census-live)")
    for item in items:
        if "census_live" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def mirror_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mirror")
    build_mirror(root, version=DEFAULT_VERSION)
    return root


def make_project(dest: Path) -> Project:
    for folder in ("registry", "schemas", "curation", "corpora/lists", "corpora/provenance", "sources/perturbench"):
        shutil.copytree(REPO / folder, dest / folder, ignore=shutil.ignore_patterns("releases"))
    (dest / "registry" / "releases").mkdir(exist_ok=True)
    for extra in ("params.yaml", "dvc.yaml"):
        if (REPO / extra).exists():
            shutil.copy(REPO / extra, dest / extra)
    return Project(dest)


@pytest.fixture
def project(tmp_path: Path, mirror_root: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A fresh project folder wired to the session mirror (env vars for the CLI too)."""
    proj = make_project(tmp_path / "project")
    monkeypatch.setenv("HELDOUT_PROJECT", str(proj.root))
    monkeypatch.setenv("HELDOUT_MIRROR", str(mirror_root))
    monkeypatch.chdir(proj.root)
    return proj


@pytest.fixture(scope="session")
def curated(tmp_path_factory: pytest.TempPathFactory, mirror_root: Path) -> Project:
    """A session project with every registered card curated once (read-only for tests)."""
    from heldout.cards.dataset import list_dataset_cards
    from heldout.curation import curate

    proj = make_project(tmp_path_factory.mktemp("curated"))
    for name in list_dataset_cards(proj.registry):
        curate(name, project=proj, mirror_root=mirror_root, progress=False)
    return proj


@pytest.fixture(scope="session")
def walkthrough(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, str]:
    """The README's "use heldout in your own registry" walkthrough, run as written: a registry made
    by `heldout init`, a dataset PR checked by its CI script, merged, built and released as v1."""
    base = tmp_path_factory.mktemp("registry")
    proc = run_script(base, readme_block("registry walkthrough"))
    assert proc.returncode == 0, f"README walkthrough failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return Project(base / "my-registry"), proc.stdout


@pytest.fixture(scope="session")
def registry(walkthrough: tuple[Project, str]) -> Project:
    """The walkthrough's registry (release v1 of every card), then release v2 with a new glioma split seed."""
    project, _ = walkthrough
    card = project.registry / "datasets" / "glioma-tirosh2016.yaml"
    card.write_text(card.read_text().replace("seed: 0", "seed: 3"))
    run_ok(project.root, "dvc", "repro", "-q")
    run_ok(project.root, "git", "add", "-A")
    run_ok(project.root, "git", "commit", "-qm", "new split seed")
    run_ok(project.root, "heldout", "release", "v2", "--changelog", "glioma-tirosh2016: split seed 0 -> 3")
    return project
