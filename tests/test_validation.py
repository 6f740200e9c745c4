"""Validation at CELLxGENE-schema depth: wrong terms refused with the reason and fix, valid variants accepted.

Real files: the curated glioma dataset (curated profile), and a CELLxGENE-schema h5ad the mini-Census
builder wrote from the real Tirosh 2016 cells (cellxgene profile, schema 7.0.0 in uns).
"""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from heldout.cli import cli
from heldout.curation import artifact_paths
from heldout.project import Project
from heldout.validation import validate_h5ad, x_cell_summary

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def glioma(curated: Project) -> ad.AnnData:
    return ad.read_h5ad(artifact_paths(curated, "glioma-tirosh2016")[0])


@pytest.fixture
def submitted(mirror_root: Path) -> ad.AnnData:
    """A CELLxGENE-schema 7.0.0 submission of the real Tirosh 2016 glioma cells (no heldout columns)."""
    [path] = [p for p in mirror_root.glob("cell-census/*/h5ads/*.h5ad") if ad.read_h5ad(p, backed="r").n_obs == 184]
    adata = ad.read_h5ad(path)
    adata.uns["organism_ontology_term_id"] = "NCBITaxon:9606"
    adata.uns["schema_version"] = "7.0.0"
    for column in adata.obs.columns:  # as CELLxGENE stores them
        if adata.obs[column].dtype == object:
            adata.obs[column] = adata.obs[column].astype("category")
    return adata


def _with(adata: ad.AnnData, column: str, value: str, rows: slice = slice(0, 3)) -> ad.AnnData:
    obs = adata.obs.copy()
    obs[column] = obs[column].astype(str)
    obs.iloc[rows, obs.columns.get_loc(column)] = value
    adata.obs = obs
    return adata


WRONG = [  # (column, value, what the reason says): each accepted before, each rejected by CELLxGENE's validator
    ("cell_type_ontology_term_id", "CL:9999999", "no such term"),
    ("cell_type_ontology_term_id", "CL:0000255", "not allowed here"),
    ("cell_type_ontology_term_id", "CL:0000003", "obsolete term"),
    ("tissue_ontology_term_id", "CL:0000235", "for tissue_type 'tissue': a CL term where UBERON is required"),
    ("tissue_ontology_term_id", "UBERON:9999999", "no such term"),
    ("assay_ontology_term_id", "EFO:0000001", "not under the allowed roots"),
    ("assay_ontology_term_id", "EFO:0009922 (sci-plex)", "not an ontology term id"),
    ("disease_ontology_term_id", "MONDO:9999999", "no such term"),
    ("disease_ontology_term_id", "MONDO:0016695 || MONDO:0005148", "ascending lexical order"),
    ("development_stage_ontology_term_id", "MmusDv:0000092", "where HsapDv is required"),
    ("self_reported_ethnicity_ontology_term_id", "HANCESTRO:9999", "no such term"),
    ("self_reported_ethnicity_ontology_term_id", "HANCESTRO:0014,HANCESTRO:0005", "wrong delimiter"),
    ("tissue_type", "cell culture", "isin"),
    ("cell_type", "B cell", "the label of CL:"),
]


@pytest.mark.parametrize(("column", "value", "reason"), WRONG, ids=[f"{c}={v}" for c, v, _ in WRONG])
def test_wrong_terms_are_refused_with_the_reason(submitted: ad.AnnData, tmp_path: Path, column: str, value: str,
                                                 reason: str) -> None:
    _with(submitted, column, value).write_h5ad(tmp_path / "bad.h5ad")
    report = validate_h5ad(tmp_path / "bad.h5ad")
    assert report.profile == "cellxgene" and report.organism == "homo_sapiens"
    [failure] = [f for f in report.failures if f.column == column]
    assert failure.failure_case == value and failure.n_rows == 3 and failure.index == submitted.obs_names[0]
    assert reason in (failure.reason or failure.check), failure
    assert failure.fix


