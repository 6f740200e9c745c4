"""The release pipeline's parameters (``params.yaml``) as a typed record, and its stages as commands.

``dvc.yaml`` never interpolates a parameter into a shell command: DVC runs
``heldout stage KIND``, heldout reads which item it is building from
``$DVC_STAGE`` (DVC sets it to ``curate@glioma-tirosh2016``, ``ortholog-apply@0``
...), and reads every value from ``params.yaml`` through :func:`load_params`,
which refuses anything that is not a known name, version or policy. A value
such as ``one2one_high_confidence; id > pwned.txt`` is refused by lint in the
pull request and by the stage itself, and never reaches a shell.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import pydantic

from heldout.cards._base import FrozenRecord, parse_card
from heldout.cards.dataset import DATE_PATTERN, NAME_PATTERN, Organism, OrthologPolicy
from heldout.errors import CardError, UsageError, unknown_choice
from heldout.project import Project

PARAMS = "params.yaml"
HOST_PATTERN = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
Name = Annotated[str, pydantic.Field(pattern=NAME_PATTERN)]
StageKind = Literal["mirror", "curate", "validate", "split", "ortholog-map", "ortholog-apply"]
STAGE_KINDS: tuple[str, ...] = ("mirror", "curate", "validate", "split", "ortholog-map", "ortholog-apply")


class MirrorParams(FrozenRecord):
    version: Annotated[str, pydantic.Field(pattern=DATE_PATTERN)]


class OrthologApply(FrozenRecord):
    dataset: Name
    target: Organism


class OrthologParams(FrozenRecord):
    policy: OrthologPolicy = "one2one_high_confidence"
    apply: list[OrthologApply] = pydantic.Field(default_factory=list)


class SourceParams(FrozenRecord):
    """Hosts whose URLs ``heldout curate`` may fetch (maintainers' choice; the PR check fetches none)."""

    allowed_hosts: list[Annotated[str, pydantic.Field(pattern=HOST_PATTERN, max_length=253)]] = pydantic.Field(default_factory=list)


class PipelineParams(FrozenRecord):
    """``params.yaml``: every value a ``dvc.yaml`` stage reads."""

    mirror: MirrorParams
    datasets: list[Name] = pydantic.Field(min_length=1)
    orthologs: OrthologParams = pydantic.Field(default_factory=OrthologParams)
    sources: SourceParams = pydantic.Field(default_factory=SourceParams)

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> PipelineParams:
        repeated = sorted({d for d in self.datasets if self.datasets.count(d) > 1})
        if repeated:
            msg = f"datasets lists {repeated} more than once"
            raise ValueError(msg)
        strays = [a.dataset for a in self.orthologs.apply if a.dataset not in self.datasets]
        if strays:
            msg = f"orthologs.apply names {strays}, which are not in datasets"
            raise ValueError(msg)
        return self


def load_params(project: Project) -> PipelineParams:
    """``params.yaml`` of ``project``, validated (a :class:`CardError` names every bad value)."""
    from heldout.untrusted.limits import limits
    from heldout.untrusted.paths import confined_file

    return read_params_file(confined_file(project.root, PARAMS, "params file", max_bytes=limits().yaml_bytes,
                                          tracked=False))


def read_params_file(path: str | Path) -> PipelineParams:
    """A params file read with the bounded, duplicate-refusing loader and validated."""
    from heldout.untrusted.yaml_input import read_yaml_file

    data = read_yaml_file(path)
    if not isinstance(data, dict):
        msg = f"{path} must hold a YAML mapping, got {type(data).__name__}."
        raise CardError(msg)
    return parse_card(data, PipelineParams, source=path)


@dataclass(frozen=True)
class StageCall:
    kind: str
    dataset: str | None = None  # curate/validate/split/ortholog-apply: the dataset it builds
    target: str | None = None  # ortholog-apply: the target organism


STAGE_ITEM = re.compile(r"^(?:.*:)?(?P<kind>[a-z-]+)(?:@(?P<item>[A-Za-z0-9_-]+))?$")


def stage_call(kind: str, params: PipelineParams, dvc_stage: str | None = None) -> StageCall:
    """What ``heldout stage KIND`` builds, from ``$DVC_STAGE`` and the validated parameters."""
    if kind not in STAGE_KINDS:
        raise unknown_choice("stage", kind, STAGE_KINDS)
    if kind in ("mirror", "ortholog-map"):
        return StageCall(kind)
    address = dvc_stage if dvc_stage is not None else os.environ.get("DVC_STAGE", "")
    match = STAGE_ITEM.match(address)
    if not match or match["kind"] != kind or not match["item"]:
        msg = f"`heldout stage {kind}` runs inside `dvc repro`, which names the item in $DVC_STAGE; got {address!r}."
        raise UsageError(msg, hint=f"Run `dvc repro {kind}` (or `heldout {kind.replace('ortholog-', 'orthologs ')} "
                                   "NAME` by hand).")
    item = match["item"]
    if kind == "ortholog-apply":
        if not item.isdigit() or int(item) >= len(params.orthologs.apply):
            msg = f"$DVC_STAGE {address!r}: no orthologs.apply entry {item} in params.yaml."
            raise UsageError(msg)
        entry = params.orthologs.apply[int(item)]
        return StageCall(kind, dataset=entry.dataset, target=entry.target.value)
    if item not in params.datasets:
        raise unknown_choice("dataset of params.yaml", item, params.datasets)
    return StageCall(kind, dataset=item)
