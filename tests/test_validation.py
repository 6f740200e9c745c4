"""Validation reports every failure of real invalid files, readably, with a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
from click.testing import CliRunner

from heldout.cli import cli
from heldout.curation import artifact_paths
from heldout.project import Project
from heldout.validation import validate_h5ad


@pytest.fixture
def glioma(curated: Project) -> ad.AnnData:
    return ad.read_h5ad(artifact_paths(curated, "glioma-tirosh2016")[0])


def _checks(path: Path) -> set[tuple[str, str]]:
    report = validate_h5ad(path)
    assert not report.ok
    return {(f.component, f.column) for f in report.failures}


def test_wrong_ontology_id(glioma: ad.AnnData, tmp_path: Path) -> None:
    obs = glioma.obs.copy()
    obs["cell_type_ontology_term_id"] = obs["cell_type_ontology_term_id"].astype(str)
    obs.iloc[3, obs.columns.get_loc("cell_type_ontology_term_id")] = "CL:12345"
    glioma.obs = obs
    glioma.write_h5ad(tmp_path / "bad.h5ad")
    report = validate_h5ad(tmp_path / "bad.h5ad")
    [failure] = report.failures
    assert (failure.column, failure.failure_case) == ("cell_type_ontology_term_id", "CL:12345")
    assert "str_matches" in failure.check and failure.index == glioma.obs_names[3]


def test_missing_donor_id(glioma: ad.AnnData, tmp_path: Path) -> None:
    glioma.obs = glioma.obs.drop(columns=["donor_id"])
    glioma.write_h5ad(tmp_path / "bad.h5ad")
    assert ("obs", "donor_id") in {(c, col) for c, col in _checks(tmp_path / "bad.h5ad")} or \
        any("donor_id" in f.failure_case for f in validate_h5ad(tmp_path / "bad.h5ad").failures)


def test_negative_and_fractional_counts(glioma: ad.AnnData, tmp_path: Path) -> None:
    x = glioma.X.tocsr(copy=True)
    x.data[0] = -3.0
    x.data[x.indptr[5]] = 0.5
    glioma.X = x
    glioma.write_h5ad(tmp_path / "bad.h5ad")
    failures = validate_h5ad(tmp_path / "bad.h5ad").failures
    by_column = {f.column: f for f in failures}
    assert set(by_column) == {"min_value", "n_non_integer"}
    assert by_column["min_value"].index == glioma.obs_names[0]
    assert by_column["n_non_integer"].index == glioma.obs_names[5]


def test_duplicated_obs_index(glioma: ad.AnnData, tmp_path: Path) -> None:
    names = glioma.obs_names.to_numpy().copy()
    names[1] = names[0]
    glioma.obs_names = names
    glioma.write_h5ad(tmp_path / "bad.h5ad")
    failures = validate_h5ad(tmp_path / "bad.h5ad").failures
    assert any(f.component == "obs" and "unique" in f.check and f.failure_case == names[0] for f in failures)


def test_all_failures_reported_at_once_and_cli_exit_code(glioma: ad.AnnData, tmp_path: Path) -> None:
    obs = glioma.obs.copy()
    obs["assay_ontology_term_id"] = "EFO:bad"
    obs["sex_ontology_term_id"] = "male"
    glioma.obs = obs
    x = glioma.X.tocsr(copy=True)
    x.data[:] = np.abs(x.data) * -1
    glioma.X = x
    glioma.write_h5ad(tmp_path / "bad.h5ad")
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "bad.h5ad")])
    assert result.exit_code == 5
    # one distinct bad value per obs column, one failure per cell for X: rows are counted, not lost
    assert f"{2 + glioma.n_obs} distinct validation failure(s) affecting {3 * glioma.n_obs} row(s)" in result.output
    as_json = CliRunner().invoke(cli, ["validate", "--json", str(tmp_path / "bad.h5ad")])
    assert as_json.exit_code == 5
    report = json.loads(as_json.output[: as_json.output.rindex("}") + 1])
    assert {f["column"] for f in report["failures"]} == {"assay_ontology_term_id", "sex_ontology_term_id",
                                                          "min_value"}


def test_not_an_h5ad(tmp_path: Path) -> None:
    (tmp_path / "junk.h5ad").write_bytes(b"not hdf5")
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "junk.h5ad")])
    assert result.exit_code == 5
    assert "is not a readable h5ad" in result.output
