"""End to end: a registry repo, two releases through the real DVC pipeline, pulls from elsewhere.

Everything is real: git, `dvc repro` (the project's dvc.yaml), `dvc push` to a
local directory remote, `dvc get` at the release tag. Slow (about 2 minutes),
so one registry is built per module.
"""

from __future__ import annotations

import os
from pathlib import Path

import anndata as ad
import pytest
import yaml
from click.testing import CliRunner

import heldout
from heldout.cli import cli
from heldout.errors import ReleaseError, UsageError
from heldout.project import Project
from heldout._files import sha256_file
from heldout.pull import cache_root, pull, read_index, read_manifest
from heldout.releases import create_release, load_index, load_manifest, retract_release
from tests.helpers import run_cmd, run_ok



@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Another folder and an empty cache: what a model developer has."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HELDOUT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HELDOUT_PROJECT", raising=False)
    return tmp_path


def test_two_releases_pulled_from_another_folder(registry: Project, elsewhere: Path) -> None:
    runner = CliRunner()
    for version, seed in (("v1", 0), ("v2", 3)):
        result = runner.invoke(cli, ["pull", f"glioma-tirosh2016@{version}", "--registry", str(registry.root),
                                     "--artifact", "split_manifest", "-o", str(elsewhere / f"{version}.yaml")])
        assert result.exit_code == 0, result.output
        assert "verified" in result.output
        assert yaml.safe_load((elsewhere / f"{version}.yaml").read_text())["seed"] == seed
    adata = heldout.load("glioma-tirosh2016@v1", registry=registry.root)
    assert adata.n_obs == 184 and adata.obs["donor_id"].nunique() == 5
    assert cache_root().is_relative_to(elsewhere)


def test_aliases_list_and_show(registry: Project, elsewhere: Path) -> None:
    index = read_index(registry.root)
    assert index.aliases == {"latest": "v2", "stable": "v1"}
    assert pull("mouse-brain-10k", registry=registry.root).version == "v1"  # NAME alone = stable
    result = CliRunner().invoke(cli, ["list", "--registry", str(registry.root)])
    assert result.exit_code == 0 and "glioma-tirosh2016" in result.output and "v2" in result.output
    shown = CliRunner().invoke(cli, ["show", "mouse-brain-10k@v2", "--registry", str(registry.root)])
    assert shown.exit_code == 0, shown.output
    shown_data = yaml.safe_load(shown.output)
    assert shown_data["lock"]["n_cells"] == 10000 and shown_data["card"]["name"] == "mouse-brain-10k"
    assert "orthologs_homo_sapiens" in shown_data["release"]["artifacts"]


def test_manifest_records_everything_an_audit_needs(registry: Project) -> None:
    manifest = yaml.safe_load((registry.releases / "v1.yaml").read_text())
    glioma = manifest["datasets"]["glioma-tirosh2016"]
    assert set(glioma["artifacts"]) >= {"h5ad", "lock", "fingerprints", "validation", "split_assignment"}
    assert len(glioma["donors"]) == 5 and glioma["census_version"] == "2025-11-08"
    assert all(len(a["sha256"]) == 64 and a["size"] > 0 for a in glioma["artifacts"].values())
    assert manifest["git_commit"] and manifest["heldout_version"] == heldout.__version__


def test_corrupted_cache_is_caught(registry: Project, elsewhere: Path, caplog: pytest.LogCaptureFixture) -> None:
    pulled = pull("glioma-tirosh2016@v1", registry=registry.root)
    with open(pulled.path, "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00corrupt")
    result = CliRunner().invoke(cli, ["pull", "glioma-tirosh2016@v1", "--registry", str(registry.root)])
    assert result.exit_code == 0, result.output  # fetched again from the remote, verified, and said once
    assert caplog.text.count("was corrupt") == 1 and "fetching it again" in caplog.text
    assert sha256_file(pulled.path) == read_manifest("v1", registry.root).datasets["glioma-tirosh2016"] \
        .artifacts["h5ad"].sha256
    assert heldout.load("glioma-tirosh2016@v1", registry=registry.root).n_obs == 184


