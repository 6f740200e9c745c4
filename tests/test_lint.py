"""Lint catches, one line each and without a traceback, what `dvc repro` would otherwise fail on."""

from __future__ import annotations

import yaml
from click.testing import CliRunner

from heldout.cli import cli
from heldout.project import Project


def _edit(project: Project, name: str, **changes: object) -> None:
    path = project.registry / "datasets" / f"{name}.yaml"
    card = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            card[section][field] = value
        else:
            card[section] = value
    path.write_text(yaml.safe_dump(card, sort_keys=False))


def test_lint_dry_run_reports_what_repro_would_fail_on(project: Project) -> None:
    _edit(project, "mouse-brain-10k", split__fractions={"train": 0.5, "test": 0.5})  # one donor ('unknown')
    _edit(project, "glioma-tirosh2016", census__obs_value_filter="tisue == 'brain'")
    _edit(project, "pbmc-blood", labels=["cell_typ"])
    _edit(project, "baron-pancreas-human", orthologs={"target_organism": "homo_sapiens"})
    result = CliRunner().invoke(cli, ["lint", "--dry-run"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = result.output.splitlines()
    assert ("mouse-brain-10k: split: 1 donor group(s) cannot fill 2 donor-disjoint splits (train, test); give "
            "fewer non-zero fractions or select more donors") in lines
    assert "glioma-tirosh2016: obs_value_filter names 'tisue', not an obs column of the source (did you mean " \
           "'tissue'?)" in lines
    assert any(line.startswith("pbmc-blood: label columns ['cell_typ'] are not obs columns") for line in lines)
    assert "baron-pancreas-human: orthologs: no ortholog map from homo_sapiens to homo_sapiens (known: " \
           "mus_musculus -> homo_sapiens, homo_sapiens -> mus_musculus)" in lines
    assert "4 card(s) failed lint" in result.output
