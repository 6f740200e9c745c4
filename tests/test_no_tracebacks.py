"""Every command, given bad input, fails with a message and an exit code: never a traceback."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from heldout.cli import cli
from heldout.project import Project

BAD_INPUT: dict[str, list[str]] = {
    "audit": ["--model", "no-such-model"],
    "check-split": ["no-such-dataset"],
    "corpus record": ["--model", "no-such-model", "--corpus", "x", "--role", "pretraining", "missing.h5ad"],
    "corpus record-list": ["x", "--file", "samples:missing.csv", "--source", "s", "--complete", "--description", "d",
                           "--citation", "c", "--license", "l"],
    "corpus show": ["--model", "no-such-model", "--corpus", "x"],
    "curate": ["no-such-dataset"],
    "doctor": [],  # outside a registry (see the test)
    "evaluate": ["--task", "no-such-task", "--model", "m", "--embeddings", "missing.parquet"],
    "init": ["{tmp}/file-not-dir/registry"],
    "lint": ["--dry-run", "--mirror", "{tmp}/no-mirror"],
    "list": ["--registry", "{tmp}/not-a-registry"],
    "lookup": ["not-an-identifier"],
    "mirror build": ["--out", "{tmp}/m", "--version", "yesterday"],
    "orthologs apply": ["no-such-dataset"],
    "orthologs build": ["--policy", "no-such-policy"],
    "pull": ["no-such-dataset@v9", "--registry", "{tmp}/not-a-registry"],
    "release": ["version-one"],
    "report": ["--results", "{tmp}/no-results"],
    "retract": ["v99", "--reason", "x"],
    "show": ["no-such-dataset@v1", "--registry", "{tmp}/not-a-registry"],
    "site build": ["{tmp}/site", "--registry", "{tmp}/not-a-registry"],
    "split": ["no-such-dataset"],
    "stage": ["curate"],  # outside `dvc repro`: no $DVC_STAGE
    "validate": ["{tmp}/missing.h5ad"],
}


def _commands(group: click.Group, prefix: str = "") -> list[str]:
    out = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            out += _commands(command, f"{prefix}{name} ")
        else:
            out.append(f"{prefix}{name}")
    return out


def test_every_command_is_covered() -> None:
    assert sorted(_commands(cli)) == sorted(BAD_INPUT)


@pytest.mark.parametrize("command", sorted(BAD_INPUT))
def test_bad_input_gives_a_message_not_a_traceback(command: str, project: Project, tmp_path: Path) -> None:
    (tmp_path / "file-not-dir").write_text("a file where a folder is expected")
    args = [a.format(tmp=tmp_path) for a in BAD_INPUT[command]]
    result = CliRunner().invoke(cli, [*command.split(), *args])
    assert result.exit_code != 0 or command == "doctor", result.output
    assert isinstance(result.exception, SystemExit | None), result.exception  # handled: no traceback
    assert "Traceback" not in result.output
    assert "Error:" in result.output or "ERROR" in result.output or command == "doctor", result.output


def test_outside_a_registry_the_error_says_how_to_point_at_one(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HELDOUT_PROJECT", raising=False)
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "HELDOUT_PROJECT" in result.output or "heldout init" in result.output