def test_a_copied_or_cloned_registry_finds_its_remote(registry: Project, elsewhere: Path) -> None:
    """The release records its remote relative to the registry too: a copy, or a clone over a git URL,
    that keeps the remote beside it pulls without --remote-url, even when the original is gone."""
    import shutil

    manifest = read_manifest("v1", registry.root)
    original = Path(manifest.dvc_remote["url"])
    assert manifest.dvc_remote["relative"] == os.path.relpath(original, registry.root)
    moved = elsewhere / "moved"
    shutil.copytree(registry.root, moved / registry.root.name, symlinks=True)
    shutil.copytree(original, moved / original.name)
    run_ok(elsewhere, "git", "clone", "-q", "--bare", str(moved / registry.root.name),
           str(moved / f"{registry.root.name}.git"))
    original.rename(original.with_name(original.name + ".away"))
    try:
        for where in (str(moved / registry.root.name), f"file://{moved}/{registry.root.name}.git"):
            shutil.rmtree(cache_root(), ignore_errors=True)
            pulled = pull("glioma-tirosh2016@v1", registry=where)
            assert pulled.version == "v1" and pulled.path.exists(), where
    finally:
        original.with_name(original.name + ".away").rename(original)


def test_unknown_refs_are_clear(registry: Project, elsewhere: Path) -> None:
    with pytest.raises(UsageError, match=r"Unknown release 'v9'.*'v1', 'v2'"):
        pull("glioma-tirosh2016@v9", registry=registry.root)
    with pytest.raises(UsageError, match=r"Unknown dataset in release v1 'glioma-tirosh'.*Did you mean"):
        pull("glioma-tirosh@v1", registry=registry.root)
    with pytest.raises(UsageError, match="Bad dataset reference"):
        pull("glioma@", registry=registry.root)
    with pytest.raises(ReleaseError, match="is a folder but not a git repository") as info:
        pull("glioma-tirosh2016@v1", registry=elsewhere)  # a plain folder: said plainly, not in DVC's words
    assert "--registry" in info.value.hint


def test_release_refusals(registry: Project) -> None:
    with pytest.raises(ReleaseError, match="already exists; releases are immutable"):
        create_release("v1", project=registry)
    with pytest.raises(ReleaseError, match="must look like v1"):
        create_release("first", project=registry)
    card = registry.registry / "datasets" / "glioma-tirosh2016.yaml"
    original = card.read_text()
    try:
        card.write_text(original.replace("seed: 3", "seed: 4"))
        with pytest.raises(ReleaseError, match="working tree is not clean"):
            create_release("v3", project=registry)
        run_ok(registry.root, "git", "commit", "-qam", "unbuilt change")
        with pytest.raises(ReleaseError, match="DVC pipeline is not up to date"):
            create_release("v3", project=registry)
    finally:
        card.write_text(original)
        run_ok(registry.root, "git", "commit", "-qam", "revert unbuilt change")
    with pytest.raises(ReleaseError, match="would ship exactly what v2 ships") as info:
        create_release("v3", project=registry)
    assert "--allow-unchanged" in info.value.hint
    split = next((registry.root / "splits" / "glioma-tirosh2016").iterdir())
    run_ok(registry.root, "git", "add", "-f", str(split))  # what a failed repro + `git add -A` did
    run_ok(registry.root, "git", "commit", "-qm", "split committed to git by mistake")
    try:
        with pytest.raises(ReleaseError, match="DVC pipeline outputs are committed to git: splits/glioma"):
            create_release("v3", project=registry, allow_unchanged=True)
    finally:
        run_ok(registry.root, "git", "rm", "-q", "--cached", str(split))
        run_ok(registry.root, "git", "commit", "-qm", "untrack the split again")
    assert not list(registry.releases.glob("v3.yaml"))


