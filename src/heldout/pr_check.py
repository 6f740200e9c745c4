"""The pull-request check: every file a pull request changes, checked; what needs a maintainer, flagged.

``heldout lint --changed-since BASE`` (what ``ci/check-dataset-pr`` runs) looks
at every path that differs from BASE, not only dataset cards:

* dataset cards are linted (schema, source, filter, labels, split feasibility, released pins);
* model and task cards must load as typed records (paths in them stay inside the registry);
* ``params.yaml`` must load as :class:`heldout.pipeline.PipelineParams`;
* curation maps must be YAML a registry accepts (bounded, no duplicate keys);
* files heldout writes locally (``.heldout/`` staging, ``data/``, ``mirror/``, split outputs) are refused:
  a committed staging folder would be read instead of the verified source;
* a change to a **protected** path (``ci/``, ``.github/``, ``dvc.yaml``, ``.dvc/``, ``schemas/``, release
  records, recorded corpora) or to a protected parameter (the mirror version, the ortholog policy,
  the allowed hosts) fails the check unless a maintainer approved it (``--approved``: the workflow passes
  it when the pull request carries the ``heldout-approved`` label, which only maintainers can set);
* a model-card change that makes any (model, dataset) tier better is flagged with the before/after
  grid, and needs the same approval.

Tiers here are decided from what the cards say (id lists, accessions, cut-offs, prose): the PR check reads
no recorded manifest and scans no Census, so corpora documented that way count as unresolved on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from heldout.cards._base import parse_card
from heldout.cards.dataset import list_dataset_cards
from heldout.cards.model import Corpus, Documentation, ModelCard, load_model_card
from heldout.errors import HeldoutError
from heldout.leakage.evidence import CorpusEvidence, EvalData, listed_evidence, unresolved
from heldout.leakage.tiers import Tier, assign_tier
from heldout.lint import CardLint, lint_cards
from heldout.project import Project, find_project
from heldout.released_cards import _git, card_name_of, changed_files
from heldout.untrusted.yaml_input import load_yaml, read_yaml_file

APPROVAL_LABEL = "heldout-approved"
PROTECTED = {  # path or folder prefix -> why a maintainer must approve a change to it
    "ci/": "the PR check's own scripts and pins",
    ".github/": "the CI workflows",
    "dvc.yaml": "the release pipeline's commands",
    "dvc.lock": "the release pipeline's recorded state",
    ".dvc/": "DVC's configuration (remotes)",
    ".dvcignore": "what DVC tracks",
    ".gitignore": "what git tracks",
    "schemas/": "the validation rules every dataset must pass",
    "registry/releases/": "release records (written by `heldout release` only)",
    "corpora/": "recorded corpora (written by `heldout corpus record` only)",
}
PROTECTED_PARAMS = ("mirror", "orthologs.policy", "sources")
NEVER_COMMITTED = {  # what heldout writes or caches locally: a pull request that commits one is refused
    ".heldout/": "heldout's staging cache (a committed copy would be read instead of the verified source)",
    "data/": "pipeline outputs (DVC tracks them; `heldout release` ships them)",
    "mirror/": "the mini-Census that the pipeline builds",
    "orthologs/": "ortholog maps that the pipeline builds",
    "results/": "evaluation results",
}
RANK = {Tier.RED: 0, Tier.GRAY: 1, Tier.YELLOW: 2, Tier.GREEN: 3}  # better for a model = higher


@dataclass(frozen=True)
class Finding:
    path: str
    kind: str  # problem | approval | note
    message: str


@dataclass(frozen=True)
class TierChange:
    model: str
    dataset: str
    before: Tier | None  # None: no such model card before
    after: Tier | None  # None: the card is gone
    reason: str

    @property
    def improved(self) -> bool:
        before = RANK[self.before] if self.before else RANK[Tier.GRAY]
        return self.after is not None and RANK[self.after] > before


@dataclass
class PullRequestCheck:
    base: str
    approved: bool
    cards: list[CardLint] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    tier_changes: list[TierChange] = field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "problem"]

    @property
    def approvals(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "approval"]

    @property
    def ok(self) -> bool:
        return not (self.problems or any(c.problems for c in self.cards) or (self.approvals and not self.approved))


def check_pull_request(base: str, *, project: Project | None = None, dry_run: bool = True,
                       mirror_root: str | Path | None = None, approved: bool = False) -> PullRequestCheck:
    """Check every change since ``base`` (see the module docstring)."""
    project = project or find_project()
    paths = changed_files(project, base)
    result = PullRequestCheck(base=base, approved=approved)
    changed_datasets, changed_models = [], []
    for path in paths:
        exists = (project.root / path).exists() or (project.root / path).is_symlink()
        protected = next((p for p in PROTECTED if path == p or path.startswith(p)), None)
        local = next((p for p in NEVER_COMMITTED if path.startswith(p)), None)
        split_output = path.startswith("splits/") and path.count("/") >= 2
        if local or split_output:
            why = NEVER_COMMITTED[local] if local else "split outputs (DVC tracks them)"
            result.findings.append(Finding(path, "problem", f"must not be committed: {why}"))
        elif protected:
            result.findings.append(Finding(path, "approval", f"changes {PROTECTED[protected]}"))
        elif path.startswith("registry/datasets/"):
            name = card_name_of(path)
            if name is None:
                result.findings.append(Finding(path, "problem", "not a card: cards are registry/datasets/NAME.yaml, "
                                               "NAME lower-case ASCII letters, digits and dashes, no subfolders"))
            elif exists:
                changed_datasets.append(name)
            else:
                result.findings.append(Finding(path, "note", "dataset card deleted"))
        elif path.startswith("registry/models/"):
            name = card_name_of(path, "registry/models")
            if name is None:
                result.findings.append(Finding(path, "problem", "not a model card (registry/models/NAME.yaml)"))
            else:
                changed_models.append(name)
        elif path.startswith("registry/tasks/"):
            _check_task(project, path, result)
        elif path == "params.yaml":
            _check_params(project, base, result)
        elif path.startswith("curation/"):
            _check_yaml(project, path, result)
        elif path.startswith("registry/"):
            result.findings.append(Finding(path, "problem", "not a file heldout knows in registry/ (datasets/, "
                                           "models/, tasks/ hold cards)"))
        else:
            result.findings.append(Finding(path, "note", "not read by heldout: review it by eye"))
    every = list_dataset_cards(project.registry)
    cards = lint_cards(project=project, dry_run=dry_run, mirror_root=mirror_root, changed_since=base,
                       names=every if changed_models else changed_datasets, keep_cells=bool(changed_models),
                       check_pins=changed_datasets)
    if changed_models:
        evals = [c.eval_data for c in cards if c.eval_data is not None]
        for name in changed_models:
            _tier_diff(project, base, name, evals, result)
    result.cards = [c for c in cards if c.name in changed_datasets]
    return result


def _check_task(project: Project, path: str, result: PullRequestCheck) -> None:
    from heldout.evaluation.tasks import load_task_card

    name = card_name_of(path, "registry/tasks")
    if name is None:
        result.findings.append(Finding(path, "problem", "not a task card (registry/tasks/NAME.yaml)"))
        return
    if not (project.root / path).exists():
        result.findings.append(Finding(path, "note", "task card deleted"))
        return
    try:
        load_task_card(name, project.registry)
    except HeldoutError as exc:
        result.findings.append(Finding(path, "problem", str(exc)))


def _check_yaml(project: Project, path: str, result: PullRequestCheck) -> None:
    from heldout.untrusted.limits import limits
    from heldout.untrusted.paths import confined_file

    if not (project.root / path).exists() and not (project.root / path).is_symlink():
        result.findings.append(Finding(path, "note", "deleted"))
        return
    try:
        read_yaml_file(confined_file(project.root, path, "file", max_bytes=limits().yaml_bytes, tracked=False))
    except HeldoutError as exc:
        result.findings.append(Finding(path, "problem", str(exc)))


def _flat(data: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in (data or {}).items():
        name = f"{prefix}{key}"
        out[name] = value
        if isinstance(value, dict):
            out.update(_flat(value, f"{name}."))
    return out


def _check_params(project: Project, base: str, result: PullRequestCheck) -> None:
    from heldout.pipeline import load_params

    try:
        params = load_params(project)
    except HeldoutError as exc:
        result.findings.append(Finding("params.yaml", "problem", str(exc)))
        return
    missing = [d for d in params.datasets if not (project.registry / "datasets" / f"{d}.yaml").exists()]
    if missing:
        result.findings.append(Finding("params.yaml", "problem", f"datasets {missing} have no card in "
                                       "registry/datasets"))
    text = _git(project.root, "show", f"{base}:params.yaml")
    try:
        before = load_yaml(text, f"{base}:params.yaml") if text else {}
    except HeldoutError:
        before = {}
    after = _flat(params.model_dump(mode="json"))
    before_params = _flat(_normalised_params(before if isinstance(before, dict) else {}))
    for key in PROTECTED_PARAMS:
        if before_params.get(key) != after.get(key):
            result.findings.append(Finding("params.yaml", "approval", f"changes `{key}` "
                                           f"({before_params.get(key)!r} -> {after.get(key)!r})"))


def _normalised_params(data: dict) -> dict:
    from heldout.pipeline import PipelineParams

    try:
        return PipelineParams.model_validate(data).model_dump(mode="json")
    except Exception:  # noqa: BLE001 - an invalid base counts as every value changed
        return data


def pr_evidence(corpus: Corpus, data: EvalData) -> CorpusEvidence:
    """What the PR check can decide from a card alone: listed ids, accessions, cut-offs and prose."""
    if corpus.manifest or corpus.documented_as is Documentation.recorded:
        return unresolved(corpus, "recorded manifests are not read by the PR check")
    if corpus.documented_as is Documentation.census_filter or corpus.census is not None:
        return unresolved(corpus, "the PR check does not scan a Census")
    return listed_evidence(corpus, data)


def tiers_of(card: ModelCard, evals: list[EvalData]) -> dict[str, Tier]:
    out = {}
    for data in evals:
        out[data.name] = assign_tier(card.name, data.name, None, [pr_evidence(c, data) for c in card.corpora]).tier
    return out


def _card_at(project: Project, base: str, name: str) -> ModelCard | None:
    text = _git(project.root, "show", f"{base}:registry/models/{name}.yaml")
    if not text:
        return None
    try:
        return parse_card(load_yaml(text, f"{base}:registry/models/{name}.yaml"), ModelCard)
    except HeldoutError:
        return None


def _tier_diff(project: Project, base: str, name: str, evals: list[EvalData], result: PullRequestCheck) -> None:
    path = f"registry/models/{name}.yaml"
    before_card = _card_at(project, base, name)
    after_card = None
    if (project.root / path).exists() or (project.root / path).is_symlink():
        try:
            after_card = load_model_card(name, project.registry)
        except HeldoutError as exc:
            result.findings.append(Finding(path, "problem", str(exc)))
            return
    else:
        result.findings.append(Finding(path, "approval", "deletes a model card (its pairings leave every audit)"))
    before = tiers_of(before_card, evals) if before_card else {}
    after = tiers_of(after_card, evals) if after_card else {}
    for data in evals:
        change = TierChange(model=name, dataset=data.name, before=before.get(data.name), after=after.get(data.name),
                            reason="")
        result.tier_changes.append(change)
    better = [c for c in result.tier_changes if c.model == name and c.improved]
    if better:
        shown = ", ".join(f"{c.dataset} {c.before.value if c.before else 'no card'} -> {c.after.value}"  # type: ignore[union-attr]
                          for c in better)
        result.findings.append(Finding(path, "approval", f"makes {len(better)} tier(s) better: {shown}"))


def markdown(result: PullRequestCheck, *, dry_run: bool) -> str:
    """The check as Markdown for the pull request's summary: cards, tier grid, findings, approvals."""
    from heldout.lint import markdown_summary

    text = markdown_summary(result.cards, dry_run=dry_run, changed_since=result.base).rstrip("\n")
    status = "passed" if result.ok else "FAILED"
    lines = [f"# heldout PR check: {status}", "", text, ""]
    if result.tier_changes:
        lines += ["## Tiers of changed model cards (before -> after)", "",
                  "Decided from the cards alone (ids, accessions, cut-offs, prose); a better tier needs a maintainer.",
                  "", "| model | dataset | before | after | |", "|---|---|---|---|---|"]
        for c in result.tier_changes:
            flag = "**better: review**" if c.improved else ("changed" if c.before != c.after else "")
            lines.append(f"| `{c.model}` | `{c.dataset}` | {c.before.value if c.before else 'no card'} | "
                         f"{c.after.value if c.after else 'deleted'} | {flag} |")
        lines.append("")
    for kind, title in (("problem", "## Problems in other files"), ("approval", "## Needs a maintainer's approval"),
                        ("note", "## Other changes (review by eye)")):
        found = [f for f in result.findings if f.kind == kind]
        if found:
            lines += [title, ""]
            if kind == "approval":
                state = "approved" if result.approved else f"not approved: a maintainer adds the `{APPROVAL_LABEL}` label"
                lines += [f"Status: **{state}**.", ""]
            lines += [f"- `{f.path}`: {' '.join(f.message.split())}" for f in found]
            lines.append("")
    return "\n".join(lines) + "\n"
