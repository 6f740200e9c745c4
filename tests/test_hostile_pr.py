"""Issue 24's attacks, each as a hostile pull request on a registry made by `heldout init`.

Each test commits the attack on a branch, runs the PR check (`heldout lint --dry-run --changed-since main`, as
ci/check-dataset-pr does) and, where the attack bit after a merge, the maintainer's step (`dvc repro`,
`heldout curate`, `heldout audit`). Each gets a refusal that names the problem and the fix, and the secret,
the command or the request never happens. Source files are scanpy's real 10x chr21 PBMCs (see
tests/test_untrusted.py), altered with h5py as an attacker would.
"""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from heldout._files import sha256_file
from heldout.cli import cli
from heldout.project import Project
from heldout.scaffold import init_registry
from tests.helpers import chr21_pbmc, run_cmd
from tests.test_external_sources import TERMS
from tests.test_untrusted import BILLION_LAUGHS, SECRET

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return init_registry(tmp_path_factory.mktemp("hostile") / "registry")


@pytest.fixture
def reg(base: Project, mirror_root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """The registry on a fresh branch `attack` from main; back to a clean main afterwards."""
    git(base, "checkout", "-q", "-B", "attack", "main")
    monkeypatch.setenv("HELDOUT_PROJECT", str(base.root))
    monkeypatch.setenv("HELDOUT_MIRROR", str(mirror_root))
    monkeypatch.chdir(base.root)
    yield base
    git(base, "checkout", "-q", "-f", "main")
    git(base, "clean", "-qfdx")
    git(base, "branch", "-q", "-D", "attack")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A maintainer's files outside the registry: a credentials file and an h5ad."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "credentials").write_text(SECRET)
    (folder / "secret.yaml").write_text(f"token: {SECRET}\n")
    return folder


@pytest.fixture(scope="module")
def pbmc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    adata = chr21_pbmc()
    adata.obs["tissue_ontology_term_id"] = "UBERON:0000178"
    path = tmp_path_factory.mktemp("src") / "pbmc.h5ad"
    adata.write_h5ad(path)
    return path


def git(project: Project, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=project.root, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def commit(project: Project, message: str = "attack") -> None:
    git(project, "add", "-A")
    git(project, "commit", "-qm", message)


def card(project: Project, name: str, source: dict) -> Path:
    data = {"schema_version": 1, "name": name, "description": "a dataset", "source": source, "labels": ["cell_type"],
            "license": "CC-BY-4.0", "citation": "someone", "split": {"fractions": {"test": 1.0}}}
    path = project.registry / "datasets" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def h5ad_source(uri: str, sha: str) -> dict:
    return {"kind": "h5ad", "uri": uri, "sha256": sha, "organism": "homo_sapiens", "genes": "symbol",
            "obs": {"values": {k: v for k, v in TERMS.items() if k != "tissue_ontology_term_id"}}}


def check(project: Project, *extra: str) -> tuple[int, str]:
    """The PR check in-process; returns its exit code and everything it printed or wrote."""
    summary = project.root / "heldout-pr-summary.md"
    result = CliRunner().invoke(cli, ["lint", "--dry-run", "--changed-since", "main", "--summary", str(summary),
                                      *extra])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output + (summary.read_text() if summary.exists() else "")


def test_a_proper_dataset_pr_passes(reg: Project, pbmc: Path) -> None:
    (reg.root / "sources").mkdir(exist_ok=True)
    shutil.copy(pbmc, reg.root / "sources" / "pbmc.h5ad")
    card(reg, "pbmc-chr21", h5ad_source("sources/pbmc.h5ad", sha256_file(pbmc)))
    commit(reg)
    code, text = check(reg)
    assert code == 0, text
    assert "| `pbmc-chr21` | ok | h5ad sources/pbmc.h5ad |" in text and "| 1 | 1 | 12 |" in text


# -------------------------------------------------------------- critical: external storage


def test_external_storage_neither_prints_nor_ships_a_maintainer_file(reg: Project, pbmc: Path, outside: Path) -> None:
    (reg.root / "sources").mkdir(exist_ok=True)
    evil = reg.root / "sources" / "pbmc.h5ad"
    shutil.copy(pbmc, evil)
    with h5py.File(evil, "r+") as f:  # the tissue term's categories are now the maintainer's credentials file
        del f["obs/tissue_ontology_term_id/categories"]
        f.create_dataset("obs/tissue_ontology_term_id/categories", shape=(1,), dtype=f"S{len(SECRET)}",
                         external=[(str(outside / "credentials"), 0, len(SECRET))])
    source = h5ad_source("sources/pbmc.h5ad", sha256_file(evil))
    del source["obs"]["values"]["donor_id"]
    card(reg, "pbmc-chr21", source)
    commit(reg)
    code, text = check(reg)
    assert code != 0 and SECRET not in text
    assert "HDF5 object '/obs/tissue_ontology_term_id/categories' keeps its bytes in external file(s)" in text
    assert "Write the h5ad with anndata" in text
    git(reg, "checkout", "-q", "main")  # a maintainer merges anyway and curates: still refused, nothing shipped
    git(reg, "merge", "-q", "attack")
    result = CliRunner().invoke(cli, ["curate", "pbmc-chr21"])
    assert result.exit_code != 0 and "external file" in result.output and SECRET not in result.output
    assert not (reg.curated / "pbmc-chr21.h5ad").exists()
    git(reg, "reset", "-q", "--hard", "HEAD~1")


# -------------------------------------------------------------- critical: params.yaml shell injection


def test_a_shell_command_in_params_neither_passes_the_check_nor_runs_in_dvc_repro(reg: Project) -> None:
    params = reg.root / "params.yaml"
    injected = "one2one_high_confidence; id > pwned.txt; echo"
    params.write_text(params.read_text().replace("policy: one2one_high_confidence", f'policy: "{injected}"'))
    commit(reg)
    code, text = check(reg)
    assert code != 0
    assert "orthologs.policy: Input should be 'one2one_high_confidence', 'one2one' or 'one2many_sum'" in text
    git(reg, "checkout", "-q", "main")  # merged anyway: the maintainer's dvc repro runs no shell with it
    git(reg, "merge", "-q", "attack")
    proc = run_cmd(reg.root, "dvc", "repro", "ortholog-map")
    assert proc.returncode != 0 and not (reg.root / "pwned.txt").exists()
    assert "orthologs.policy" in proc.stdout + proc.stderr
    git(reg, "reset", "-q", "--hard", "HEAD~1")
    stages = yaml.safe_load((reg.root / "dvc.yaml").read_text())["stages"]
    commands = [s.get("cmd") or s["do"]["cmd"] for s in stages.values()]
    assert commands and all(c.startswith("heldout stage ") and "$" not in c for c in commands)


def test_dvc_repro_builds_each_stage_from_its_dvc_stage_name(reg: Project) -> None:
    """The stage runner: DVC names the item, params.yaml gives the values (ortholog-apply@0 -> mouse-brain-10k)."""
    from heldout.pipeline import load_params, stage_call

    params = load_params(reg)
    assert stage_call("curate", params, "curate@glioma-tirosh2016").dataset == "glioma-tirosh2016"
    apply = stage_call("ortholog-apply", params, "ortholog-apply@0")
    assert (apply.dataset, apply.target) == (params.orthologs.apply[0].dataset, "homo_sapiens")
    result = CliRunner().invoke(cli, ["stage", "curate"], env={"DVC_STAGE": "curate@no-such; id"})
    assert result.exit_code != 0 and "$DVC_STAGE" in result.output
    result = CliRunner().invoke(cli, ["stage", "curate"], env={"DVC_STAGE": "curate@not-in-params"})
    assert result.exit_code != 0 and "Unknown dataset of params.yaml 'not-in-params'" in result.output


# -------------------------------------------------------------- high: model and task cards


def test_a_model_card_that_makes_a_tier_better_is_flagged_with_the_grid(reg: Project) -> None:
    path = reg.registry / "models" / "uce.yaml"
    data = yaml.safe_load(path.read_text())
    data["corpora"] = [{"role": "pretraining", "name": "nothing", "documented_as": "dataset_ids",
                        "dataset_ids": ["00000000-0000-0000-0000-000000000000"],
                        "sources": [{"kind": "paper", "ref": "trust me"}]}]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    commit(reg)
    code, text = check(reg)
    assert code != 0 and "need a maintainer's approval: registry/models/uce.yaml" in text
    assert "| `uce` | `glioma-tirosh2016` | GRAY | GREEN | **better: review** |" in text
    assert "not approved: a maintainer adds the `heldout-approved` label" in text
    code, text = check(reg, "--approved")
    assert code == 0 and "Status: **approved**" in text


def test_a_model_card_cannot_point_the_audit_at_a_maintainer_file(reg: Project) -> None:
    path = reg.registry / "models" / "uce.yaml"
    data = yaml.safe_load(path.read_text())
    data["corpora"][0].update({"manifest": "/etc/passwd", "documented_as": "census_filter"})
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    (reg.registry / "tasks" / "glioma-annotation.yaml").write_text("schema_version: 1\nname: [\n")
    commit(reg)
    code, text = check(reg)
    assert code != 0 and "root:" not in text
    assert "manifest '/etc/passwd' is refused: it is absolute" in text
    assert "registry/tasks/glioma-annotation.yaml (problem)" in text
    result = CliRunner().invoke(cli, ["audit", "--model", "uce"])
    assert result.exit_code != 0 and "root:" not in result.output and "is refused: it is absolute" in result.output


# -------------------------------------------------------------- high: files outside the registry


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink", "external-link"])
def test_an_h5ad_outside_the_registry_is_never_read(reg: Project, pbmc: Path, outside: Path, how: str) -> None:
    target = outside / "maintainer.h5ad"
    shutil.copy(pbmc, target)
    (reg.root / "sources").mkdir(exist_ok=True)
    uri = {"absolute": str(target), "dotdot": "../outside/maintainer.h5ad"}.get(how, "sources/pbmc.h5ad")
    if how == "symlink":
        (reg.root / "sources" / "pbmc.h5ad").symlink_to(target)
    if how == "external-link":
        shutil.copy(pbmc, reg.root / "sources" / "pbmc.h5ad")
        with h5py.File(reg.root / "sources" / "pbmc.h5ad", "r+") as f:
            del f["X"]
            f["X"] = h5py.ExternalLink(str(target), "/X")
    sha = sha256_file(reg.root / uri) if how == "external-link" else sha256_file(target)
    card(reg, "pbmc-chr21", h5ad_source(uri, sha))
    commit(reg)
    code, text = check(reg)
    expected = {"absolute": "it is absolute", "dotdot": "it climbs out with '..'",
                "symlink": "is a symlink to outside the registry", "external-link": "is an external link to"}[how]
    assert code != 0 and expected in text, text


def test_devices_file_urls_and_symlinked_cards_are_refused_unread(reg: Project, outside: Path) -> None:
    card(reg, "zero-path", h5ad_source("/dev/zero", "0" * 64))
    card(reg, "zero-url", h5ad_source("file:///dev/zero", "0" * 64))
    (reg.registry / "datasets" / "linked.yaml").symlink_to(outside / "secret.yaml")
    commit(reg)
    code, text = check(reg)
    assert code != 0 and SECRET not in text and "SECRET" not in text
    assert "'/dev/zero' is refused: it is absolute" in text
    assert "file:///dev/zero' uses scheme 'file'; allowed: https, s3" in text
    assert "card file 'datasets/linked.yaml' is refused" in text and "symlink to outside the registry" in text


def test_a_billion_laughs_card_and_a_huge_declared_matrix_are_refused(reg: Project, pbmc: Path) -> None:
    (reg.registry / "datasets" / "laughs.yaml").write_text(BILLION_LAUGHS)
    (reg.root / "sources").mkdir(exist_ok=True)
    huge = reg.root / "sources" / "huge.h5ad"
    shutil.copy(pbmc, huge)
    with h5py.File(huge, "r+") as f:
        f["X"].attrs["shape"] = np.array([10**9, 10**6])
        del f["X/indptr"]
        f.create_dataset("X/indptr", shape=(10**6 + 1,), dtype="i8", chunks=(1 << 16,))
    card(reg, "huge", h5ad_source("sources/huge.h5ad", sha256_file(huge)))
    commit(reg)
    code, text = check(reg)
    assert code != 0 and "more than 50 YAML aliases" in text
    assert "declares 1,000,000,000 cells x 1,000,000 genes" in text


# -------------------------------------------------------------- medium: network, oracles, duplicate keys


def test_the_pr_check_fetches_nothing(reg: Project) -> None:
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            requests.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        card(reg, "loopback", h5ad_source(f"http://127.0.0.1:{server.server_port}/x.h5ad", "0" * 64))
        card(reg, "loopback-https", h5ad_source(f"https://localhost:{server.server_port}/x.h5ad", "0" * 64))
        card(reg, "on-s3", h5ad_source("s3://some-bucket/x.h5ad", "0" * 64))
        card(reg, "on-the-web", h5ad_source("https://datasets.example.org/x.h5ad", "0" * 64))
        commit(reg)
        code, text = check(reg)
    finally:
        server.shutdown()
    assert requests == [] and code != 0
    assert "uses scheme 'http'; allowed: https, s3" in text and "names port" in text
    assert "the PR check does not fetch it" in text and "NoCredentialsError" not in text
    assert "`on-s3` (note)" not in text and "- `on-s3`: s3://some-bucket/x.h5ad is a URL" in text


def test_a_wrong_sha_for_a_system_file_is_no_oracle(reg: Project) -> None:
    card(reg, "shadow", h5ad_source("/etc/shadow", "0" * 64))
    card(reg, "nothing", h5ad_source("/etc/no-such-file", "0" * 64))
    commit(reg)
    code, text = check(reg)
    lines = [line for line in text.splitlines() if line.startswith(("shadow:", "nothing:"))]
    assert code != 0 and len(lines) == 2
    assert lines[0].replace("shadow", "X").replace("/etc/X", "P") == lines[1].replace("nothing", "X").replace(
        "/etc/no-such-file", "P") or lines[1].replace("shadow", "X").replace("/etc/X", "P") == lines[0].replace(
        "nothing", "X").replace("/etc/no-such-file", "P")
    assert "sha256 is" not in text and "does not exist" not in text


def test_duplicate_keys_are_refused(reg: Project) -> None:
    path = reg.registry / "datasets" / "glioma-tirosh2016.yaml"
    text = path.read_text()
    path.write_text(text + "census:\n  source: mirror\n  version: \"2025-11-08\"\n  organism: homo_sapiens\n"
                           "  obs_value_filter: \"tissue == 'blood'\"\n")
    commit(reg)
    code, out = check(reg)
    assert code != 0 and "found duplicate key 'census' (first on line" in out


# -------------------------------------------------------------- low


def test_every_row_is_checked_and_stray_card_files_are_named(reg: Project, pbmc: Path) -> None:
    import anndata as ad
    import scipy.sparse as sp

    adata = ad.read_h5ad(pbmc)
    tiled = ad.concat([adata] * 84, index_unique="-")  # 1,008 real cells; a NaN at row 900
    x = sp.csr_matrix(tiled.X, dtype=np.float32)
    x[900, int(x[900].indices[0])] = np.nan
    tiled.X = x
    (reg.root / "sources").mkdir(exist_ok=True)
    tiled.write_h5ad(reg.root / "sources" / "nan.h5ad")
    card(reg, "nan-row", h5ad_source("sources/nan.h5ad", sha256_file(reg.root / "sources" / "nan.h5ad")))
    (reg.registry / "datasets" / "sub").mkdir()
    (reg.registry / "datasets" / "sub" / "hidden.yaml").write_text("schema_version: 1\n")
    (reg.registry / "datasets" / "pbmc-blöd.yaml").write_text("schema_version: 1\n")
    bad_term = {**h5ad_source("sources/nan.h5ad", "0" * 64)}
    card(reg, "bad-term", bad_term)
    commit(reg)
    code, text = check(reg)
    assert code != 0 and "X has NaN or infinite values in rows 0-1,007" in text
    assert "registry/datasets/sub/hidden.yaml (problem): not a card" in text
    assert "registry/datasets/pbmc-blöd.yaml (problem): not a card" in text
    assert "heldout/mirror/sources.py" not in text


def test_protected_changes_need_approval_and_the_base_branch_script_runs(reg: Project, mirror_root: Path) -> None:
    script = reg.root / "ci" / "check-dataset-pr"
    script.write_text("#!/usr/bin/env bash\necho all good\nexit 0\n")
    commit(reg)
    code, text = check(reg)
    assert code != 0 and "`ci/check-dataset-pr`: changes the PR check's own scripts and pins" in text
    checkout = reg.root.parent / "base-checkout"  # as the workflow does: the base branch beside the PR
    shutil.rmtree(checkout, ignore_errors=True)
    git(reg, "clone", "-q", "--branch", "main", str(reg.root), str(checkout))
    trusted = checkout / "ci" / "check-dataset-pr"
    proc = run_cmd(reg.root, "bash", str(trusted), "main", env={"HELDOUT_MIRROR": str(mirror_root)})
    assert proc.returncode != 0 and "need a maintainer's approval: ci/check-dataset-pr" in proc.stdout + proc.stderr
    proc = run_cmd(reg.root, "bash", str(trusted), "main", env={"HELDOUT_MIRROR": str(mirror_root),
                                                               "HELDOUT_APPROVED": "true"})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_workflow_is_pinned_least_privileged_and_runs_the_base_checker() -> None:
    from heldout.template import scaffold_file

    flow = yaml.safe_load(scaffold_file("dataset-pr.yml").read_text())
    on = flow[True] if True in flow else flow["on"]  # YAML 1.1 reads `on:` as True
    assert list(on) == ["pull_request"] and "pull_request_target" not in scaffold_file("dataset-pr.yml").read_text()
    assert flow["permissions"] == {"contents": "read"}
    job = flow["jobs"]["check"]
    assert 0 < job["timeout-minutes"] <= 60
    uses = [s["uses"] for s in job["steps"] if "uses" in s]
    assert uses and all(len(u.split("@")[1]) == 40 and int(u.split("@")[1], 16) >= 0 for u in uses)
    checkouts = [s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")]
    assert {s["with"]["path"] for s in checkouts} == {"base", "pr"}
    assert all(s["with"]["persist-credentials"] is False for s in checkouts)
    run = next(s for s in job["steps"] if "run" in s)
    assert run["working-directory"] == "pr" and run["run"].startswith("../base/ci/check-dataset-pr ")


def test_a_committed_staging_cache_or_pipeline_output_is_refused(reg: Project) -> None:
    """A pre-staged SOMA under .heldout/ would be read instead of the verified h5ad: refused, as are outputs."""
    staged = reg.root / ".heldout" / "staged" / "my-card" / "0123456789abcdef" / "soma"
    staged.mkdir(parents=True)
    (staged / "__tiledb_group.tdb").write_bytes(b"crafted")
    (reg.root / "splits" / "pbmc-blood").mkdir(parents=True, exist_ok=True)
    (reg.root / "splits" / "pbmc-blood" / "assignment.parquet").write_bytes(b"x")
    git(reg, "add", "-f", ".heldout", "splits")
    git(reg, "commit", "-qm", "attack")
    code, text = check(reg)
    assert code != 0
    assert ".heldout/staged/my-card/0123456789abcdef/soma/__tiledb_group.tdb (problem): must not be committed: " \
           "heldout's staging cache" in text
    assert "splits/pbmc-blood/assignment.parquet (problem): must not be committed: split outputs" in text