@pytest.mark.parametrize("point", ["after-push", "after-manifest", "after-index", "after-commit", "after-tag"])
def test_crash_mid_release_leaves_previous_release_intact(registry: Project, point: str) -> None:
    index_before = (registry.releases / "index.yaml").read_bytes()
    manifests_before = {p.name: p.read_bytes() for p in registry.releases.glob("v*.yaml")}
    proc = run_cmd(registry.root, "heldout", "release", "v3", "--allow-unchanged", env={"HELDOUT_CRASH_AT": point})
    assert proc.returncode == -9, proc.stderr  # killed by SIGKILL at the crash point
    try:
        assert (registry.releases / "index.yaml").read_bytes() == (
            index_before if point in ("after-push", "after-manifest")
            else (registry.releases / "index.yaml").read_bytes())
        assert load_index(registry).releases.keys() >= {"v1", "v2"}  # always parseable
        for name, content in manifests_before.items():
            assert (registry.releases / name).read_bytes() == content
        assert ("release/v3" in run_ok(registry.root, "git", "tag")) == (point == "after-tag")
        assert not list(registry.releases.glob(".*tmp*"))  # no stray temporaries
        assert pull("glioma-tirosh2016@v2", registry=registry.root).version == "v2"
        # readers see the committed index only: list and NAME@latest work in the half-done state
        listing = run_ok(registry.root, "heldout", "list")
        assert "glioma-tirosh2016@v2" in listing
        assert pull("glioma-tirosh2016@latest", registry=registry.root).version == "v2"
        # the next release (or `heldout doctor`) finishes or undoes the interrupted one, says so, and succeeds
        finished = point == "after-tag"  # v3 is complete once tagged: doctor moves the branch to it
        proc = run_cmd(registry.root, "heldout", *(["doctor"] if finished else ["release", "v3", "--allow-unchanged"]))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        said = {"after-push": "", "after-manifest": "Removed registry/releases/v3.yaml",
                "after-index": "Restored registry/releases/index.yaml", "after-commit": "Removed registry/releases",
                "after-tag": "moved the branch to it"}[point]
        assert said in proc.stdout + proc.stderr
        assert "release/v3" in run_ok(registry.root, "git", "tag") and not run_ok(registry.root, "git", "status",
                                                                                   "--porcelain")
        assert read_index(registry.root).aliases["latest"] == "v3"
    finally:
        run_ok(registry.root, "git", "checkout", "--", ".")
        run_ok(registry.root, "git", "clean", "-fdq", "registry")
        if "release/v3" in run_ok(registry.root, "git", "tag"):
            tagged = run_ok(registry.root, "git", "rev-parse", "release/v3^{commit}").strip()
            run_ok(registry.root, "git", "tag", "-d", "release/v3")
            if tagged == run_ok(registry.root, "git", "rev-parse", "HEAD").strip():
                run_ok(registry.root, "git", "reset", "-q", "--hard", "HEAD~1")


def test_retraction_moves_aliases_and_warns(registry: Project, elsewhere: Path, caplog) -> None:
    index = retract_release("v2", reason="split seed typo", replaced_by="v1", project=registry)
    assert index.releases["v2"].retracted and index.releases["v2"].retraction.replaced_by == "v1"
    assert index.aliases == {"latest": "v1", "stable": "v1"}
    assert (registry.releases / "v2.yaml").exists()  # the manifest itself is never rewritten
    pulled = pull("glioma-tirosh2016@v2", registry=registry.root)
    assert pulled.retracted and "retracted" in caplog.text
    listing = CliRunner().invoke(cli, ["list", "--registry", str(registry.root)])
    assert "retracted: split seed typo" in listing.output.replace("\n", " ") or "retracted" in listing.output
    with pytest.raises(ReleaseError, match="already retracted"):
        retract_release("v2", reason="again", project=registry)


def test_a_loaded_dataset_describes_itself(registry: Project, elsewhere: Path) -> None:
    adata = heldout.load("glioma-tirosh2016@v2", registry=registry.root)
    assert set(adata.obs["split"].astype(str)) <= {"train", "validation", "test"} and adata.obs["split"].notna().all()
    meta = adata.uns["heldout"]
    assert (meta["name"], meta["release"], meta["split_seed"]) == ("glioma-tirosh2016", "v2", 3)
    assert meta["h5ad_sha256"] == read_manifest("v2", registry.root).datasets["glioma-tirosh2016"] \
        .artifacts["h5ad"].sha256
    assert meta["card"]["name"] == "glioma-tirosh2016" and meta["lock"]["n_cells"] == 184
    assert meta["census_source"] == "mirror"
    assert bool(meta["retracted"]) == read_index(registry.root).releases["v2"].retracted  # (an earlier test retracts)
    test = heldout.load("glioma-tirosh2016@v2", registry=registry.root, split="test")
    assert 0 < test.n_obs < adata.n_obs and set(test.obs["split"]) == {"test"}
    donors = {s: set(adata.obs.loc[adata.obs["split"] == s, "donor_id"]) for s in ("train", "test")}
    assert not donors["train"] & donors["test"]
    with pytest.raises(UsageError, match="split"):
        heldout.load("glioma-tirosh2016@v2", registry=registry.root, split="holdout")