def test_near_miss_terms_get_a_did_you_mean(submitted: ad.AnnData, tmp_path: Path) -> None:
    _with(submitted, "cell_type_ontology_term_id", "B cell").write_h5ad(tmp_path / "bad.h5ad")
    [failure] = [f for f in validate_h5ad(tmp_path / "bad.h5ad").failures if f.check == "ontology_term"]
    assert failure.suggestions == ("CL:0000236 (B cell)",)
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "bad.h5ad")])
    assert result.exit_code == 5 and "did you mean: CL:0000236 (B cell)?" in result.output


def test_valid_cellxgene_variants_pass(submitted: ad.AnnData, tmp_path: Path) -> None:
    assert validate_h5ad(_write(submitted, tmp_path / "as-is.h5ad")).ok
    # normalised X, raw counts in raw.X (heldout reads raw.X then)
    normalised = submitted.copy()
    normalised.raw = normalised
    normalised.X = normalised.X.multiply(1 / np.maximum(normalised.X.sum(axis=1), 1)).tocsr() * 1e4
    report = validate_h5ad(_write(normalised, tmp_path / "normalised.h5ad"))
    assert report.ok and report.counts_from == "raw.X", report.failures
    # schema 7 cell lines: a Cellosaurus tissue and "na" donor, stage, sex and ethnicity
    line = submitted.copy()
    for column, value in {"tissue_type": "cell line", "tissue_ontology_term_id": "CVCL_2830", "donor_id": "na",
                          "development_stage_ontology_term_id": "na", "sex_ontology_term_id": "na",
                          "self_reported_ethnicity_ontology_term_id": "na"}.items():
        _with(line, column, value, slice(None))
    line.obs = line.obs.drop(columns=["tissue", "development_stage", "sex", "self_reported_ethnicity"])
    report = validate_h5ad(_write(line, tmp_path / "cell-line.h5ad"))
    assert report.ok, report.failures
    # several ancestry terms, AfPO and HANCESTRO, sorted and joined by " || "
    ancestry = _with(submitted.copy(), "self_reported_ethnicity_ontology_term_id", "AfPO:0000145 || HANCESTRO:0005")
    ancestry.obs = ancestry.obs.drop(columns=["self_reported_ethnicity"])
    assert validate_h5ad(_write(ancestry, tmp_path / "ancestry.h5ad")).ok


def test_cell_line_na_rules_hold_both_ways(submitted: ad.AnnData, tmp_path: Path) -> None:
    _with(submitted, "sex_ontology_term_id", "na").write_h5ad(tmp_path / "bad.h5ad")
    [failure] = [f for f in validate_h5ad(tmp_path / "bad.h5ad").failures if f.check == "cell_line_na"]
    assert failure.column == "sex_ontology_term_id" and "only for cell lines" in failure.reason
    line = _with(submitted, "tissue_type", "cell line", slice(None))
    _with(line, "tissue_ontology_term_id", "CVCL_2830", slice(None)).write_h5ad(tmp_path / "line.h5ad")
    must_be_na = {f.column for f in validate_h5ad(tmp_path / "line.h5ad").failures if f.check == "cell_line_na"}
    assert must_be_na == {"donor_id", "development_stage_ontology_term_id", "sex_ontology_term_id",
                          "self_reported_ethnicity_ontology_term_id"}


def _write(adata: ad.AnnData, path: Path) -> Path:
    adata.write_h5ad(path)
    return path


def test_missing_columns_are_reported_as_missing(submitted: ad.AnnData, tmp_path: Path) -> None:
    submitted.obs = submitted.obs.drop(columns=["donor_id", "tissue_type"])
    report = validate_h5ad(_write(submitted, tmp_path / "bad.h5ad"))
    missing = {f.column: f for f in report.failures if f.check == "column present"}
    assert set(missing) == {"donor_id", "tissue_type"}
    assert missing["donor_id"].reason == "the column is missing" and missing["donor_id"].n_rows == 184
    assert "None" not in str(report.failures)


def test_feature_ids_are_checked_against_gencode(glioma: ad.AnnData, tmp_path: Path) -> None:
    names = glioma.var_names.to_numpy().copy()
    names[0], names[1] = "ENSG99999999999", "ERCC-00002"
    glioma.var_names = names
    failures = validate_h5ad(_write(glioma, tmp_path / "bad.h5ad")).failures
    assert {(f.failure_case, f.check) for f in failures} == {("ENSG99999999999", "gencode_feature"),
                                                             ("ERCC-00002", "gencode_feature")}


