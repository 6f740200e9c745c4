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


def test_changed_since_lints_only_changed_cards_and_holds_released_cards(registry: Project) -> None:
    from heldout.lint import lint_cards
    from heldout.releases import load_manifest

    card = registry.registry / "datasets" / "glioma-tirosh2016.yaml"
    original = card.read_text()
    new_card = registry.registry / "datasets" / "glioma-tirosh2016-v2.yaml"
    try:
        card.write_text(original.replace("seed: 3", "seed: 5"))
        new_card.write_text(original.replace("name: glioma-tirosh2016", "name: glioma-tirosh2016-v2")
                            .replace("seed: 3", "seed: 5"))
        results = {r.name: r for r in lint_cards(project=registry, changed_since="HEAD")}
        assert set(results) == {"glioma-tirosh2016", "glioma-tirosh2016-v2"}  # only what changed
        [problem] = results["glioma-tirosh2016"].problems
        assert problem.startswith("split changed, but glioma-tirosh2016 is released in v2")
        assert "new card" in problem and "--changelog" in problem
        assert not results["glioma-tirosh2016-v2"].problems  # a new card is the proper way
        result = CliRunner().invoke(cli, ["lint", "--changed-since", "no-such-ref"])
        assert result.exit_code != 0 and "is not a git revision" in result.output
    finally:
        card.write_text(original)
        new_card.unlink(missing_ok=True)
    assert load_manifest(registry, "v2").changelog == "glioma-tirosh2016: split seed 0 -> 3"
