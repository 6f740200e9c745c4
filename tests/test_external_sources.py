"""Datasets from outside the Census: an h5ad file and a SOMA experiment, curated like a Census card.

Real files: scanpy's 10x v1.2.0 hg19 chr21 matrix (12 PBMCs, gene symbols only) from the pinned scanpy
sdist, and a SOMA experiment that tiledbsoma writes from the mini-Census's CELLxGENE-schema h5ad of the
Baron 2016 mouse islets.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import pytest
import yaml
from click.testing import CliRunner

from heldout._files import sha256_file
from heldout.cli import cli
from heldout.curation import curate
from heldout.errors import ChecksumMismatch, SourceError
from heldout.lint import lint_cards
from heldout.project import Project
from heldout.sources.stage import unmapped_genes
from heldout.splits import split_dataset
from heldout.validation import validate_h5ad
from tests.helpers import chr21_pbmc

TERMS = {"donor_id": "unknown", "assay_ontology_term_id": "EFO:0009899", "cell_type_ontology_term_id": "unknown",
         "development_stage_ontology_term_id": "unknown", "disease_ontology_term_id": "PATO:0000461",
         "self_reported_ethnicity_ontology_term_id": "unknown", "sex_ontology_term_id": "unknown",
         "tissue_ontology_term_id": "UBERON:0000178", "suspension_type": "cell", "tissue_type": "tissue"}


def _card(project: Project, name: str, source: dict, **extra: object) -> Path:
    card = {"schema_version": 1, "name": name, "description": f"{name} (test)", "source": source,
            "labels": ["cell_type"], "license": "BSD-3-Clause", "citation": "10x Genomics / scanpy test data",
            "split": {"fractions": {"train": 0.5, "test": 0.5}}, **extra}
    path = project.registry / "datasets" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(card, sort_keys=False))
    return path


@pytest.fixture
def chr21(project: Project) -> Path:
    adata = chr21_pbmc()
    (project.root / "external").mkdir()
    path = project.root / "external" / "pbmc-chr21.h5ad"
    adata.write_h5ad(path)
    return path


def test_an_h5ad_card_is_curated_split_and_validated_like_a_census_card(project: Project, chr21: Path) -> None:
    source = {"kind": "h5ad", "uri": "external/pbmc-chr21.h5ad", "sha256": sha256_file(chr21),
              "organism": "homo_sapiens", "genes": "symbol", "obs": {"values": TERMS}}
    _card(project, "pbmc-chr21", source, split={"fractions": {"test": 1.0}})  # one (unknown) donor: a test set
    result = CliRunner().invoke(cli, ["curate", "pbmc-chr21"])
    assert result.exit_code == 0, result.output
    lock = yaml.safe_load((project.curated / "pbmc-chr21.lock.yaml").read_text())
    assert lock["census_source"] == "h5ad" and lock["source_sha256"] == sha256_file(chr21)
    assert lock["n_cells"] == 12 and lock["n_genes"] + lock["unmapped_genes"] == 343
    unmapped = unmapped_genes(__import__("heldout.cards.dataset", fromlist=["x"]).load_dataset_card(
        "pbmc-chr21", project.registry), project)
    assert len(unmapped) == lock["unmapped_genes"] > 0 and set(unmapped.columns) == {"name", "reason"}
    assert validate_h5ad(project.curated / "pbmc-chr21.h5ad").ok
    assert (project.curated / "pbmc-chr21.fingerprints.parquet").exists()
    split_dataset("pbmc-chr21", project=project)
    dry = {r.name: r for r in lint_cards(project=project, dry_run=True)}["pbmc-chr21"]
    assert not dry.problems and dry.n_cells == 12


def test_a_changed_file_or_a_wrong_organism_is_refused(project: Project, chr21: Path) -> None:
    source = {"kind": "h5ad", "uri": "external/pbmc-chr21.h5ad", "sha256": "0" * 64, "organism": "homo_sapiens",
              "genes": "symbol", "obs": {"values": TERMS}}
    _card(project, "pbmc-chr21", source)
    with pytest.raises(ChecksumMismatch, match="but the card pins"):
        curate("pbmc-chr21", project=project)
    _card(project, "pbmc-chr21", {**source, "sha256": sha256_file(chr21), "organism": "mus_musculus"})
    with pytest.raises(SourceError, match="none of its 343 genes map to GENCODE mus_musculus"):
        curate("pbmc-chr21", project=project)
    _card(project, "pbmc-chr21", {**source, "sha256": sha256_file(chr21), "obs": {"values": {"donor_id": "x"}}})
    result = CliRunner().invoke(cli, ["curate", "pbmc-chr21"])
    assert result.exit_code != 0 and "no obs column for" in result.output and "Traceback" not in result.output


def test_a_soma_experiment_written_by_tiledbsoma_is_curated(project: Project, mirror_root: Path) -> None:
    import tiledbsoma.io

    [h5ad] = [p for p in mirror_root.glob("cell-census/*/h5ads/*.h5ad") if ad.read_h5ad(p, backed="r").n_obs == 1886]
    uri = str(project.root / "baron-mouse-soma")
    tiledbsoma.io.from_h5ad(uri, str(h5ad), measurement_name="RNA", X_layer_name="counts")
    _card(project, "baron-mouse-soma", {"kind": "soma", "uri": "baron-mouse-soma", "organism": "mus_musculus", "layer": "counts",
                                         "genes": "id"},
          split={"fractions": {"train": 0.5, "test": 0.5}, "stratify_by": "cell_type"})
    result = curate("baron-mouse-soma", project=project)
    assert result.lock.census_source == "soma" and result.lock.n_cells == 1886 and result.lock.n_donors == 2
    curated = ad.read_h5ad(result.h5ad)
    original = ad.read_h5ad(h5ad)
    assert sorted(curated.obs["cell_type"].astype(str)) == sorted(original.obs["cell_type"].astype(str))
    assert curated.X.sum() == original.X.sum()
    split_dataset("baron-mouse-soma", project=project)