@pytest.mark.parametrize("organism", ["homo_sapiens", "mus_musculus"])
def test_validation_reads_the_same_gencode_ids_as_the_gene_table(organism: str) -> None:
    from heldout.genes import gencode_genes, gencode_ids

    assert gencode_ids(organism) == frozenset(gencode_genes(organism).index) and len(gencode_ids(organism)) > 50_000


def test_negative_and_fractional_counts(glioma: ad.AnnData, tmp_path: Path) -> None:
    x = glioma.X.tocsr(copy=True)
    x.data[0] = -3.0
    x.data[x.indptr[5]] = 0.5
    glioma.X = x
    failures = validate_h5ad(_write(glioma, tmp_path / "bad.h5ad")).failures
    by_column = {f.column: f for f in failures}
    assert set(by_column) == {"min_value", "n_non_integer"}
    assert by_column["min_value"].index == glioma.obs_names[0]
    assert by_column["n_non_integer"].index == glioma.obs_names[5]


_VALUES = st.sampled_from([0.0, 1.0, 2.0, 7.0, -3.0, 0.5, -0.25, 1e6, np.inf, -np.inf, np.nan])


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=9), elements=_VALUES),
       st.integers(0, 1000))
def test_the_x_summary_kernel_matches_a_dense_reference(dense: np.ndarray, first_row: int) -> None:
    """Per-cell min (implicit zeros included, non-finite values ignored), non-integer and non-finite counts."""
    summary = x_cell_summary(sp.csr_matrix(dense), first_row)
    finite = np.isfinite(dense)
    low = np.where(finite, dense, np.inf).min(axis=1, initial=np.inf).astype(np.float64)
    assert list(summary.index) == list(range(first_row, first_row + dense.shape[0]))
    np.testing.assert_array_equal(summary["min_value"].to_numpy(), np.where(np.isinf(low), 0.0, low))
    np.testing.assert_array_equal(summary["n_non_integer"].to_numpy(), (finite & (dense != np.rint(dense))).sum(axis=1))
    np.testing.assert_array_equal(summary["n_non_finite"].to_numpy(), (~finite).sum(axis=1))


@pytest.mark.parametrize(("values", "expected"), [(["a", "b"], True), (["a", None], False), (["a", float("nan")], False),
                                                 (["a", 1], False), ([], False)])
def test_str_columns_are_recognised_from_their_array(values: list, expected: bool) -> None:
    """What pandas infers for the Series itself, without probing it (a probe hashes its index)."""
    from heldout.validation import frames

    series = pd.Series(values, dtype=object, index=[f"cell-{i}" for i in range(len(values))])
    assert frames.all_strings(series) == (pd.api.types.infer_dtype(series, skipna=False) == "string") == expected
    assert not frames.all_strings(series.astype("category"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text("ab", max_size=3), st.none(), st.just(float("nan")), st.integers(0, 2)), max_size=30),
       st.booleans())
def test_index_uniqueness_by_hashes_is_pandas_uniqueness(values: list, colliding: bool) -> None:
    """Hashes decide only when they all differ; equal hashes (a duplicate, or a collision: forced here
    by a constant hash) go to pandas' exact check."""
    from heldout.validation import frames

    index = pd.Index(values, dtype=object)
    with pytest.MonkeyPatch.context() as patch:
        if colliding:
            patch.setattr(pd.util, "hash_array", lambda v, categorize=True: np.zeros(len(v), dtype=np.uint64))
        assert frames._unique(index) == pd.Index(values, dtype=object).is_unique


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 3), st.integers(-1, 2), st.integers(0, 1)), max_size=60))
def test_groups_of_code_columns_are_found_in_order_of_appearance(rows: list[tuple[int, int, int]]) -> None:
    from heldout.validation.frames import _combined, _groups

    columns = [np.array([r[j] for r in rows], dtype=np.int8) for j in range(3)]
    first, n_rows = _groups(_combined(columns))
    seen = pd.Series(rows, dtype=object)
    expected = seen.drop_duplicates()
    assert list(first) == list(expected.index)
    assert list(n_rows) == [sum(r == value for r in rows) for value in expected]
    wide_first, wide_rows = _groups(_combined(columns) * 10**12)  # keys too far apart to count densely
    assert list(wide_first) == list(first) and list(wide_rows) == list(n_rows)


