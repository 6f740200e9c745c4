"""heldout.untrusted: YAML, paths, HDF5 layouts and URLs from a stranger, each attack refused with its fix.

Files are real: scanpy's 10x chr21 PBMC matrix (from the pinned scanpy sdist) written by anndata, then
altered with h5py the way an attacker would (external storage, external links, virtual datasets, filter
plugins, declared shapes). Each altered file is first shown to carry the attack (h5py follows it), then
shown to be refused by check_h5ad before anndata opens it.
"""

from __future__ import annotations

import http.server
import os
import threading
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heldout.errors import CardError, ChecksumMismatch
from heldout.untrusted.hdf5 import check_h5ad
from heldout.untrusted.limits import Limits, UntrustedInputError
from heldout.untrusted.paths import check_relative, confined_file, resolve_inside
from heldout.untrusted.remote import RemoteURI, check_allowed, check_uri, fetch_verified
from heldout.untrusted.yaml_input import load_yaml
from tests.helpers import chr21_pbmc

SECRET = "AWS_ACCESS_KEY_ID=AKIA-SECRET-TOKEN-abc123"


@pytest.fixture(scope="module")
def pbmc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, self-contained h5ad: 12 PBMCs x 343 chr21 genes, with a Census-style obs term column."""
    adata = chr21_pbmc()
    adata.obs["tissue_ontology_term_id"] = "UBERON:0000178"
    path = tmp_path_factory.mktemp("pbmc") / "pbmc.h5ad"
    adata.write_h5ad(path)
    return path


def _copy(src: Path, dest: Path) -> Path:
    dest.write_bytes(src.read_bytes())
    return dest


# ---------------------------------------------------------------- YAML


BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))


def test_a_billion_laughs_card_is_refused_before_it_is_built() -> None:
    assert len(BILLION_LAUGHS) < 800  # the 753-byte attack of the report, in shape
    with pytest.raises(UntrustedInputError, match="more than 50 YAML aliases"):
        load_yaml(BILLION_LAUGHS, "card.yaml")
    few_aliases_deep = "a: &a [x, x]\n" + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}]\n"
                                                   for i in range(24))  # 48 aliases, 2^25 nodes
    with pytest.raises(UntrustedInputError, match="expands to more than"):
        load_yaml(few_aliases_deep, "card.yaml")
    assert load_yaml("a: &a [1, 2]\nb: *a\n", "ok.yaml") == {"a": [1, 2], "b": [1, 2]}  # a little is fine


def test_duplicate_keys_oversized_files_and_python_tags_are_refused() -> None:
    with pytest.raises(CardError, match="duplicate key 'census' \\(first on line 1\\)"):
        load_yaml("census: {version: '2025-11-08'}\nname: x\ncensus: {version: '2020-01-01'}\n", "card.yaml")
    with pytest.raises(CardError, match="duplicate key 'version'"):
        load_yaml("census:\n  version: a\n  version: b\n", "card.yaml")
    with pytest.raises(UntrustedInputError, match="YAML files in a registry may be at most 1,000"):
        load_yaml("x: " + "y" * 2000, "big.yaml", bounds=Limits(yaml_bytes=1000))
    with pytest.raises(CardError, match="not valid YAML"):
        load_yaml("!!python/object/apply:os.system ['id']", "evil.yaml")


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=30))
@settings(max_examples=150, deadline=None)
def test_any_plain_document_round_trips_through_the_strict_loader(value: object) -> None:
    import yaml

    assert load_yaml(yaml.safe_dump({"v": value}), "gen.yaml") == {"v": value}


# ---------------------------------------------------------------- paths


@pytest.mark.parametrize("value", ["/etc/passwd", "/dev/zero", "../outside/x.h5ad", "a/../../x", "~/.aws/credentials",
                                   "file:///dev/zero", "a\x00b", "C:\\x.h5ad", ".git/config", "x/.dvc/config", ""])
def test_a_path_that_could_leave_the_registry_is_refused_as_text(value: str) -> None:
    with pytest.raises(UntrustedInputError, match="is refused"):
        check_relative(value, "source uri")


def test_the_answer_for_an_outside_path_does_not_depend_on_whether_it_exists(tmp_path: Path) -> None:
    """No existence or hash oracle: /etc/shadow (exists) and /etc/no-such (does not) get the same refusal."""
    answers = []
    for value in ("/etc/shadow", "/etc/no-such-file-x"):
        with pytest.raises(UntrustedInputError) as info:
            confined_file(tmp_path, value, "source uri", max_bytes=1 << 30)
        answers.append(str(info.value).replace(value, "PATH"))
    assert answers[0] == answers[1]


def test_symlinks_are_followed_only_inside_the_registry(tmp_path: Path) -> None:
    root, outside = tmp_path / "registry", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.yaml").write_text(f"token: {SECRET}\n")
    (root / "data").mkdir()
    (root / "data" / "real.h5ad").write_bytes(b"x")
    (root / "inside-link.h5ad").symlink_to("data/real.h5ad")
    (root / "dir-link").symlink_to("data")
    (root / "abs-out").symlink_to(outside / "secret.yaml")
    (root / "rel-out").symlink_to("../outside/secret.yaml")
    (root / "hop").symlink_to("dir-link/../../outside/secret.yaml")
    (root / "loop").symlink_to("loop")
    (root / "dev").symlink_to("/dev/zero")
    assert resolve_inside(root, "inside-link.h5ad", "f") == (root / "data" / "real.h5ad").resolve()
    assert resolve_inside(root, "dir-link/real.h5ad", "f") == (root / "data" / "real.h5ad").resolve()
    for value in ("abs-out", "rel-out", "hop", "dev"):
        with pytest.raises(UntrustedInputError, match="outside the registry"):
            resolve_inside(root, value, "f")
    with pytest.raises(UntrustedInputError, match="loop"):
        resolve_inside(root, "loop", "f")
    (root / "fifo").unlink(missing_ok=True)
    os.mkfifo(root / "fifo")
    with pytest.raises(UntrustedInputError, match="not a regular file"):
        confined_file(root, "fifo", "f", max_bytes=10, tracked=False)  # a FIFO would hang a reader
    with pytest.raises(UntrustedInputError, match="over the limit of 0"):
        confined_file(root, "data/real.h5ad", "f", max_bytes=0, tracked=False)


# ---------------------------------------------------------------- HDF5


def test_a_plain_anndata_file_passes(pbmc: Path) -> None:
    layout = check_h5ad(pbmc, "pbmc")
    assert (layout.n_obs, layout.n_vars) == (12, 343)


def test_external_storage_is_refused_before_the_secret_is_read(pbmc: Path, tmp_path: Path) -> None:
    secret = tmp_path / "environ"
    secret.write_text(SECRET)
    path = _copy(pbmc, tmp_path / "evil.h5ad")
    with h5py.File(path, "r+") as f:  # the categories of a Census term column now live in the secret file
        del f["obs/tissue_ontology_term_id/categories"]
        f.create_dataset("obs/tissue_ontology_term_id/categories", shape=(1,), dtype=f"S{len(SECRET)}",
                         external=[(str(secret), 0, len(SECRET))])
    with h5py.File(path, "r") as f:  # the attack is real: HDF5 serves the secret as a category
        assert f["obs/tissue_ontology_term_id/categories"][0].decode() == SECRET
    with pytest.raises(UntrustedInputError, match="keeps its bytes in external file") as info:
        check_h5ad(path, "evil.h5ad")
    assert SECRET not in str(info.value) and "anndata" in (info.value.hint or "")


def test_external_links_soft_links_and_virtual_datasets_are_refused(pbmc: Path, tmp_path: Path) -> None:
    outside = _copy(pbmc, tmp_path / "outside.h5ad")
    linked = _copy(pbmc, tmp_path / "linked.h5ad")
    with h5py.File(linked, "r+") as f:
        del f["X"]
        f["X"] = h5py.ExternalLink(str(outside), "/X")
    with h5py.File(linked, "r") as f:
        assert f["X/data"].shape[0] > 0  # h5py follows it
    with pytest.raises(UntrustedInputError, match="'/X' is an external link to"):
        check_h5ad(linked, "linked.h5ad")
    soft = _copy(pbmc, tmp_path / "soft.h5ad")
    with h5py.File(soft, "r+") as f:
        f["uns_alias"] = h5py.SoftLink("/X")
    with pytest.raises(UntrustedInputError, match="soft link"):
        check_h5ad(soft, "soft.h5ad")
    virtual = _copy(pbmc, tmp_path / "virtual.h5ad")
    with h5py.File(virtual, "r+") as f:
        layout = h5py.VirtualLayout(shape=(5,), dtype="f4")
        layout[:] = h5py.VirtualSource(str(outside), "X/data", shape=(5,))
        f.create_virtual_dataset("uns/view", layout)
    with pytest.raises(UntrustedInputError, match="virtual dataset"):
        check_h5ad(virtual, "virtual.h5ad")


def test_a_filter_plugin_is_refused(pbmc: Path, tmp_path: Path) -> None:
    path = _copy(pbmc, tmp_path / "plugin.h5ad")
    with h5py.File(path, "r+") as f:
        f.create_dataset("uns/packed", data=np.arange(100), chunks=(10,), compression=32004,
                         allow_unknown_filter=True)  # LZ4's id: decoding it would load a shared library
    with pytest.raises(UntrustedInputError, match="filter plugin 32004"):
        check_h5ad(path, "plugin.h5ad")


def test_declared_shapes_are_checked_before_any_allocation(pbmc: Path, tmp_path: Path) -> None:
    huge = _copy(pbmc, tmp_path / "huge-sparse.h5ad")
    with h5py.File(huge, "r+") as f:  # 10^9 x 10^6 in a few kilobytes: the chunks are never written
        f["X"].attrs["shape"] = np.array([10**9, 10**6])
        del f["X/indptr"]
        f.create_dataset("X/indptr", shape=(10**9 + 1,), dtype="i8", chunks=(1 << 16,))
    assert huge.stat().st_size < 1 << 20
    with pytest.raises(UntrustedInputError, match="declares 1,000,000,001 values"):
        check_h5ad(huge, "huge-sparse.h5ad")
    dense = _copy(pbmc, tmp_path / "huge-dense.h5ad")
    with h5py.File(dense, "r+") as f:
        f.create_dataset("layers/big", shape=(10**6, 10**6), dtype="f4", chunks=(1000, 1000))
    with pytest.raises(UntrustedInputError, match="declares a dense 1000000 x 1000000 array"):
        check_h5ad(dense, "huge-dense.h5ad")
    lying = _copy(pbmc, tmp_path / "lying.h5ad")
    with h5py.File(lying, "r+") as f:
        f["X"].attrs["shape"] = np.array([10**6, 343])
    with pytest.raises(UntrustedInputError, match="'X' has 1,000,000 rows but obs has 12"):
        check_h5ad(lying, "lying.h5ad")
    with h5py.File(lying, "r+") as f:  # anndata stored the 10x matrix as CSC: its indptr runs over genes
        assert f["X"].attrs["encoding-type"] == "csc_matrix"
        f["X"].attrs["shape"] = np.array([12, 10**5])
    with pytest.raises(UntrustedInputError, match="its indptr has 344 entries \\(needs 100,001\\)"):
        check_h5ad(lying, "lying.h5ad")
    with pytest.raises(UntrustedInputError, match="declares 12 cells x 343 genes"):
        check_h5ad(pbmc, "pbmc", bounds=Limits(h5ad_cells=10))
    assert ad.read_h5ad(pbmc).n_obs == 12  # the original is untouched and fine


# ---------------------------------------------------------------- URLs


@pytest.mark.parametrize(("uri", "why"), [
    ("file:///dev/zero", "scheme 'file'"), ("http://example.org/x.h5ad", "scheme 'http'"),
    ("https://127.0.0.1:8443/x.h5ad", "port 8443"), ("https://127.0.0.1/x.h5ad", "IP address"),
    ("https://[::1]/x.h5ad", "IP address"), ("https://localhost/x.h5ad", "local host"),
    ("https://user:pw@example.org/x.h5ad", "credentials"), ("gs://bucket/x.h5ad", "scheme 'gs'")])
def test_a_url_is_checked_for_shape_as_text(uri: str, why: str) -> None:
    with pytest.raises(UntrustedInputError, match=why):
        check_uri(uri, "source uri")


def test_only_allow_listed_hosts_are_fetched() -> None:
    remote = check_uri("https://datasets.example.org/a.h5ad", "source uri")
    check_allowed(remote, ("datasets.example.org",), "source uri")
    with pytest.raises(UntrustedInputError, match="not on this registry's allow-list \\(\\(none\\)\\)"):
        check_allowed(remote, (), "source uri")


def test_the_cache_holds_a_download_only_under_the_hash_it_was_verified_to_have(tmp_path: Path) -> None:
    """A download whose bytes do not match the claimed sha256 is not cached at all (loopback server)."""
    body = b"not the file the card claims"
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/x.h5ad"  # built directly: check_uri refuses loopback
        claimed = "a" * 64
        with pytest.raises(ChecksumMismatch, match="downloaded file's sha256 is"):
            fetch_verified(RemoteURI(scheme="https", host="127.0.0.1", uri=url), claimed, tmp_path / "cache")
        assert set(requests) == {"/x.h5ad"} and not list((tmp_path / "cache").iterdir())
        import hashlib

        actual = hashlib.sha256(body).hexdigest()
        with pytest.raises(UntrustedInputError, match="larger than 10 bytes"):
            fetch_verified(RemoteURI(scheme="https", host="127.0.0.1", uri=url), actual, tmp_path / "cache",
                           bounds=Limits(file_bytes=10))
        path = fetch_verified(RemoteURI(scheme="https", host="127.0.0.1", uri=url), actual, tmp_path / "cache")
        assert path.name == f"{actual}.h5ad" and path.read_bytes() == body
    finally:
        server.shutdown()
