"""A registry of one's own: the README walkthrough (run as written by the `walkthrough` fixture), the
dataset-PR CI that `heldout init` writes, and one heldout version across the CLI, locks and manifests."""

from __future__ import annotations

import os
import re
from pathlib import Path

import anndata as ad
import yaml

import heldout
from heldout.project import Project
from heldout.releases import load_manifest
from tests.helpers import run_cmd, run_ok, run_script


def test_walkthrough_checks_the_pr_releases_and_pulls_a_self_describing_dataset(walkthrough: tuple[Project, str]) -> None:
    project, stdout = walkthrough
    summary = (project.root / "heldout-pr-summary.md").read_text()
    assert summary.startswith("# heldout PR check: passed") and "## heldout lint --dry-run: passed" in summary
    assert "Needs a maintainer" not in summary and "has no `identifiers:` entry" not in summary
    assert "Checked 1 card changed since `main`." in summary
    [row] = [line for line in summary.splitlines() if line.startswith("| `islet-endocrine`")]
    cells = int(row.rstrip(" |").split("|")[-1].replace(",", ""))
    assert "| ok | mirror 2025-11-08 |" in row and "cell_type in" in row
    pulled = ad.read_h5ad(project.root / "islet-endocrine.h5ad")
    assert pulled.n_obs == cells and set(pulled.obs["cell_type"]) == {
        "pancreatic A cell", "type B pancreatic cell", "pancreatic D cell"}
    meta = pulled.uns["heldout"]
    assert (meta["name"], meta["release"], meta["census_version"]) == ("islet-endocrine", "v1", "2025-11-08")
    donors = {s: set(pulled.obs.loc[pulled.obs["split"] == s, "donor_id"]) for s in ("train", "test")}
    assert donors["train"] and donors["test"] and not donors["train"] & donors["test"]
    n_test, release = stdout.strip().splitlines()[-1].split()  # the walkthrough's last line: heldout.load(split="test")
    assert (int(n_test), release) == ((pulled.obs["split"] == "test").sum(), "v1")


def test_one_version_everywhere(walkthrough: tuple[Project, str]) -> None:
    project, _ = walkthrough
    cli_version = run_ok(project.root, "heldout", "--version").split()[-1]
    lock = yaml.safe_load((project.curated / "islet-endocrine.lock.yaml").read_text())
    manifest = load_manifest(project, "v1")
    pulled = ad.read_h5ad(project.root / "islet-endocrine.h5ad").uns["heldout"]
    assert cli_version == heldout.__version__ == lock["heldout_version"] == manifest.heldout_version \
        == pulled["heldout_version"] == pulled["lock"]["heldout_version"]
    assert (project.root / "ci" / "requirements.txt").read_text().splitlines()[-1] == f"heldout=={cli_version}"


def test_init_writes_the_dataset_pr_ci(walkthrough: tuple[Project, str]) -> None:
    project, _ = walkthrough
    workflow = yaml.safe_load((project.root / ".github" / "workflows" / "dataset-pr.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert "paths" not in triggers["pull_request"]  # every pull request is checked, whatever it touches
    steps = workflow["jobs"]["check"]["steps"]
    assert any(str(s.get("run", "")).startswith("../base/ci/check-dataset-pr") for s in steps)
    assert any(s.get("with", {}).get("fetch-depth") == 0 for s in steps)  # --changed-since needs the base branch
    modes = run_ok(project.root, "git", "ls-files", "-s", "ci/check-dataset-pr")
    assert modes.startswith("100755")  # committed executable
    for name in ("CONTRIBUTING.md", "SECURITY.md", ".github/pull_request_template.md", "dvc.yaml", "params.yaml",
                 "schemas/obs.yaml", "registry/tasks/baron-annotation.yaml", "corpora/lists/scfoundation/list.yaml"):
        assert (project.root / name).is_file(), name


def test_pr_check_fails_with_the_reasons_in_the_summary(registry: Project, tmp_path: Path) -> None:
    """A branch that breaks a new card's filter and edits a released card: the script fails and says why."""
    root = registry.root
    summary = tmp_path / "summary.md"
    step_summary = tmp_path / "github-step-summary.md"
    run_ok(root, "git", "checkout", "-q", "-b", "break-cards")
    try:
        bad = (root / "registry" / "datasets" / "islet-endocrine.yaml").read_text() \
            .replace("name: islet-endocrine", "name: islet-typo").replace("tissue ==", "tisue ==")
        (root / "registry" / "datasets" / "islet-typo.yaml").write_text(bad)
        released = root / "registry" / "datasets" / "pbmc-blood.yaml"
        released.write_text(released.read_text().replace('version: "2025-11-08"', 'version: "2025-11-09"'))
        run_ok(root, "git", "add", "-A")
        run_ok(root, "git", "commit", "-qm", "Break two cards")
        proc = run_script(root, "ci/check-dataset-pr main",
                          env={"HELDOUT_SUMMARY": str(summary), "GITHUB_STEP_SUMMARY": str(step_summary)})
        assert proc.returncode != 0, proc.stdout
        text = summary.read_text()
        assert text.startswith("# heldout PR check: FAILED") and \
            "## heldout lint --dry-run: FAILED, 2 card(s) with problems" in text
        assert re.search(r"- `islet-typo`: obs_value_filter names 'tisue', not an obs column of the source "
                         r"\(did you mean 'tissue'\?\)", text)
        assert re.search(r"- `pbmc-blood`: census changed, but pbmc-blood is released in v2", text), text
        assert "a new card" in text and "--changelog" in text
        assert step_summary.read_text() == text  # what GitHub shows on the run
        assert "mini-Census 2025-11-08: using mirror" in proc.stdout  # restored, not rebuilt
    finally:
        run_ok(root, "git", "checkout", "-q", "main")
        run_ok(root, "git", "branch", "-q", "-D", "break-cards")


def test_pr_check_installs_the_pinned_heldout_when_another_is_found(registry: Project, tmp_path: Path) -> None:
    """On PATH: a `heldout` of another version. The script installs the pin (here: a stand-in pip)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "heldout").write_text("#!/bin/sh\necho 'heldout, version 0.0.1'\n")
    (fake / "python").write_text(f'#!/bin/sh\nif [ "$1 $2" = "-m pip" ]; then echo "pip $*" > {tmp_path}/pip; exit 3; fi\n'
                                 f'exec {os.environ.get("PYTHON", "python3")} "$@"\n')
    for tool in ("heldout", "python"):
        (fake / tool).chmod(0o755)
    proc = run_cmd(registry.root, "bash", "ci/check-dataset-pr", "main",
                   env={"PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"})
    assert proc.returncode == 3, proc.stdout + proc.stderr  # stops where pip failed: nothing runs with the wrong heldout
    assert f"installing heldout {heldout.__version__} (found: 0.0.1)" in proc.stdout
    # the pins beside the script that runs (the base branch's copy in CI), never the pull request's
    assert (tmp_path / "pip").read_text().strip() == f"pip -m pip install --quiet -r {registry.root}/ci/requirements.txt"