def test_duplicated_obs_index(glioma: ad.AnnData, tmp_path: Path) -> None:
    names = glioma.obs_names.to_numpy().copy()
    names[1] = names[0]
    glioma.obs_names = names
    failures = validate_h5ad(_write(glioma, tmp_path / "bad.h5ad")).failures
    assert any(f.component == "obs" and "unique" in f.check and f.failure_case == names[0] for f in failures)


@pytest.mark.parametrize("where", ["index and observation_joinid", "observation_joinid only", "soma_joinid"])
def test_duplicates_are_reported_in_every_per_row_column(glioma: ad.AnnData, tmp_path: Path, where: str) -> None:
    """Uniqueness is proven without hashing where it is cheap (increasing joinids, a column equal to a
    unique index); any duplicate still fails, in the column that holds it."""
    obs = glioma.obs.copy()
    first = obs.index[0]
    if where == "index and observation_joinid":
        obs.index = obs["observation_joinid"] = [first, *obs.index[1:-1], first]
    elif where == "observation_joinid only":
        obs["observation_joinid"] = [*obs["observation_joinid"][:-1], first]
    else:
        obs["soma_joinid"] = [*obs["soma_joinid"][:-1], obs["soma_joinid"].iloc[0]]
    glioma.obs = obs
    failures = validate_h5ad(_write(glioma, tmp_path / "bad.h5ad")).failures
    unique = {(f.column or "index") for f in failures if "unique" in f.check}
    expected = {"index and observation_joinid": {"index", "observation_joinid"},
                "observation_joinid only": {"observation_joinid"}, "soma_joinid": {"soma_joinid"}}[where]
    assert unique == expected, [(f.column, f.check, f.failure_case) for f in failures]


def test_all_failures_reported_at_once_grouped_and_as_json(glioma: ad.AnnData, tmp_path: Path) -> None:
    obs = glioma.obs.copy()
    obs["assay_ontology_term_id"] = "EFO:bad"
    obs["sex_ontology_term_id"] = "male"
    glioma.obs = obs
    x = glioma.X.tocsr(copy=True)
    x.data[:] = np.abs(x.data) * -1
    glioma.X = x
    _write(glioma, tmp_path / "bad.h5ad")
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "bad.h5ad")])
    assert result.exit_code == 5
    # one distinct bad value per obs column, one per distinct minimum of X: rows are counted, not lost
    minima = len(np.unique(validate_h5ad(tmp_path / "bad.h5ad").failures[-1:] and
                           [f.failure_case for f in validate_h5ad(tmp_path / "bad.h5ad").failures if f.component == "X"]))
    assert f"{2 + minima} distinct failing value(s) in 3 check(s), affecting {3 * glioma.n_obs} row(s)" in result.output
    assert "[2] obs.sex_ontology_term_id: not an ontology term id" in result.output
    as_json = CliRunner().invoke(cli, ["validate", "--json", str(tmp_path / "bad.h5ad")])
    assert as_json.exit_code == 5
    report = json.loads(as_json.output[: as_json.output.rindex("}") + 1])
    assert {f["column"] for f in report["failures"]} == {"assay_ontology_term_id", "sex_ontology_term_id",
                                                          "min_value"}
    assert all(f["fix"] for f in report["failures"]) and report["profile"] == "curated"