def test_list_fits_80_columns_without_breaking_names(registry: Project, elsewhere: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    result = CliRunner().invoke(cli, ["list", "--registry", str(registry.root)], env={"COLUMNS": "80"},
                                terminal_width=80)
    assert result.exit_code == 0, result.output
    too_wide = [line for line in result.output.splitlines() if len(line) > 80]
    assert not too_wide, result.output
    assert "mcfaline-figueroa-2023@v1" in result.output  # the longest NAME@VERSION, whole on one line


def test_pull_out_writes_the_self_describing_anndata(registry: Project, elsewhere: Path) -> None:
    out = elsewhere / "glioma-test.h5ad"
    result = CliRunner().invoke(cli, ["pull", "glioma-tirosh2016@v1", "--registry", str(registry.root), "-o", str(out),
                                      "--split", "test"])
    assert result.exit_code == 0, result.output
    assert "with obs['split'] and uns['heldout']; test cells only" in result.output
    adata = ad.read_h5ad(out)
    assert set(adata.obs["split"]) == {"test"} and adata.uns["heldout"]["release"] == "v1"
    assert adata.n_obs == heldout.load("glioma-tirosh2016@v1", registry=registry.root, split="test").n_obs
    bad = CliRunner().invoke(cli, ["pull", "glioma-tirosh2016@v1", "--registry", str(registry.root), "--split", "test"])
    assert bad.exit_code == 2 and "--split needs -o/--out" in bad.output


def test_every_release_carries_croissant_that_mlcroissant_loads(registry: Project) -> None:
    """Croissant 1.1 of each released dataset: validated, its records read back by mlcroissant equal the h5ad."""
    import json

    import mlcroissant as mlc

    import heldout
    from heldout.croissant import croissant_path
    from heldout.pull import load

    path = croissant_path(registry.releases, "v2", "glioma-tirosh2016")
    data = json.loads(path.read_text())
    assert data["conformsTo"] == "http://mlcommons.org/croissant/1.1" and data["heldout:release"] == "v2"
    assert data["version"] == "v2" and "Tirosh" in data["citeAs"] and data["license"]
    shas = {d["@id"]: d["sha256"] for d in data["distribution"]}
    manifest = load_manifest(registry, "v2").datasets["glioma-tirosh2016"]
    assert shas == {k: manifest.artifacts[k].sha256 for k in ("h5ad", "split_assignment", "split_cells")}
    provenance = data["heldout:provenance"]
    assert provenance["census_version"] == "2025-11-08" and "oligodendroglioma" in provenance["obs_value_filter"]
    assert provenance["identifiers"][0]["geo_series"] == ["GSE70630"]
    fields = {f["name"]: f for f in data["recordSet"][0]["field"]}
    assert fields["cell_type_ontology_term_id"]["equivalentProperty"] == "http://purl.obolibrary.org/obo/CL_0000000"
    records = list(mlc.Dataset(jsonld=str(path)).records(record_set="cells"))
    adata = heldout.load("glioma-tirosh2016@v2", registry=str(registry.root))
    got = {r["cells/observation_joinid"].decode(): (r["cells/split"].decode(), r["cells/cell_type"].decode())
           for r in records}
    want = dict(zip(adata.obs_names, zip(adata.obs["split"].astype(str), adata.obs["cell_type"].astype(str),
                                         strict=True), strict=True))
    assert got == want and len(got) == adata.n_obs == 184
    again = load(str(path))  # a Croissant file in place of NAME@VERSION
    assert again.uns["heldout"]["release"] == "v2" and again.n_obs == 184
    out = registry.root.parent / "from-croissant.h5ad"
    result = run_cmd(registry.root, "heldout", "pull", str(path), "-o", str(out))
    assert result.returncode == 0 and out.exists(), result.stdout + result.stderr
    bad = registry.root.parent / "not-heldout.json"
    bad.write_text('{"name": "x"}')
    result = run_cmd(registry.root, "heldout", "pull", str(bad))
    assert result.returncode != 0 and "is not a Croissant file written by heldout" in result.stdout + result.stderr