def test_obs_and_var_checked_ahead_give_the_same_report(glioma: ad.AnnData) -> None:
    """Curation checks obs/var while X is read, then the X summary: the report is the one-pass report."""
    from heldout.validation import check_obs_var, prepare, validate_tables, x_cell_summary

    obs = glioma.obs.copy()
    obs["assay_ontology_term_id"] = "EFO:bad"
    obs["cell_type_ontology_term_id"] = obs["cell_type_ontology_term_id"].astype(str)
    obs.loc[obs.index[:3], "cell_type_ontology_term_id"] = "CL:9999999"
    x = glioma.X.tocsr(copy=True)
    x.data[:5] = -1
    summary, shape = x_cell_summary(x), (glioma.n_obs, glioma.n_vars)
    prepare(organism="homo_sapiens")
    ahead = check_obs_var(obs, glioma.var, organism="homo_sapiens")
    assert {f.column for f in ahead} == {"assay_ontology_term_id", "cell_type_ontology_term_id"}
    split = validate_tables("t", obs, glioma.var, summary, shape, organism="homo_sapiens", obs_var_failures=ahead)
    whole = validate_tables("t", obs, glioma.var, summary, shape, organism="homo_sapiens")
    assert split == whole and {f.component for f in whole.failures} == {"obs", "X"}


def test_not_an_h5ad(tmp_path: Path) -> None:
    (tmp_path / "junk.h5ad").write_bytes(b"not hdf5")
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "junk.h5ad")])
    assert result.exit_code == 5
    assert "is not a readable h5ad" in result.output


def test_the_two_profiles_share_their_ontology_rules() -> None:
    curated = yaml.safe_load((REPO / "schemas" / "obs.yaml").read_text())
    submitted = yaml.safe_load((REPO / "schemas" / "cellxgene_obs.yaml").read_text())
    for column, spec in submitted["columns"].items():
        assert spec.get("checks") == curated["columns"][column].get("checks"), column
    assert submitted["checks"] == curated["checks"]


def test_each_distinct_value_is_checked_once(glioma: ad.AnnData) -> None:
    """A 1,000x taller obs costs no more ontology lookups: checks run on distinct values."""
    from heldout import ontologies
    from heldout.validation import validate_tables, x_cell_summary

    tall = pd.concat([glioma.obs] * 1000, ignore_index=True)
    tall.index = tall.index.astype(str)
    tall["soma_joinid"] = np.arange(len(tall))
    tall["observation_joinid"] = tall.index
    ontologies.check_term.cache_clear()
    summary = x_cell_summary(glioma.X[:0])
    validate_tables("tall", tall, glioma.var, summary.reindex(range(len(tall)), fill_value=0),
                    (len(tall), glioma.n_vars))
    distinct = sum(tall[c].nunique() for c in tall.columns if c.endswith("_ontology_term_id"))
    assert ontologies.check_term.cache_info().misses <= distinct + 10


def test_rarely_repeating_numbers_are_checked_row_by_row_with_the_same_failures(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Numeric columns whose values rarely repeat skip the per-value deduplication; the failures found
    (value, row, count) are exactly those of the per-value path."""
    from heldout.validation import frames, load_schema

    rng = np.random.default_rng(0)
    n = 30_000
    summary = pd.DataFrame({"min_value": rng.random(n) * 5, "n_non_integer": np.zeros(n, dtype=np.int64),
                            "n_non_finite": np.zeros(n, dtype=np.int64)})
    summary.loc[[7, 12_345, 29_999], "min_value"] = [-1.5, -2.5, -1.5]  # two rows share a bad value
    summary.loc[[3, 4], "n_non_integer"] = 2
    schema = load_schema("x_cells")
    ctx = frames.Context()
    assert frames._mostly_distinct(summary["min_value"]) and not frames._mostly_distinct(summary["n_non_integer"])

    def found(failures: list) -> set:
        return {(f.column, f.check, f.failure_case, f.index) for f in failures}

    direct = frames.validate_frame("X", schema, summary, ctx)
    monkeypatch.setattr(frames, "_mostly_distinct", lambda values: False)
    per_value = frames.validate_frame("X", schema, summary, ctx)
    assert {("min_value", "-1.5"), ("min_value", "-2.5"), ("n_non_integer", "2")} <= {
        (f.column, f.failure_case) for f in direct}
    assert sum(f.n_rows for f in direct if f.column == "min_value") == 3
    assert sum(f.n_rows for f in per_value if f.column == "min_value") == 3
    assert {(c, v) for c, _, v, _ in found(direct)} == {(c, v) for c, _, v, _ in found(per_value)}
